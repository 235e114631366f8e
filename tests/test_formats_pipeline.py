"""ingest + split on small fixtures in each real dataset layout, through the stage functions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avgate.errors import StageError
from avgate.stages import audit_embeddings, embed, ingest, split
from tests import formats
from tests.conftest import write_params

CASES = {
    # format: (writer, params overrides beyond data.*)
    "ave": (
        formats.write_ave,
        {
            "task": {"kind": "event"},
            "split": {"method": "predefined"},
            "evaluate": {"primary_metric": "segment_accuracy"},
        },
    ),
    "esc50": (formats.write_esc50, {"split": {"method": "predefined", "test_fold": 1}}),
    "fsdd": (formats.write_fsdd, {"split": {"method": "group"}}),
    "folder": (formats.write_folder, {"split": {"method": "group"}}),
    "csv": (formats.write_csv, {"split": {"method": "predefined"}}),
}


def prepare(tmp_path, monkeypatch, fmt: str, overrides: dict | None = None):
    writer, case = CASES[fmt]
    root = tmp_path / "data/raw" / fmt
    root.mkdir(parents=True)
    expected = writer(root)
    data = {"name": fmt, "format": fmt}
    if fmt == "folder":
        data["folder"] = {"group_pattern": formats.FOLDER_PATTERN}
    settings = {"data": data, "task": {"kind": "clip"}, "embed": {"encoders": {"logmel": "logmel"}},
                "evaluate": {"primary_metric": "accuracy"}} | case | (overrides or {})  # fmt: skip
    monkeypatch.chdir(tmp_path)
    return write_params(tmp_path, settings), root, expected


@pytest.mark.parametrize("fmt", sorted(CASES))
def test_ingest_and_split_each_format(tmp_path, monkeypatch, fmt):
    params, root, expected = prepare(tmp_path, monkeypatch, fmt)
    before = formats.snapshot(root)
    report = ingest.run(params)
    manifest = pd.read_parquet(tmp_path / f"data/interim/{fmt}/manifest.parquet")
    assert report["n_failed"] == 0 and report["n_ok"] == len(expected)
    assert manifest["clip_id"].tolist() == expected["clip_id"].tolist()
    assert manifest["group"].tolist() == expected["group"].tolist()
    leakage = split.run(params)
    assert leakage["verdict"].startswith("no leakage")
    assert leakage["group_overlap"] == {"train|val": 0, "train|test": 0, "val|test": 0}
    if params.split.method == "group":  # the retry covers every label on every side
        assert not any(leakage["labels_missing"].values())
    else:  # official splits may leave a class out of val or test, never out of train
        assert leakage["labels_missing"]["train"] == []
    assert formats.snapshot(root) == before  # data/raw is never written


def test_predefined_split_follows_the_official_files(tmp_path, monkeypatch):
    params, _, expected = prepare(tmp_path, monkeypatch, "csv")
    ingest.run(params)
    split.run(params)
    splits = pd.read_parquet(tmp_path / "data/splits/csv/splits.parquet")
    assert dict(zip(splits["clip_id"], splits["split"], strict=True)) == dict(
        zip(expected["clip_id"], expected["split"], strict=True)
    )


def test_random_split_is_refused_then_measured_when_leakage_is_allowed(tmp_path, monkeypatch):
    from avgate.declare import ConfigError

    with pytest.raises(ConfigError, match="split.allow_leakage: true"):
        prepare(tmp_path, monkeypatch, "fsdd", {"split": {"method": "random"}})
    params, _, _ = prepare(
        tmp_path / "again", monkeypatch, "fsdd",
        {"split": {"method": "random", "allow_leakage": True}},
    )  # fmt: skip
    ingest.run(params)
    leakage = split.run(params)
    assert leakage["verdict"].startswith("LEAKY")
    assert sum(leakage["group_overlap"].values()) > 0
    assert json.loads((tmp_path / "again/metrics/leakage.json").read_text()) == leakage


def test_intra_group_split_shares_every_group_on_purpose(tmp_path, monkeypatch):
    params, _, _ = prepare(tmp_path, monkeypatch, "csv", {"split": {"method": "intra_group"}})
    ingest.run(params)
    leakage = split.run(params)
    assert "shared on purpose" in leakage["verdict"]
    assert leakage["n_groups"]["train"] == leakage["n_groups"]["val"] == len(formats.GROUPS)


def test_event_task_on_a_format_without_spans_is_refused(tmp_path, monkeypatch):
    event = {"task": {"kind": "event"}, "evaluate": {"primary_metric": "segment_accuracy"}}
    params, root, _ = prepare(tmp_path, monkeypatch, "fsdd", event)
    with pytest.raises(StageError, match="set task.kind: clip"):
        ingest.run(params)


def test_duplicate_file_across_groups_is_reported_and_refused_by_split(tmp_path, monkeypatch):
    params, root, expected = prepare(tmp_path, monkeypatch, "fsdd")
    first, last = expected["path"].iloc[0], expected["path"].iloc[-1]  # other speakers
    Path(last).write_bytes(Path(first).read_bytes())
    report = ingest.run(params)
    assert report["duplicates"]["exact"] == [
        [expected["clip_id"].iloc[0], expected["clip_id"].iloc[-1]]
    ]
    assert any("byte-identical" in w for w in report["warnings"])


def test_audit_reports_a_near_duplicate_across_splits(project):
    params = write_params(project, {"embed": {"encoders": {"logmel": "logmel"}}})
    ingest.run(params)
    split.run(params)
    embed.run(params, "logmel")
    clean = audit_embeddings.run(params)
    assert all(clean["near_duplicates"][pair]["pairs"] == 0 for pair in ("train|test", "val|test"))
    assert clean["group_from_embedding"]["chance"] > 0
    folder = project / "data/embeddings/logmel"
    train, test = np.load(folder / "train.npy"), np.load(folder / "test.npy", mmap_mode="r+")
    train_index = pd.read_parquet(folder / "train.index.parquet")
    test_index = pd.read_parquet(folder / "test.index.parquet")
    source = train_index["clip_id"].iloc[0]
    target = test_index["clip_id"].iloc[0]
    rows = (train_index["clip_id"] == source).to_numpy()
    test[(test_index["clip_id"] == target).to_numpy()] = train[rows] * 1.001  # a re-encoded copy
    test.flush()
    found = audit_embeddings.run(params)["near_duplicates"]["train|test"]
    assert found["pairs"] == 1
    assert (found["examples"][0]["id_a"], found["examples"][0]["id_b"]) == (source, target)


def silence(path: Path) -> None:
    formats.write_tone(path, 440.0)
    data = path.read_bytes()
    path.write_bytes(data[:44] + bytes(len(data) - 44))  # keep the WAV header, zero the samples


BAD_MEDIA = {
    "zero-length": (lambda path: path.write_bytes(b""), "empty file (0 bytes)"),
    "silent": (silence, "silent: every decoded audio sample is zero"),
    "truncated": (lambda path: path.write_bytes(path.read_bytes()[:30]), ""),
    "corrupt": (lambda path: path.write_bytes(b"RIFF" + bytes(range(256)) * 8), ""),
    "unsupported": (lambda path: path.write_text("a text file named .wav\n"), ""),
}


@pytest.mark.parametrize("case", sorted(BAD_MEDIA))
def test_bad_media_is_reported_per_file_and_raw_data_is_untouched(tmp_path, monkeypatch, case):
    params, root, expected = prepare(
        tmp_path, monkeypatch, "fsdd", {"ingest": {"min_ok_fraction": 0.5}}
    )
    damage, reason = BAD_MEDIA[case]
    victim = Path(expected["path"].iloc[3])
    damage(victim)
    before = formats.snapshot(root)
    report = ingest.run(params)
    assert [f["clip_id"] for f in report["failures"]] == [expected["clip_id"].iloc[3]]
    message = report["failures"][0]["reason"]
    assert message.startswith(str(victim.relative_to(tmp_path))) and reason in message
    split.run(params)  # the failed file is left out, the rest splits as usual
    assert formats.snapshot(root) == before
