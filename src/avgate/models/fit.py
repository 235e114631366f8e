"""Mini-batch training of a classification head with early stopping on validation loss.

Training stops with a `NonFiniteError` at the first NaN or Inf in the features, the model's
state (the standardisation), a batch loss, a gradient or the validation loss, naming the epoch
and, where they are known, the rows. Checkpoints are loaded weights-only: a file holding anything
but tensors and plain values is refused before any code in it can run.
"""

from __future__ import annotations

import copy
import io
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from avgate import disk
from avgate.errors import StageError
from avgate.numerics import pin_torch

ROWS_LISTED = 5  # rows an error names before "..."


@dataclass(frozen=True)
class FitConfig:
    lr: float
    weight_decay: float
    batch_size: int
    max_epochs: int
    patience: int
    seed: int
    selection_metric: str = "val_loss"  # or "val_accuracy": what picks the epoch to keep


SELECTION_METRICS = {"val_loss": -1.0, "val_accuracy": 1.0}  # sign: +1 maximise, -1 minimise


@dataclass(frozen=True)
class FitResult:
    best_epoch: int
    best_val_loss: float
    best_selection_value: float
    epochs_run: int
    resumed_from_epoch: int = 0


class NonFiniteError(StageError):
    """Training met a NaN or Inf; the message names where (epoch, rows, parameter)."""


@dataclass(frozen=True)
class Split:
    """One split's features, class indices and row names (clip ids; empty: row numbers)."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    rows: Sequence[str] = ()

    def describe(self, indices: Sequence[int]) -> str:
        """`indices` as 'train rows 3, 9 (clips a, b)', the first ROWS_LISTED of them."""
        shown = [int(i) for i in indices[:ROWS_LISTED]]
        more = ", ..." if len(indices) > ROWS_LISTED else ""
        text = f"{self.name} rows {', '.join(map(str, shown))}{more}"
        if self.rows:
            text += f" (clips {', '.join(self.rows[i] for i in shown)}{more})"
        return text


def pin_determinism(seed: int, num_threads: int) -> None:
    """Same seed, same params -> bit-identical results on CPU, on any x86-64 machine when the
    process pinned its kernels first (`avgate.numerics`).

    Deterministic-algorithm mode only changes CUDA kernels, and switching it on imports
    torch._inductor (1.7 s a stage), so it is set only where CUDA is present.
    """
    torch.manual_seed(seed)
    pin_torch(num_threads)
    if torch.cuda.is_available():
        torch.use_deterministic_algorithms(True)


def evaluate_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on (x, y), in eval mode."""
    model.eval()
    with torch.inference_mode():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    return loss, accuracy


@dataclass(frozen=True)
class Checkpointing:
    """Where `fit` saves its state after every epoch, and the key a saved state must carry to
    be resumed (a fingerprint of everything that decides the run)."""

    path: Path
    key: str


def _save_state(checkpoint: Checkpointing, state: dict) -> None:
    """Serialised in memory first: the exact size is checked against the free space, and a
    full disk is one line naming the path instead of torch's `unexpected pos`."""
    checkpoint.path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    disk.write_bytes(checkpoint.path, buffer.getbuffer(), "a training checkpoint")


def _load_state(checkpoint: Checkpointing | None) -> dict | None:
    if checkpoint is not None:  # a killed run's temporary
        checkpoint.path.with_name(f".{checkpoint.path.name}.tmp").unlink(missing_ok=True)
    if checkpoint is None or not checkpoint.path.exists():
        return None
    state = load_state(checkpoint.path)
    return state if state is not None and state.get("key") == checkpoint.key else None


def load_state(path: Path) -> dict | None:
    """The training state saved at `path`, loaded weights-only (tensors and plain values, so a
    planted pickle cannot run code); None, with a warning naming the file, for anything else."""
    try:
        state = torch.load(path, weights_only=True)
    except Exception as error:  # junk bytes raise anything from KeyError to UnpicklingError
        _discard(path, f"a weights-only load refused it ({type(error).__name__})")
        return None
    if not isinstance(state, dict):
        _discard(path, f"it holds a {type(state).__name__}, not a dict")
        return None
    return state


def _discard(path: Path, why: str) -> None:
    print(
        f"warning: {path}: not a usable checkpoint: {why}; ignored, training starts at epoch 1",
        file=sys.stderr,
    )


def _refuse_non_finite_rows(split: Split) -> None:
    bad = (~torch.isfinite(split.x)).any(dim=1).nonzero().flatten().tolist()
    if bad:
        raise NonFiniteError(
            f"before training: {len(bad)} of {len(split.x)} {split.name} feature rows hold NaN "
            f"or Inf: {split.describe(bad)}; re-run embed, or remove those clips' media"
        )


def _refuse_non_finite_state(model: nn.Module, train: Split) -> None:
    """NonFiniteError for a NaN/Inf parameter or buffer before training: a standardisation
    (a buffer as long as a feature row) names its columns and the rows with the largest values."""
    buffers = dict(model.named_buffers())
    for name, tensor in [*buffers.items(), *model.named_parameters()]:
        bad = (~torch.isfinite(tensor.detach())).flatten().nonzero().flatten()
        if not len(bad):
            continue
        where = f"{len(bad)} value(s)"
        if name in buffers and tensor.shape == train.x.shape[1:]:
            peaks = train.x[:, bad].abs().amax(dim=1)
            rows = peaks.argsort(descending=True, stable=True)[:ROWS_LISTED].tolist()
            where = (
                f"feature column(s) {bad[:ROWS_LISTED].tolist()}; the training features there "
                f"reach {peaks.max().item():.3g}, largest in {train.describe(rows)}"
            )
        raise NonFiniteError(f"before training: model state {name!r} is not finite in {where}")


def _refuse_non_finite_loss(
    epoch: int, model: nn.Module, split: Split, batch: torch.Tensor, loss: float, lr: float
) -> None:
    if math.isfinite(loss):
        return
    with torch.no_grad():
        losses = nn.functional.cross_entropy(
            model(split.x[batch]), split.y[batch], reduction="none"
        )
    rows = sorted(batch[~torch.isfinite(losses)].tolist() or batch.tolist())
    raise NonFiniteError(
        f"epoch {epoch}: {split.name} loss is {loss}, non-finite on {split.describe(rows)}; "
        f"their features are finite, so they are too large for float32 or the weights "
        f"diverged (train.lr is {lr:g})"
    )


def _refuse_non_finite_gradient(
    epoch: int, model: nn.Module, split: Split, batch: torch.Tensor
) -> None:
    for name, parameter in model.named_parameters():
        if parameter.grad is not None and not torch.isfinite(parameter.grad).all():
            raise NonFiniteError(
                f"epoch {epoch}: the gradient of {name!r} is not finite on a batch of "
                f"{split.describe(batch.tolist())}; lower train.lr or check those rows' features"
            )


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    config: FitConfig,
    on_epoch: Callable[[int, dict[str, float]], None] = lambda epoch, logs: None,
    checkpoint: Checkpointing | None = None,
    row_names: tuple[Sequence[str], Sequence[str]] = ((), ()),
) -> FitResult:
    """Train with Adam; keep the weights of the epoch with the best `config.selection_metric`
    (lowest validation loss, or highest validation accuracy; ties keep the earlier epoch).

    Stops after `patience` epochs without improvement. Batches are shuffled by a generator seeded
    from `config.seed`, so the same seed gives the same weights. With `checkpoint`, the whole
    state (weights, optimiser, random generators, best epoch, the epochs' logs) is saved after
    every epoch, and a saved state with the same key is resumed: `on_epoch` is replayed for the
    epochs already run, and the result equals an uninterrupted run's. A NaN or Inf anywhere is a
    NonFiniteError naming train or val rows by `row_names` (clip ids) where it can.
    """
    splits = Split("train", *train, row_names[0]), Split("val", *val, row_names[1])
    for split in splits:
        _refuse_non_finite_rows(split)
    _refuse_non_finite_state(model, splits[0])
    generator = torch.Generator().manual_seed(config.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    x, y = train
    sign = SELECTION_METRICS[config.selection_metric]
    best, best_loss, best_epoch = -float("inf"), float("inf"), 0
    best_state = copy.deepcopy(model.state_dict())
    history: list[dict[str, float]] = []
    start = 1
    saved = _load_state(checkpoint)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        best, best_loss, best_epoch = saved["best"], saved["best_loss"], saved["best_epoch"]
        best_state, history = saved["best_state"], saved["history"]
        for epoch, logs in enumerate(history, start=1):
            on_epoch(epoch, logs)
        start = len(history) + 1
    stopped = start > 1 and start - 1 - best_epoch >= config.patience
    for epoch in range(start, config.max_epochs + 1):
        if stopped:
            break
        model.train()
        total = 0.0
        for batch in torch.randperm(len(x), generator=generator).split(config.batch_size):
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            value = loss.item()
            _refuse_non_finite_loss(epoch, model, splits[0], batch, value, config.lr)
            loss.backward()
            _refuse_non_finite_gradient(epoch, model, splits[0], batch)
            optimiser.step()
            total += value * len(batch)
        val_loss, val_accuracy = evaluate_loss(model, *val)
        every = torch.arange(len(val[0]))
        _refuse_non_finite_loss(epoch, model, splits[1], every, val_loss, config.lr)
        logs = {"train_loss": total / len(x), "val_loss": val_loss, "val_accuracy": val_accuracy}
        history.append(logs)
        on_epoch(epoch, logs)
        if sign * logs[config.selection_metric] > best:
            best, best_loss, best_epoch = sign * logs[config.selection_metric], val_loss, epoch
            best_state = copy.deepcopy(model.state_dict())
        else:
            stopped = epoch - best_epoch >= config.patience
        if checkpoint is not None:
            _save_state(
                checkpoint,
                {
                    "key": checkpoint.key,
                    "model": model.state_dict(),
                    "optimiser": optimiser.state_dict(),
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "best": best,
                    "best_loss": best_loss,
                    "best_epoch": best_epoch,
                    "best_state": best_state,
                    "history": history,
                },
            )
    model.load_state_dict(best_state)
    return FitResult(
        best_epoch, best_loss, sign * best, epochs_run=len(history), resumed_from_epoch=start - 1
    )
