"""What a run of the loop and a training mode return, and how their numbers go into JSON.

>>> finite_or_none(0.25), finite_or_none(float("inf"))
(0.25, None)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class FitResult:
    """The kept (best) epoch and its scores, the epochs run in all and those a resumed run took
    from its checkpoint, and the rows trained on and seconds spent by this process's epochs."""

    best_epoch: int
    best_val_loss: float
    best_selection_value: float
    epochs_run: int
    resumed_from_epoch: int = 0
    rows_trained: int = 0
    seconds: float = 0.0

    def rows_per_second(self) -> float:
        """Training throughput of this process's epochs (0 when none ran)."""
        return round(self.rows_trained / self.seconds, 1) if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Trained:
    """What a training mode (`avgate.finetune.<mode>.train`) returns: the model holding the best
    epoch's weights, its description (head.json), the loop's result, and `facts` for the
    stage's profile (e.g. the device)."""

    model: nn.Module
    description: dict
    result: FitResult
    facts: dict = field(default_factory=dict)


def finite_or_none(value: float) -> float | None:
    """`value`, or None (JSON null) when no epoch ran and it is still infinite."""
    return value if math.isfinite(value) else None
