"""What the trained eventness methods share: their training options, a hold-out of train clips
for early stopping, and seeded training through the project's one loop (`avgate.training`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from avgate.declare import bound, param
from avgate.training.finite import Rows
from avgate.training.loop import FitConfig, fit
from avgate.training.tensors import Split, TensorClassification


@dataclass(frozen=True)
class TrainingOptions:
    seed: int = param(
        0, "seed of the initial weights, the batch order and the held-out clips", bound(">= 0")
    )
    lr: float = param(0.01, "Adam learning rate", bound("> 0"))
    weight_decay: float = param(
        0.0001, "Adam weight decay (an L2 term in the gradient)", bound(">= 0")
    )
    batch_size: int = param(256, "training examples per step", bound(">= 1"))
    max_epochs: int = param(100, "epochs at most", bound(">= 1"))
    patience: int = param(
        10, "stop after this many epochs without a lower held-out loss", bound(">= 1")
    )
    val_share: float = param(
        0.2, "share of the train clips held out to choose the epoch", bound("(0, 1)")
    )


def held_out(clip_ids: np.ndarray, share: float, seed: int) -> np.ndarray:
    """(n,) bool: the rows of round(share * clips) clips drawn by `seed` (at least one clip, and
    at least one left to train on).

    >>> held_out(np.array(["a", "a", "b", "c"]), 0.3, seed=0).sum() in (1, 2)
    True
    """
    clips = np.unique(clip_ids)
    if len(clips) < 2:
        raise ValueError(f"training needs at least 2 train clips to hold one out, got {len(clips)}")
    count = min(len(clips) - 1, max(1, round(share * len(clips))))
    chosen = np.random.default_rng(seed).choice(clips, count, replace=False)
    return np.isin(clip_ids, chosen)


def trained(
    make: Callable[[], nn.Module],
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    options: TrainingOptions,
    row_names: tuple[Sequence[str], Sequence[str]] = ((), ()),
    lr_key: str = "the method's lr",
) -> nn.Module:
    """`make()`'s model trained by the one loop (cross-entropy, Adam, the epoch with the lowest
    held-out loss), in eval mode. Its initial weights and dropout draw from `options.seed` inside
    a forked random state, so the caller's generator is left as it was. `lr_key` names the
    learning rate in a NaN message (e.g. eventness.audio_head.lr)."""
    config = FitConfig(options.max_epochs, options.seed, options.patience)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        model = make()
        task = TensorClassification(
            model,
            Split(*train, Rows("train", row_names[0])),
            Split(*val, Rows("val", row_names[1])),
            options.lr,
            options.weight_decay,
            options.batch_size,
            lr_key,
        )
        fit(task, config)
    return model.eval()
