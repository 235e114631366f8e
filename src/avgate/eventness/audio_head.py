"""`audio_head`: a small classifier of each second's audio row, trained on the train seconds to
predict their labels (background included); eventness = the largest event-class logit minus the
background logit, i.e. how much more the head believes in its best event than in background.

The head is `avgate.models.heads.MLPHead` (standardised input, one hidden layer), trained by the
one loop of `avgate.training` with a share of the train clips held out to pick the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from avgate.declare import bound, param
from avgate.eventness.base import EventnessMethod, not_fitted, register
from avgate.eventness.data import SecondsData
from avgate.eventness.training import TrainingOptions, held_out, trained
from avgate.models.heads import MLPHead


@dataclass(frozen=True)
class AudioHeadOptions(TrainingOptions):
    hidden: int = param(64, "hidden units of the head", bound(">= 1"))
    dropout: float = param(0.1, "dropout in the head", bound("[0, 1)"))


@register("audio_head")
class AudioHead(EventnessMethod):
    """Per-second label classifier on audio rows; score = best event logit - background logit."""

    options_type = AudioHeadOptions
    options: AudioHeadOptions

    def __init__(self, options: AudioHeadOptions) -> None:
        super().__init__(options)
        self.head: MLPHead | None = None
        self.background_index = 0

    def fit(self, train: SecondsData) -> None:
        events = train.events()
        if events.all() or not events.any():
            raise ValueError(
                f"audio_head needs train seconds labelled {train.background!r} and seconds "
                "of at least one event class"
            )
        classes = sorted(set(np.asarray(train.labels).tolist()))
        self.background_index = classes.index(train.background)
        x = torch.as_tensor(train.audio, dtype=torch.float32)
        y = torch.tensor([classes.index(label) for label in np.asarray(train.labels).tolist()])
        val = torch.as_tensor(held_out(train.clip_ids, self.options.val_share, self.options.seed))

        def make() -> MLPHead:
            head = MLPHead(x.shape[1], self.options.hidden, len(classes), self.options.dropout)
            head.set_standardisation(x[~val])
            return head

        names = np.asarray(train.clip_ids).astype(str)
        self.head = trained(
            make,
            (x[~val], y[~val]),
            (x[val], y[val]),
            self.options,
            (names[~val.numpy()].tolist(), names[val.numpy()].tolist()),
            f"eventness.{self.name}.lr",
        )

    def score(self, data: SecondsData) -> np.ndarray:
        if self.head is None:
            raise not_fitted(self)
        with torch.inference_mode():
            logits = self.head(torch.as_tensor(data.audio, dtype=torch.float32)).double()
        background = logits[:, self.background_index]
        others = torch.cat(
            [logits[:, : self.background_index], logits[:, self.background_index + 1 :]], dim=1
        )
        return (others.amax(dim=1) - background).numpy()
