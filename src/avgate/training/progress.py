"""A run's record so far: each epoch's logs and the best epoch with a copy of its state.

>>> progress = Progress()
>>> progress.record({"val_loss": 0.5, "val_accuracy": 0.6}, "val_loss", lambda: {})
True
>>> progress.record({"val_loss": 0.7, "val_accuracy": 0.9}, "val_loss", lambda: {})
False
>>> progress.epoch, progress.best_epoch, progress.stalled(1)
(2, 1, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from avgate.training.selection import signed


@dataclass
class Progress:
    """Epochs done (their logs) and the best epoch so far: its signed selection value (higher is
    better), its validation loss and its state."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_value: float = -math.inf
    best_val_loss: float = math.inf
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def epoch(self) -> int:
        """The epochs done."""
        return len(self.history)

    def record(
        self, logs: dict[str, float], metric: str, state: Callable[[], dict[str, torch.Tensor]]
    ) -> bool:
        """Add one epoch's logs; keep its `state()` if it beats the best by `metric` (ties keep
        the earlier epoch). True when it did."""
        self.history.append(logs)
        value = signed(metric, logs)
        if value > self.best_value:
            self.best_epoch, self.best_value = self.epoch, value
            self.best_val_loss = logs["val_loss"]
            self.best_state = state()
            return True
        return False

    def stalled(self, patience: int | None) -> bool:
        """True once `patience` epochs have passed without a better one (never when None)."""
        return patience is not None and self.epoch - self.best_epoch >= patience

    def to_state(self) -> dict[str, Any]:
        """Plain values and tensors, for a weights-only checkpoint."""
        return {
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
            "best_val_loss": self.best_val_loss,
            "best_state": self.best_state,
        }
