"""`mil`: a linear scorer of audio rows trained with a multiple-instance objective, for peaky
scores: a bag of seconds is scored by a soft maximum of its seconds' scores, and only that pooled
score is trained (binary cross-entropy: event bag or not), so one high second per event bag is
enough, where `audio_head` asks every event second to be high.

The pooling is s_bag = (1/r) log mean_t exp(r s_t) with r = `sharpness`: the mean of the scores
as r -> 0, their maximum as r grows. The bags of each train clip: the whole clip, positive, when
it holds an event second; its background seconds, negative, when it has any. Whole event-free
clips alone would leave no negative bag on AVE, where every clip holds an event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from avgate.declare import bound, param
from avgate.eventness.base import EventnessMethod, not_fitted, register
from avgate.eventness.data import SecondsData, clip_rows
from avgate.eventness.training import TrainingOptions, held_out, trained
from avgate.models.heads import set_standardisation


@dataclass(frozen=True)
class MILOptions(TrainingOptions):
    sharpness: float = param(
        1.0, "r of the bag's soft maximum: near 0 the mean, large the max second", bound("> 0")
    )


class BagScorer(nn.Module):
    """A linear score per second (standardised input) and the soft maximum over a bag.

    Bags are `(bags, seconds, dim + 1)`, the last column 1 for a real second and 0 for padding;
    the output `(bags, 2)` is [0, pooled score], logits of (no event, event).

    >>> scorer = BagScorer(dim=1, sharpness=1.0)
    >>> _ = scorer.linear.weight.data.fill_(1.0), scorer.linear.bias.data.zero_()
    >>> bags = torch.tensor([[[0.0, 1], [2.0, 1], [9.0, 0]]])
    >>> round(scorer(bags)[0, 1].item(), 4)  # log((e^0 + e^2) / 2)
    1.4338
    """

    def __init__(self, dim: int, sharpness: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.linear = nn.Linear(dim, 1)
        self.sharpness = sharpness

    def seconds(self, x: torch.Tensor) -> torch.Tensor:
        """The score of each row of `x` (..., dim)."""
        return self.linear((x - self.mean) / self.scale).squeeze(-1)

    def forward(self, bags: torch.Tensor) -> torch.Tensor:
        real = bags[..., -1] > 0
        scaled = (self.seconds(bags[..., :-1]) * self.sharpness).masked_fill(~real, -torch.inf)
        pooled = (torch.logsumexp(scaled, dim=1) - real.sum(dim=1).log()) / self.sharpness
        return torch.stack([torch.zeros_like(pooled), pooled], dim=1)


@register("mil")
class MIL(EventnessMethod):
    """Linear audio scorer whose soft maximum over a bag says whether the bag holds an event."""

    options_type = MILOptions
    options: MILOptions

    def __init__(self, options: MILOptions) -> None:
        super().__init__(options)
        self.scorer: BagScorer | None = None

    def fit(self, train: SecondsData) -> None:
        events = train.events()
        bags: list[tuple[np.ndarray, int]] = []
        for rows in clip_rows(train.clip_ids, train.seconds):
            if events[rows].any():
                bags.append((rows, 1))
            if not events[rows].all():
                bags.append((rows[~events[rows]], 0))
        labels = [label for _, label in bags]
        if 0 not in labels or 1 not in labels:
            raise ValueError("mil needs train seconds labelled background and event seconds")
        val_rows = held_out(train.clip_ids, self.options.val_share, self.options.seed)
        held = np.array([val_rows[members[0]] for members, _ in bags])
        clips = np.array([str(train.clip_ids[members[0]]) for members, _ in bags])
        x = padded(train.audio, [members for members, _ in bags])
        y, h = torch.tensor(labels), torch.tensor(held)
        seconds = torch.as_tensor(train.audio[~val_rows], dtype=torch.float32)

        def make() -> BagScorer:
            scorer = BagScorer(train.audio.shape[1], self.options.sharpness)
            set_standardisation(scorer, seconds)
            return scorer

        self.scorer = trained(
            make,
            (x[~h], y[~h]),
            (x[h], y[h]),
            self.options,
            (clips[~held].tolist(), clips[held].tolist()),
            f"eventness.{self.name}.lr",
        )

    def score(self, data: SecondsData) -> np.ndarray:
        if self.scorer is None:
            raise not_fitted(self)
        with torch.inference_mode():
            scores = self.scorer.seconds(torch.as_tensor(data.audio, dtype=torch.float32))
        return scores.double().numpy()


def padded(features: np.ndarray, bags: list[np.ndarray]) -> torch.Tensor:
    """(bags, longest, dim + 1) float32: each bag's rows, zero-padded, with a last column of 1
    for real rows and 0 for padding."""
    out = torch.zeros(len(bags), max(len(bag) for bag in bags), features.shape[1] + 1)
    for i, bag in enumerate(bags):
        out[i, : len(bag), :-1] = torch.as_tensor(features[bag], dtype=torch.float32)
        out[i, : len(bag), -1] = 1.0
    return out
