"""The one loop (`avgate.training`): callbacks fire at their points (replayed on resume, closed on
failure), early stopping, a checkpoint of another run is never resumed, a resumed run equals an
uninterrupted one, and dvclive logs each epoch without writing dvc.yaml."""

from __future__ import annotations

import json

import pytest
import torch

from avgate.models.heads import MLPHead
from avgate.training.callbacks import Callback
from avgate.training.checkpoint import Checkpointing
from avgate.training.finite import NonFiniteError, Rows
from avgate.training.live import DvcLiveLog
from avgate.training.loop import FitConfig, fit
from avgate.training.tensors import Split, TensorClassification

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Recorder(Callback):
    """Every hook call, in order, as (hook, epoch) or (hook,)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.logs: list[dict] = []

    def on_train_begin(self, config: FitConfig) -> None:
        self.calls.append(("train_begin", config.max_epochs))

    def on_epoch_begin(self, epoch: int, batches: int) -> None:
        self.calls.append(("epoch_begin", epoch, batches))

    def on_batch_end(self, epoch: int, rows: int, loss: float) -> None:
        self.calls.append(("batch_end", epoch, rows))

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.calls.append(("epoch_end", epoch))
        self.logs.append(logs)

    def on_train_end(self, result) -> None:
        self.calls.append(("train_end", result.best_epoch))

    def close(self) -> None:
        self.calls.append(("close",))


def head_task(lr: float = 0.05, seed: int = 0) -> TensorClassification:
    """An MLP head on 30 train and 10 val rows of a noisy 2-class problem."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=generator)
    y = (x[:, 0] + 0.8 * torch.randn(40, generator=generator) > 0).long()
    torch.manual_seed(seed)
    model = MLPHead(4, 8, 2, 0.2)  # dropout: training draws on torch's global generator
    model.set_standardisation(x[:30])
    train, val = Split(x[:30], y[:30], Rows("train")), Split(x[30:], y[30:], Rows("val"))
    return TensorClassification(model, train, val, lr, 0.0, batch_size=8)


def test_callbacks_fire_in_order_and_close():
    recorder = Recorder()
    result = fit(head_task(), FitConfig(2, seed=0), [recorder])
    epoch = [("batch_end", 1, 8)] * 3 + [("batch_end", 1, 6)]
    assert recorder.calls == [
        ("train_begin", 2),
        ("epoch_begin", 1, 4), *epoch, ("epoch_end", 1),
        ("epoch_begin", 2, 4), *[(h, 2, n) for h, _, n in epoch], ("epoch_end", 2),
        ("train_end", result.best_epoch),
        ("close",),
    ]  # fmt: skip
    assert all(log.keys() == {"train_loss", "val_loss", "val_accuracy"} for log in recorder.logs)


def test_a_failed_run_still_closes_its_callbacks():
    recorder = Recorder()
    with pytest.raises(NonFiniteError, match="epoch 1: train loss is nan"):
        fit(head_task(lr=1e30), FitConfig(3, seed=0), [recorder])
    assert recorder.calls[0] == ("train_begin", 3) and recorder.calls[-1] == ("close",)
    assert not any(call[0] in ("epoch_end", "train_end") for call in recorder.calls)


def test_patience_stops_and_none_runs_every_epoch():
    stopped = fit(head_task(lr=0.5), FitConfig(60, seed=0, patience=2))
    assert stopped.epochs_run == stopped.best_epoch + 2 < 60
    every = fit(head_task(lr=0.5), FitConfig(12, seed=0, patience=None))
    assert every.epochs_run == 12


def test_a_resumed_head_run_equals_an_uninterrupted_one_and_replays_its_epochs(tmp_path):
    straight, recorded = head_task(), Recorder()
    expected = fit(straight, FitConfig(6, seed=0), [recorded])
    checkpoint = Checkpointing(tmp_path / "last.pt", "key")
    fit(head_task(), FitConfig(3, seed=0), checkpoint=checkpoint)
    resumed, replayed = head_task(seed=5), Recorder()  # other initial weights, other RNG state
    torch.manual_seed(123)
    result = fit(resumed, FitConfig(6, seed=0), [replayed], checkpoint)
    assert result.resumed_from_epoch == 3 and result.rows_trained == 3 * 30
    assert result.best_epoch == expected.best_epoch
    assert result.best_val_loss == expected.best_val_loss
    assert replayed.logs == recorded.logs  # the saved epochs replayed, the rest the same
    assert ("epoch_begin", 1, 4) not in replayed.calls  # replayed epochs do not train
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name


def test_a_changed_fingerprint_is_not_resumed(tmp_path):
    path = tmp_path / "last.pt"
    fit(head_task(), FitConfig(3, seed=0), checkpoint=Checkpointing(path, "params A"))
    result = fit(head_task(), FitConfig(4, seed=0), checkpoint=Checkpointing(path, "params B"))
    assert result.resumed_from_epoch == 0 and result.rows_trained == 4 * 30
    straight = fit(head_task(), FitConfig(4, seed=0))
    assert result.best_epoch == straight.best_epoch
    assert result.best_val_loss == straight.best_val_loss


def test_dvclive_logs_one_step_per_epoch_and_the_best_epoch_without_dvc_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = fit(head_task(), FitConfig(3, seed=0), [DvcLiveLog(tmp_path / "live")])
    summary = json.loads((tmp_path / "live/metrics.json").read_text())
    assert summary["best_epoch"] == result.best_epoch and summary["step"] == 2
    rows = (tmp_path / "live/plots/metrics/val_loss.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["step", "val_loss"] and len(rows) == 4
    assert not list(tmp_path.rglob("dvc.yaml"))


def test_a_bad_selection_metric_or_accumulation_is_refused():
    with pytest.raises(ValueError, match="selection_metric must be one of"):
        FitConfig(3, seed=0, selection_metric="test_accuracy")
    with pytest.raises(ValueError, match="accumulate must be at least 1"):
        FitConfig(3, seed=0, accumulate=0)
