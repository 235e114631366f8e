"""Hooks the loop calls at each point of a run (Lightning's Callback, in small).

A resumed run replays `on_epoch_end` for the epochs its checkpoint holds, so what a callback
writes equals what it writes in an uninterrupted run. `close` is called at the end of every run,
failed ones included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from avgate.training.loop import FitConfig
    from avgate.training.result import FitResult


class Callback:
    """Does nothing at each hook unless a subclass says otherwise."""

    def on_train_begin(self, config: FitConfig) -> None:
        """Before the first epoch (after a resumed run's checkpoint is loaded)."""

    def on_epoch_begin(self, epoch: int, batches: int) -> None:
        """Before `epoch`'s first training batch (not called for replayed epochs)."""

    def on_batch_end(self, epoch: int, rows: int, loss: float) -> None:
        """After each training batch's backward pass."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """After `epoch`'s validation: `logs` holds train_loss, val_loss and val_accuracy."""

    def on_train_end(self, result: FitResult) -> None:
        """After the last epoch, the best epoch's state restored."""

    def close(self) -> None:
        """At the end of every run, whether it succeeded or not."""


class Callbacks(Callback):
    """Several callbacks called in order as one."""

    def __init__(self, callbacks: Sequence[Callback] = ()) -> None:
        self.callbacks = list(callbacks)

    def on_train_begin(self, config: FitConfig) -> None:
        for callback in self.callbacks:
            callback.on_train_begin(config)

    def on_epoch_begin(self, epoch: int, batches: int) -> None:
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch, batches)

    def on_batch_end(self, epoch: int, rows: int, loss: float) -> None:
        for callback in self.callbacks:
            callback.on_batch_end(epoch, rows, loss)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs)

    def on_train_end(self, result: FitResult) -> None:
        for callback in self.callbacks:
            callback.on_train_end(result)

    def close(self) -> None:
        for callback in self.callbacks:
            callback.close()
