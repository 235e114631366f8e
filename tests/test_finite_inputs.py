"""Finite numbers or a named failure: NaN/Inf audio is refused per file at ingest, training
stops at the first NaN or Inf naming the epoch and the clips, and hostile media files each get
a reason naming the file or decode right."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from avgate.cli import is_user_error, main
from avgate.errors import StageError
from avgate.finetune.none import row_names
from avgate.layout.inputs import Examples
from avgate.models.heads import MLPHead
from avgate.stages import ingest
from avgate.training.callbacks import Callback
from avgate.training.finite import NonFiniteError, Rows
from avgate.training.loop import FitConfig, fit
from avgate.training.result import finite_or_none
from avgate.training.tensors import Split, TensorClassification
from tests import formats, hostile_media
from tests.conftest import run_until_train, write_params

NAN_REASON = "non-finite samples: 12 NaN, 0 Inf"
CLIP_TASK = {"task": {"kind": "clip"}, "evaluate": {"primary_metric": "accuracy"}}


def folder_dataset(tmp_path, monkeypatch, good: int, overrides: dict | None = None):
    """data/raw/tones/<label>/<n>.wav: `good` tones over two labels and one WAV holding 12 NaN
    samples; returns the params and the NaN file's path as the manifest names it."""
    root = tmp_path / "data/raw/tones"
    for n in range(good):
        label = ("low", "high")[n % 2]
        formats.write_tone(root / label / f"take{n:02d}.wav", 200.0 + 25.0 * n)
    poisoned = root / "low" / "poisoned.wav"
    hostile_media.write_nan_float(poisoned)
    monkeypatch.chdir(tmp_path)
    settings = {"data": {"name": "tones", "format": "folder"}} | CLIP_TASK
    params = write_params(tmp_path, settings | (overrides or {}))
    return params, str(params.data.raw_dir / "low" / "poisoned.wav")


def test_a_nan_wav_among_40_good_is_named_non_finite_and_the_run_goes_on(tmp_path, monkeypatch):
    _, poisoned = folder_dataset(tmp_path, monkeypatch, good=40)
    assert main(["ingest"]) == 0
    report = json.loads((tmp_path / "metrics/ingest.json").read_text())
    assert (report["n_ok"], report["n_failed"]) == (40, 1)
    assert report["failures"] == [
        {"clip_id": "low/poisoned", "path": poisoned, "reason": f"{poisoned}: {NAN_REASON}"}
    ]
    segments = pd.read_parquet(tmp_path / "data/interim/tones/segments.parquet")
    assert "low/poisoned" not in set(segments["clip_id"]) and segments["clip_id"].nunique() == 40
    assert main(["split"]) == 0
    splits = pd.read_parquet(tmp_path / "data/splits/tones/splits.parquet")
    assert len(splits) == 40 and "low/poisoned" not in set(splits["clip_id"])


def test_a_nan_wav_that_drops_the_usable_share_fails_ingest_naming_it(tmp_path, monkeypatch):
    params, poisoned = folder_dataset(tmp_path, monkeypatch, good=10)  # 10 of 11 < 0.95
    with pytest.raises(StageError, match="only 10 of 11 files are usable") as error:
        ingest.run(params)
    assert f"{poisoned}: {NAN_REASON}" in str(error.value)
    assert not (tmp_path / "data/interim/tones/manifest.parquet").exists()


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory) -> tuple[dict, pd.DataFrame, dict]:
    """One ingest over every hostile case, 60 good tones and a copy of one under another label:
    the report, the manifest and each case's path as the manifest names it."""
    root = tmp_path_factory.mktemp("hostile")
    raw = root / "data/raw/hostile"
    for n in range(60):
        formats.write_tone(raw / "good" / f"take{n:02d}.wav", 200.0 + 10.0 * n)
    hostile_media.write_all(raw)
    (raw / "other").mkdir()
    shutil.copyfile(raw / "good/take00.wav", raw / "other/take00.wav")  # a label conflict
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        settings = {"data": {"name": "hostile", "format": "folder"}} | CLIP_TASK
        params = write_params(root, settings | {"ingest": {"min_ok_fraction": 0.5}})
        report = ingest.run(params)
    manifest = pd.read_parquet(root / "data/interim/hostile/manifest.parquet")
    folder = params.data.raw_dir / hostile_media.LABEL
    return report, manifest, {c.name: str(folder / c.name) for c in hostile_media.CASES}


@pytest.mark.parametrize("case", hostile_media.CASES, ids=lambda case: case.name)
def test_each_hostile_file_gets_a_reason_naming_it_or_decodes(hostile_report, case):
    report, manifest, paths = hostile_report
    row = manifest.set_index("path").loc[paths[case.name]]
    failures = {f["path"]: f["reason"] for f in report["failures"]}
    if case.reason is None:
        assert row["status"] == "ok" and paths[case.name] not in failures
        assert row["duration_s"] == pytest.approx(case.duration_s, abs=1e-3)
    else:
        assert failures[paths[case.name]].startswith(f"{paths[case.name]}: {case.reason}")
    assert report["n_ok"] == 61 + sum(c.reason is None for c in hostile_media.CASES)


def test_a_byte_identical_file_under_another_label_is_a_named_label_conflict(hostile_report):
    report, _, paths = hostile_report
    raw = paths["tone.flac"].rsplit("/", 2)[0]
    copies = [f"{raw}/good/take00.wav", f"{raw}/other/take00.wav"]
    assert report["duplicates"]["label_conflicts"] == [
        {"kind": "exact", "paths": copies, "labels": ["good", "other"]}
    ]
    assert (
        f"label conflict: byte-identical files carry different labels: {copies[0]} ('good'), "
        f"{copies[1]} ('other'); keep one file with its right label (duplicates.label_conflicts)"
    ) in report["warnings"]


# Training: every NaN or Inf stops `fit` with the epoch and the rows named.

NAMES = ([f"train{i}" for i in range(30)], [f"val{i}" for i in range(10)])


def features(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    x = torch.randn(40, 4)
    return x, (x[:, 0] > 0).long()


class Logged(Callback):
    def __init__(self, logs: list[dict]) -> None:
        self.logs = logs

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.logs.append(logs)


def train_head(x, y, lr: float = 0.05, model: nn.Module | None = None, logs=None) -> None:
    """Fit on rows 0-29 and validate on rows 30-39, for 5 epochs; `logs` gets each epoch's."""
    if model is None:
        model = MLPHead(4, 8, 2, 0.0)
        model.set_standardisation(x[:30])
    logs = [] if logs is None else logs
    train = Split(x[:30], y[:30], Rows("train", NAMES[0]))
    val = Split(x[30:], y[30:], Rows("val", NAMES[1]))
    task = TensorClassification(model, train, val, lr, weight_decay=0.0, batch_size=8)
    fit(task, FitConfig(5, seed=0, patience=5), [Logged(logs)])


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_features_are_refused_before_training_naming_the_clips(value):
    x, y = features()
    x[3, 1] = x[17, 2] = value
    with pytest.raises(NonFiniteError, match="before training: 2 of 30 train feature rows"):
        train_head(x, y)
    x, y = features()
    x[32, 0] = value
    with pytest.raises(NonFiniteError, match=r"val rows 2 \(clips val2\); re-run embed"):
        train_head(x, y)


def test_an_overflowing_standardisation_names_the_column_and_the_clips():
    x, y = features()
    x[:30:2, 2] = 3e38  # finite, but their float32 mean overflows
    with pytest.raises(NonFiniteError) as error:
        train_head(x, y)
    message = str(error.value)
    assert "model state 'mean' is not finite in feature column(s) [2]" in message
    assert "reach 3e+38" in message and "clips train0, train2, train4, train6, train8" in message


def test_a_diverging_loss_stops_at_its_epoch_with_the_learning_rate():
    x, y = features()
    with pytest.raises(
        NonFiniteError, match=r"epoch 1: train loss is nan, non-finite on train rows"
    ) as error:
        train_head(x, y, lr=1e30)
    assert "train.lr is 1e+30" in str(error.value)


def test_a_val_row_too_large_for_float32_logits_is_named():
    x, y = features()
    x[35] = 3e38
    logs: list[dict] = []
    with pytest.raises(NonFiniteError, match=r"epoch 1: val loss is \w+, non-finite on val rows 5"):
        train_head(x, y, logs=logs)
    assert logs == []  # the epoch was never logged: dvclive sees no NaN
    x, y = features()
    train_head(x, y, logs=logs)
    assert len(logs) == 5  # the same run without the large row trains


class SqrtHead(nn.Module):
    """A head whose extra parameter has an infinite gradient at 0 (d sqrt(w) / dw) while the
    loss stays finite."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + torch.sqrt(self.w)


def test_a_non_finite_gradient_names_the_parameter_and_the_epoch():
    x, y = features()
    with pytest.raises(NonFiniteError, match=r"epoch 1: the gradient of 'w' is not finite"):
        train_head(x, y, model=SqrtHead())


def test_non_finite_errors_print_as_user_errors():
    assert is_user_error(NonFiniteError("x")) and isinstance(NonFiniteError("x"), StageError)


def test_head_description_numbers_are_finite_or_null_and_rows_are_named():
    assert finite_or_none(0.25) == 0.25
    assert finite_or_none(float("inf")) is None and finite_or_none(float("nan")) is None
    index = pd.DataFrame({"clip_id": ["a", "a", "b"], "t": [0, 1, 0]})
    data = Examples(np.zeros((3, 1)), np.array(["x", "x", "y"]), index)
    assert row_names(data) == ["a@0s", "a@1s", "b@0s"]
    assert row_names(Examples(data.x, data.labels, index[["clip_id"]])) == ["a", "a", "b"]


def test_the_train_stage_names_the_clip_of_a_poisoned_embedding_row(project, capsys):
    params = write_params(
        project, {"embed": {"encoders": {"logmel": "logmel"}}, "train": {"seeds": [0]}}
    )
    run_until_train(params)
    store = project / "data/embeddings/logmel"
    rows = np.load(store / "train.npy")
    index = pd.read_parquet(store / "train.index.parquet")
    rows[7, 3] = np.nan
    np.save(store / "train.npy", rows)
    assert main(["train"]) == 1
    err = capsys.readouterr().err
    clip, second = index.loc[7, "clip_id"], index.loc[7, "t"]
    assert "avgate train: error: before training: 1 of" in err
    assert f"(clips {clip}@{second}s)" in err
    assert not (project / "models/seed0").exists()
