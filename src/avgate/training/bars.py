"""Progress bars on a terminal (tqdm; nothing in a log without a TTY, where the train stage prints
one line per seed instead)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tqdm import tqdm

from avgate.training.callbacks import Callback

if TYPE_CHECKING:
    from avgate.training.loop import FitConfig


def epoch_bar(desc: str, max_epochs: int) -> tqdm:
    """A bar over the epochs of one run (the ETA assumes no early stop)."""
    return tqdm(total=max_epochs, desc=desc, unit="epoch", disable=None,
                leave=False, dynamic_ncols=True)  # fmt: skip


class EpochBar(Callback):
    """One bar over the epochs, its postfix the last epoch's loss, val_loss and val_acc."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar: tqdm | None = None

    def on_train_begin(self, config: FitConfig) -> None:
        self.bar = epoch_bar(self.desc, config.max_epochs)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.bar is None:
            return
        self.bar.update()
        self.bar.set_postfix(
            loss=f"{logs['train_loss']:.3f}",
            val_loss=f"{logs['val_loss']:.3f}",
            val_acc=f"{logs['val_accuracy']:.3f}",
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class BatchBar(Callback):
    """A bar over the batches of each epoch, for runs whose epochs take minutes."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.max_epochs = 0
        self.bar: tqdm | None = None

    def on_train_begin(self, config: FitConfig) -> None:
        self.max_epochs = config.max_epochs

    def on_epoch_begin(self, epoch: int, batches: int) -> None:
        self.close()
        self.bar = tqdm(total=batches, desc=f"{self.desc} epoch {epoch}/{self.max_epochs}",
                        unit="batch", disable=None, leave=False)  # fmt: skip

    def on_batch_end(self, epoch: int, rows: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.update()

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
