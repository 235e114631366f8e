"""A task over feature rows held in memory: a classifier of `(x, y)` tensors trained with Adam on
shuffled mini-batches and cross-entropy (heads on cached embeddings, the eventness methods).

A `Recipe` may draw the rows by class weights, smooth the labels, mix up and add noise to the
training batches; `scores` adds registered metrics to the validation logs (a selection metric).
Rows are named by `Rows` (clip ids), so a NaN or Inf is reported by clip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from avgate.training.finite import (
    Rows,
    refuse_non_finite_rows,
    refuse_non_finite_state,
)
from avgate.training.recipe import PLAIN, Recipe, add_noise, batch_generator, draw_order, mix
from avgate.training.selection import Scorer
from avgate.training.task import Task


@dataclass(frozen=True)
class Split:
    """One split's features, class indices and row names."""

    x: torch.Tensor
    y: torch.Tensor
    rows: Rows

    def __len__(self) -> int:
        return len(self.x)


def eval_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The logits of `model` for `x`, in eval mode."""
    model.eval()
    with torch.inference_mode():
        return model(x)


def loss_and_accuracy(logits: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Mean cross-entropy and accuracy of `logits` against class indices `y`."""
    loss = nn.functional.cross_entropy(logits, y).item()
    accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    return {"val_loss": loss, "val_accuracy": accuracy}


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
        recipe: Recipe = PLAIN,
        scores: Mapping[str, Scorer] | None = None,
    ) -> None:
        self.model, self.train, self.val = model, train, val
        self.lr, self.weight_decay, self.batch_size, self.lr_key = (
            lr,
            weight_decay,
            batch_size,
            lr_key,
        )
        self.recipe, self.scores = recipe, dict(scores or {})
        self.augment: torch.Generator | None = None  # this epoch's, drawn by `batches`

    def check(self) -> None:
        for split in (self.train, self.val):
            refuse_non_finite_rows(split.x, split.rows)
        refuse_non_finite_state(self.model, self.train.x, self.train.rows)

    def optimiser(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def batches(self, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Row indices, shuffled (or drawn by the recipe's row weights) by `generator`,
        `batch_size` a batch; with augmentation, the epoch's augmentation generator is seeded
        from `generator` after the order is drawn."""
        order = draw_order(len(self.train), self.recipe.row_weights, generator)
        if self.recipe.augments:
            self.augment = batch_generator(generator)
        return order.split(self.batch_size)

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the batch (label-smoothed, mixed up and noised as the recipe says)."""
        x, y = self.train.x[batch], self.train.y[batch]
        if not self.recipe.augments:
            return self._cross_entropy(self.model(x), y)
        if self.augment is None:
            raise RuntimeError("batches() seeds the augmentation before the first loss")
        lam, pairing = 1.0, None
        if self.recipe.mixup > 0:
            x, pairing, lam = mix(x, self.recipe.mixup, self.augment)
        if self.recipe.noise is not None:
            x = add_noise(x, self.recipe.noise, self.augment)
        logits = self.model(x)
        loss = self._cross_entropy(logits, y)
        if pairing is None:
            return loss
        return lam * loss + (1 - lam) * self._cross_entropy(logits, y[pairing])

    def _cross_entropy(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        smoothing = self.recipe.label_smoothing
        return nn.functional.cross_entropy(logits, y, label_smoothing=smoothing)

    def rows(self, batch: torch.Tensor) -> int:
        return len(batch)

    def validate(self) -> dict[str, float]:
        """`val_loss`, `val_accuracy` and each of `scores` on the validation rows."""
        logits = eval_logits(self.model, self.val.x)
        scores = {key: score(logits, self.val.y) for key, score in self.scores.items()}
        return loss_and_accuracy(logits, self.val.y) | scores

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
