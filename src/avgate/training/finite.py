"""NaN and Inf stop training with a `NonFiniteError` that names where: the epoch, the split, the
rows (by clip where known) and the parameter.

>>> Rows("train", ["a", "b", "c"]).describe([2, 0])
'train rows 2, 0 (clips c, a)'
>>> Rows("val").describe(range(7))
'val rows 0, 1, 2, 3, 4, ...'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from avgate.errors import StageError

ROWS_LISTED = 5  # rows an error names before "..."


class NonFiniteError(StageError):
    """Training met a NaN or Inf; the message names where (epoch, rows, parameter)."""


@dataclass(frozen=True)
class Rows:
    """A split's name and the name of each of its rows (clip ids; empty: row numbers)."""

    split: str
    names: Sequence[str] = ()

    def describe(self, indices: Iterable[int]) -> str:
        """`indices` as 'train rows 3, 9 (clips a, b)', the first ROWS_LISTED of them."""
        indices = [int(i) for i in indices]
        shown = indices[:ROWS_LISTED]
        more = ", ..." if len(indices) > ROWS_LISTED else ""
        text = f"{self.split} rows {', '.join(map(str, shown))}{more}"
        if self.names:
            text += f" (clips {', '.join(self.names[i] for i in shown)}{more})"
        return text


def refuse_non_finite_rows(x: torch.Tensor, rows: Rows) -> None:
    """NonFiniteError before training when a feature row of `x` holds NaN or Inf."""
    bad = (~torch.isfinite(x)).flatten(1).any(dim=1).nonzero().flatten().tolist()
    if bad:
        raise NonFiniteError(
            f"before training: {len(bad)} of {len(x)} {rows.split} feature rows hold NaN "
            f"or Inf: {rows.describe(bad)}; re-run embed, or remove those clips' media"
        )


def refuse_non_finite_state(model: nn.Module, x: torch.Tensor, rows: Rows) -> None:
    """NonFiniteError for a NaN/Inf parameter or buffer before training: a standardisation
    (a buffer as long as a feature row of `x`) names its columns and the rows of `x` with the
    largest values there."""
    buffers = dict(model.named_buffers())
    for name, tensor in [*buffers.items(), *model.named_parameters()]:
        bad = (~torch.isfinite(tensor.detach())).flatten().nonzero().flatten()
        if not len(bad):
            continue
        where = f"{len(bad)} value(s)"
        if name in buffers and tensor.shape == x.shape[1:]:
            peaks = x[:, bad].abs().amax(dim=1)
            largest = peaks.argsort(descending=True, stable=True)[:ROWS_LISTED].tolist()
            where = (
                f"feature column(s) {bad[:ROWS_LISTED].tolist()}; the training features there "
                f"reach {peaks.max().item():.3g}, largest in {rows.describe(largest)}"
            )
        raise NonFiniteError(f"before training: model state {name!r} is not finite in {where}")


def first_non_finite_gradient(model: nn.Module) -> str | None:
    """The name of the first parameter whose gradient holds NaN or Inf, or None (one check
    for all of them, so a CUDA model synchronises once)."""
    named = [(name, p.grad) for name, p in model.named_parameters() if p.grad is not None]
    if not named:
        return None
    if torch.stack([torch.isfinite(grad).all() for _, grad in named]).all().item():
        return None
    return next(name for name, grad in named if not torch.isfinite(grad).all())
