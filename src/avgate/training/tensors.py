"""A task over feature rows held in memory: a classifier of `(x, y)` tensors trained with Adam on
shuffled mini-batches and cross-entropy (heads on cached embeddings, the eventness methods).

Rows are named by `Rows` (clip ids), so a NaN or Inf is reported by clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from avgate.training.finite import (
    Rows,
    refuse_non_finite_rows,
    refuse_non_finite_state,
)
from avgate.training.task import Task


@dataclass(frozen=True)
class Split:
    """One split's features, class indices and row names."""

    x: torch.Tensor
    y: torch.Tensor
    rows: Rows

    def __len__(self) -> int:
        return len(self.x)


def evaluate_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on (x, y), in eval mode."""
    model.eval()
    with torch.inference_mode():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    return loss, accuracy


class TensorClassification(Task):
    """`model` trained on `train` and validated on `val` (see the module doc)."""

    def __init__(
        self,
        model: nn.Module,
        train: Split,
        val: Split,
        lr: float,
        weight_decay: float,
        batch_size: int,
        lr_key: str = "train.lr",
    ) -> None:
        self.model, self.train, self.val = model, train, val
        self.lr, self.weight_decay, self.batch_size, self.lr_key = (
            lr,
            weight_decay,
            batch_size,
            lr_key,
        )

    def check(self) -> None:
        for split in (self.train, self.val):
            refuse_non_finite_rows(split.x, split.rows)
        refuse_non_finite_state(self.model, self.train.x, self.train.rows)

    def optimiser(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def batches(self, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Row indices, shuffled by `generator`, `batch_size` a batch."""
        return torch.randperm(len(self.train), generator=generator).split(self.batch_size)

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(self.model(self.train.x[batch]), self.train.y[batch])

    def rows(self, batch: torch.Tensor) -> int:
        return len(batch)

    def validate(self) -> dict[str, float]:
        val_loss, val_accuracy = evaluate_loss(self.model, self.val.x, self.val.y)
        return {"val_loss": val_loss, "val_accuracy": val_accuracy}

    def _split(self, name: str) -> Split:
        return self.train if name == "train" else self.val

    def _indices(self, name: str, batch: torch.Tensor | None) -> torch.Tensor:
        return torch.arange(len(self._split(name))) if batch is None else batch

    def describe(self, split: str, batch: torch.Tensor | None) -> str:
        return self._split(split).rows.describe(self._indices(split, batch).tolist())

    def blame(self, split: str, batch: torch.Tensor | None) -> str:
        """The rows whose own loss is not finite (all of the batch if none is alone)."""
        data, batch = self._split(split), self._indices(split, batch)
        with torch.no_grad():
            losses = nn.functional.cross_entropy(
                self.model(data.x[batch]), data.y[batch], reduction="none"
            )
        return data.rows.describe(sorted(batch[~torch.isfinite(losses)].tolist() or batch.tolist()))
