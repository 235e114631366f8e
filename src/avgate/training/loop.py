"""The loop: epochs of a `Task`, early stopping on the selection metric, a checkpoint after every
epoch, NaN/Inf checks, callbacks.

Each epoch trains on the task's batches in an order drawn from a generator seeded with
`FitConfig.seed` (so the same seed gives the same weights), `accumulate` batches per optimiser
step, then validates. The epoch with the best `selection_metric` is kept (lowest `val_loss`,
highest `val_accuracy`, or a registered metric the task scores on validation, in the registry's
direction: `selection.py`; ties keep the earlier epoch) and restored at the end; training stops
after `patience` epochs without a better one (None: every epoch runs). With a checkpoint, the
whole state (the task's state, the optimiser, every random generator, the record of epochs)
is saved after each epoch, and a run started with the same key resumes from it: callbacks see
the saved epochs replayed, and the result equals an uninterrupted run's, bit for bit.

A NaN or Inf in a batch loss, a gradient or the validation loss stops the run with a
NonFiniteError naming the epoch and the rows; the task checks its inputs before the first epoch.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from avgate import metrics
from avgate.training import checkpoint as checkpoints
from avgate.training import rng, selection
from avgate.training.callbacks import Callback, Callbacks
from avgate.training.checkpoint import Checkpointing
from avgate.training.finite import NonFiniteError, first_non_finite_gradient
from avgate.training.progress import Progress
from avgate.training.result import FitResult
from avgate.training.task import Task


@dataclass(frozen=True)
class FitConfig:
    """How long to train and how to pick the epoch kept.

    >>> FitConfig(max_epochs=3, seed=0, selection_metric="val_f1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: selection_metric must be one of ['val_loss', 'val_accuracy', ...], got 'val_f1'
    """

    max_epochs: int
    seed: int  # of the generator that draws each epoch's batch order
    patience: int | None = None  # epochs without a better one before stopping; None: never
    selection_metric: str = "val_loss"
    accumulate: int = 1  # batches per optimiser step

    def __post_init__(self) -> None:
        if not selection.known(self.selection_metric):
            every = [*selection.LOOP_METRICS, *metrics.METRICS]
            raise ValueError(
                f"selection_metric must be one of {every}, got {self.selection_metric!r}"
            )
        if self.accumulate < 1:
            raise ValueError(f"accumulate must be at least 1, got {self.accumulate}")


def fit(
    task: Task,
    config: FitConfig,
    callbacks: Sequence[Callback] = (),
    checkpoint: Checkpointing | None = None,
) -> FitResult:
    """Train `task` (see the module doc); its model ends holding the best epoch's state."""
    hooks = Callbacks(callbacks)
    try:
        return _fit(task, config, hooks, checkpoint)
    finally:
        hooks.close()


def _fit(
    task: Task, config: FitConfig, hooks: Callbacks, checkpoint: Checkpointing | None
) -> FitResult:
    task.check()
    generator = torch.Generator().manual_seed(config.seed)
    optimiser = task.optimiser()
    progress = _resume(task, optimiser, generator, checkpoint)
    resumed = progress.epoch
    hooks.on_train_begin(config)
    for epoch, logs in enumerate(progress.history, start=1):
        hooks.on_epoch_end(epoch, logs)
    rows = 0
    started = time.perf_counter()
    for epoch in range(resumed + 1, config.max_epochs + 1):
        if progress.stalled(config.patience):
            break
        train_loss, n = train_epoch(task, optimiser, generator, epoch, config.accumulate, hooks)
        rows += n
        logs = {"train_loss": train_loss, **validate(task, epoch, config.selection_metric)}
        hooks.on_epoch_end(epoch, logs)
        progress.record(logs, config.selection_metric, lambda: _copy(task.state()))
        if checkpoint is not None:
            _save(checkpoint, task, optimiser, generator, progress)
    seconds = time.perf_counter() - started
    task.load_state(progress.best_state)
    result = FitResult(
        best_epoch=progress.best_epoch,
        best_val_loss=progress.best_val_loss,
        best_selection_value=selection.unsigned(config.selection_metric, progress.best_value),
        epochs_run=progress.epoch,
        resumed_from_epoch=resumed,
        rows_trained=rows,
        seconds=seconds,
    )
    hooks.on_train_end(result)
    return result


def _resume(
    task: Task,
    optimiser: torch.optim.Optimizer,
    generator: torch.Generator,
    checkpoint: Checkpointing | None,
) -> Progress:
    """The saved run's record, its state put back into task, optimiser and generators; a fresh
    record (the initial state as the best so far) when there is nothing to resume."""
    saved = checkpoints.load(checkpoint)
    if saved is None:
        return Progress(best_state=_copy(task.state()))
    task.load_state(saved["model"])
    optimiser.load_state_dict(saved["optimiser"])
    rng.restore(saved["rng"], generator)
    return Progress(**saved["progress"])


def _save(
    checkpoint: Checkpointing,
    task: Task,
    optimiser: torch.optim.Optimizer,
    generator: torch.Generator,
    progress: Progress,
) -> None:
    """Everything `_resume` needs, after an epoch."""
    state = {
        "model": task.state(),
        "optimiser": optimiser.state_dict(),
        "rng": rng.capture(generator),
        "progress": progress.to_state(),
    }
    checkpoints.save(checkpoint, state)


def train_epoch(
    task: Task,
    optimiser: torch.optim.Optimizer,
    generator: torch.Generator,
    epoch: int,
    accumulate: int = 1,
    callbacks: Callback | None = None,
) -> tuple[float, int]:
    """One pass over `task.batches(generator)`, one optimiser step per `accumulate` batches (a
    shorter last group steps too); returns the mean batch loss weighted by rows, and the rows.

    With accumulation each loss is divided by its group's size, so a step on k equal batches is
    a step on their union.
    """
    if accumulate < 1:
        raise ValueError(f"accumulate must be at least 1, got {accumulate}")
    hooks = callbacks or Callback()
    batches = task.batches(generator)
    hooks.on_epoch_begin(epoch, len(batches))
    task.model.train()
    total, rows = 0.0, 0
    for group in _groups(batches, accumulate):
        optimiser.zero_grad()
        for batch in group:
            loss = task.loss(batch)
            value = loss.item()
            if not math.isfinite(value):
                raise _loss_error(task, epoch, "train", batch, value)
            (loss if len(group) == 1 else loss / len(group)).backward()
            name = first_non_finite_gradient(task.model)
            if name is not None:
                raise NonFiniteError(
                    f"epoch {epoch}: the gradient of {name!r} is not finite on a batch of "
                    f"{task.describe('train', batch)}; lower {task.lr_key} or check those "
                    "rows' features"
                )
            n = task.rows(batch)
            total += value * n
            rows += n
            hooks.on_batch_end(epoch, n, value)
        optimiser.step()
    return (total / rows if rows else math.nan), rows


def validate(task: Task, epoch: int, metric: str) -> dict[str, float]:
    """The task's validation scores; NonFiniteError naming the rows if the loss is not finite,
    ValueError if they lack the selection `metric`."""
    logs = task.validate()
    if not math.isfinite(logs["val_loss"]):
        raise _loss_error(task, epoch, "val", None, logs["val_loss"])
    if selection.log_key(metric) not in logs:
        raise ValueError(
            f"selection metric {metric!r}: the task's validation logs hold {sorted(logs)}, "
            f"not {selection.log_key(metric)!r}; give the task its scorer"
        )
    return logs


def _loss_error(task: Task, epoch: int, split: str, batch: Any, value: float) -> NonFiniteError:
    return NonFiniteError(
        f"epoch {epoch}: {split} loss is {value}, non-finite on {task.blame(split, batch)}; "
        f"their features are finite, so they are too large for float32 or the weights "
        f"diverged ({task.lr_key} is {task.lr:g})"
    )


def _copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of `state` on the CPU, unchanged by further training."""
    return {name: value.detach().to("cpu", copy=True) for name, value in state.items()}


def _groups(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while group := list(itertools.islice(iterator, size)):
        yield group
