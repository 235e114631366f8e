"""Checkpoints are data, never code: a pickle planted where training resumes is refused without
running, named in a warning, and training starts afresh; real checkpoints still resume."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch

from avgate.models.heads import MLPHead
from avgate.stages.train import train_seed
from avgate.training import checkpoint as checkpoints
from avgate.training.checkpoint import Checkpointing, load_state
from avgate.training.finite import Rows
from avgate.training.loop import FitConfig, fit
from avgate.training.tensors import Split, TensorClassification
from tests.conftest import run_until_train, write_params

SRC = Path(__file__).resolve().parents[1] / "src"


class Payload:
    """Unpickling it calls open(marker, "w"), creating the marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return open, (str(self.marker), "w")


def plant(path: Path, marker: Path, writer: str) -> None:
    """A training-state look-alike carrying the payload, saved by torch or as a bare pickle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"key": "planted", "model": Payload(marker)}
    if writer == "torch":
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state))


def test_a_planted_pickle_never_runs_during_train_and_is_named(project, capsys):
    params = write_params(
        project, {"embed": {"encoders": {"logmel": "logmel"}}, "train": {"seeds": [0]}}
    )
    run_until_train(params)
    checkpoint = train_seed.checkpoint_path(0)
    for writer in ("torch", "pickle"):
        marker = project / f"payload-ran-{writer}"
        plant(checkpoint, marker, writer)
        description = train_seed.run(params, seed=0)
        assert not marker.exists()
        err = capsys.readouterr().err
        assert (
            f"warning: {checkpoint}: not a usable checkpoint: a weights-only load refused " in err
        )
        assert "training starts at epoch 1" in err
        assert description["epochs_run"] >= 1 and not checkpoint.exists()


def tiny_run(checkpoint: Checkpointing | None, max_epochs: int) -> tuple[MLPHead, object]:
    torch.manual_seed(0)
    x = torch.randn(40, 4)
    y = (x[:, 0] > 0).long()
    model = MLPHead(4, 8, 2, 0.0)
    model.set_standardisation(x[:30])
    train_rows, val_rows = Split(x[:30], y[:30], Rows("train")), Split(x[30:], y[30:], Rows("val"))
    task = TensorClassification(model, train_rows, val_rows, 0.05, 0.0, 8)
    result = fit(task, FitConfig(max_epochs, 0, max_epochs), checkpoint=checkpoint)
    return model, result


def test_a_real_checkpoint_loads_weights_only_and_resumes_to_the_same_weights(tmp_path, capsys):
    checkpoint = Checkpointing(tmp_path / "last.pt", key="k")
    tiny_run(checkpoint, max_epochs=3)
    assert load_state(checkpoint.path)["progress"]["history"][2].keys() == {
        "train_loss", "val_loss", "val_accuracy"
    }  # fmt: skip
    resumed, result = tiny_run(checkpoint, max_epochs=6)
    straight, _ = tiny_run(None, max_epochs=6)
    assert result.resumed_from_epoch == 3
    for name, tensor in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], tensor), name
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (lambda path: torch.save(torch.zeros(3), path), "it holds a Tensor, not a dict"),
        (lambda path: path.write_bytes(b"\x80\x04junk" * 50), "a weights-only load refused it"),
        (lambda path: path.write_bytes(b""), "a weights-only load refused it (EOFError)"),
    ],
)
def test_an_unusable_checkpoint_is_named_and_training_starts_afresh(tmp_path, capsys, content, why):
    checkpoint = Checkpointing(tmp_path / "last.pt", key="k")
    content(checkpoint.path)
    _, result = tiny_run(checkpoint, max_epochs=2)
    assert result.resumed_from_epoch == 0 and result.epochs_run == 2
    assert f"{checkpoint.path}: not a usable checkpoint: {why}" in capsys.readouterr().err
    assert load_state(checkpoint.path)["key"] == "k"  # overwritten by the fresh run's state


def test_a_checkpoint_of_another_run_is_not_resumed_and_is_removed(tmp_path, capsys):
    checkpoint = Checkpointing(tmp_path / "last.pt", key="k")
    tiny_run(checkpoint, max_epochs=2)
    assert checkpoints.load(Checkpointing(checkpoint.path, key="other params")) is None
    assert not checkpoint.path.exists() and capsys.readouterr().err == ""
    marker = tmp_path / "payload-ran"
    plant(checkpoint.path, marker, "torch")
    assert checkpoints.load(checkpoint) is None
    assert not marker.exists() and not checkpoint.path.exists()
    assert f"{checkpoint.path}: not a usable checkpoint" in capsys.readouterr().err


def test_every_torch_load_in_the_package_is_weights_only():
    calls = [
        (path, call)
        for path in SRC.rglob("*.py")
        for call in re.findall(r"torch\.load\([^)]*\)", path.read_text())
    ]
    assert calls  # the pattern still finds the loads
    assert [c for c in calls if "weights_only=True" not in c[1]] == []
