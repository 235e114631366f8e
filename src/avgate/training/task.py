"""The contract between the loop and what it trains (Lightning's LightningModule, in small).

A task owns its model and data. The loop asks it for the optimiser, for one epoch's batches in an
order drawn from the loop's generator, for each batch's loss (the model in train mode), for the
validation scores (`val_loss` and `val_accuracy` at least), and for the state a checkpoint holds;
everything else (epochs, accumulation, selection, early stopping, checkpoints, NaN checks,
callbacks) is the loop's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from typing import Any

import torch
from torch import nn


class Task(ABC):
    """One trainable thing. `lr_key` names the setting a diverging run should lower, `lr` its
    value (both only for messages)."""

    model: nn.Module
    lr_key: str = "the learning rate"
    lr: float = float("nan")

    def check(self) -> None:
        """Raise NonFiniteError for inputs or initial state that hold NaN or Inf (default: none
        checked)."""
        return

    @abstractmethod
    def optimiser(self) -> torch.optim.Optimizer:
        """A new optimiser over the trainable parameters."""

    @abstractmethod
    def batches(self, generator: torch.Generator) -> Collection[Any]:
        """One epoch of training batches, in an order drawn from `generator` only."""

    @abstractmethod
    def loss(self, batch: Any) -> torch.Tensor:
        """The mean loss of `batch`, with a graph to backpropagate (the model is in train mode)."""

    @abstractmethod
    def rows(self, batch: Any) -> int:
        """How many rows `batch` holds: the weight of its loss in the epoch's mean."""

    @abstractmethod
    def validate(self) -> dict[str, float]:
        """Validation scores of the model as it is: `val_loss` and `val_accuracy` at least."""

    def describe(self, split: str, batch: Any | None) -> str:
        """The rows of `batch` of `split` (None: the whole split), for error messages."""
        return f"a {split} batch" if batch is not None else f"the {split} split"

    def blame(self, split: str, batch: Any | None) -> str:
        """The rows of `batch` whose loss is not finite (default: the whole batch)."""
        return self.describe(split, batch)

    def state(self) -> dict[str, torch.Tensor]:
        """What training changes and a checkpoint must hold (default: the model's state)."""
        return self.model.state_dict()

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Put a `state()` back into the model."""
        self.model.load_state_dict(state)
