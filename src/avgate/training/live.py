"""dvclive logging of every epoch (`dvcyaml=False`: a run must not rewrite dvc.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dvclive import Live

from avgate.training.callbacks import Callback

if TYPE_CHECKING:
    from avgate.training.loop import FitConfig
    from avgate.training.result import FitResult


class DvcLiveLog(Callback):
    """One step per epoch in `folder` (its metrics as plots), and the best epoch in the summary."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.live: Live | None = None

    def on_train_begin(self, config: FitConfig) -> None:
        self.live = Live(str(self.folder), dvcyaml=False, save_dvc_exp=False, report=None)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.live is None:
            return
        for name, value in logs.items():
            self.live.log_metric(name, value)
        self.live.next_step()

    def on_train_end(self, result: FitResult) -> None:
        if self.live is not None:
            self.live.summary["best_epoch"] = result.best_epoch

    def close(self) -> None:
        if self.live is not None:
            self.live.end()
            self.live = None
