"""Ingest and split say what they could check: every warning on the console, AVE lines left
out one by one, empty audio called empty, a label that lost every file named, and an UNKNOWN
leakage verdict when every clip is its own group."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile

from avgate.cli import main
from avgate.errors import StageError
from avgate.stages import ingest
from tests import formats
from tests.conftest import write_params


def project(tmp_path, monkeypatch, fmt: str, overrides: dict):
    """A project with the `fmt` fixture under data/raw/<fmt>; returns params and the root."""
    root = tmp_path / "data/raw" / fmt
    root.mkdir(parents=True)
    expected = getattr(formats, f"write_{fmt}")(root)
    monkeypatch.chdir(tmp_path)
    settings = {"data": {"name": fmt, "format": fmt}, "task": {"kind": "clip"},
                "evaluate": {"primary_metric": "accuracy"}} | overrides  # fmt: skip
    return write_params(tmp_path, settings), root, expected


def ingest_report(tmp_path) -> dict:
    return json.loads((tmp_path / "metrics/ingest.json").read_text())


@pytest.fixture
def ave_project(tmp_path, monkeypatch):
    overrides = {"task": {"kind": "event"}, "split": {"method": "predefined"},
                 "evaluate": {"primary_metric": "segment_accuracy"}}  # fmt: skip
    return project(tmp_path, monkeypatch, "ave", overrides)


def test_an_ave_line_of_zero_length_is_left_out_named_and_printed(tmp_path, ave_project, capsys):
    _, root, expected = ave_project
    with open(root / "Annotations.txt", "a") as stream:
        stream.write("x&id&good&0&0\n")
    assert main(["ingest"]) == 0
    report = ingest_report(tmp_path)
    where = "data/raw/ave/Annotations.txt"  # as params name it, relative to the project
    assert report["rejected_lines"] == [
        {"file": where, "line": 38, "reason": "need StartTime < EndTime, got 0, 0: 'x&id&good&0&0'"}
    ]
    manifest = pd.read_parquet(tmp_path / "data/interim/ave/manifest.parquet")
    assert manifest["clip_id"].tolist() == expected["clip_id"].tolist()
    out = capsys.readouterr().out
    assert f"ingest: warning: {where}:38: need StartTime < EndTime" in out


def test_too_many_lines_left_out_fail_the_stage_after_the_report(tmp_path, ave_project):
    params, root, _ = ave_project
    with open(root / "Annotations.txt", "a") as stream:
        stream.write("x&id1&good&0&0\nx&id2&good&3\ny&id3&good&2&1\n")  # 36 kept of 39
    with pytest.raises(StageError, match=r"3 source line\(s\) left out, 36 kept") as error:
        ingest.run(params)
    assert "data/raw/ave/Annotations.txt:39: expected 5" in str(error.value)
    assert [r["line"] for r in ingest_report(tmp_path)["rejected_lines"]] == [38, 39, 40]
    assert not (tmp_path / "data/interim/ave/manifest.parquet").exists()


def test_folder_without_groups_prints_every_warning_and_an_unknown_verdict(
    tmp_path, monkeypatch, capsys
):
    overrides = {"ingest": {"min_ok_fraction": 0.9}}
    _, root, expected = project(tmp_path, monkeypatch, "folder", overrides)
    for name in ("alice_0.wav", "bob_0.wav"):  # a label none of whose files holds a sample
        (root / "hum").mkdir(exist_ok=True)
        soundfile.write(root / "hum" / name, np.zeros(0), formats.SAMPLE_RATE, "PCM_16")
    assert main(["ingest"]) == 0
    report = ingest_report(tmp_path)
    assert report["labels_lost"] == {"hum": 2}
    assert {f["reason"].split(": ", 1)[1] for f in report["failures"]} == {
        "empty: a header and 0 samples"
    }
    out = capsys.readouterr().out.splitlines()
    warnings = [line.removeprefix("ingest: warning: ") for line in out if "warning" in line]
    assert warnings == report["warnings"] and len(warnings) >= 2
    assert any("no group_pattern" in w for w in warnings)
    assert any(w.startswith("label 'hum' lost all its 2 file(s)") for w in warnings)
    assert main(["split"]) == 0
    out = capsys.readouterr().out
    assert "UNKNOWN: every group holds one clip" in out and "data.folder.group_pattern" in out
    leakage = json.loads((tmp_path / "metrics/leakage.json").read_text())
    assert leakage["verdict"].startswith("UNKNOWN")
    assert leakage["group_check"]["singleton_groups"] == len(expected)


def test_an_option_of_another_format_is_reported_as_ignored(tmp_path, monkeypatch, capsys):
    sections = {"folder": {"group_pattern": "^(x)"}, "csv": {"manifest": "manifest.csv"}}
    project(tmp_path, monkeypatch, "fsdd", {"data": {"name": "fsdd", "format": "fsdd", **sections}})
    assert main(["ingest"]) == 0
    note = "data.folder.group_pattern '^(x)' is ignored: it applies to data.format folder, not fsdd"
    assert ingest_report(tmp_path)["warnings"] == [note]
    assert f"ingest: warning: {note}" in capsys.readouterr().out


def test_a_typo_in_a_format_section_fails_ingest_naming_the_key(tmp_path, monkeypatch, capsys):
    data = {"name": "fsdd", "format": "fsdd", "folder": {"group_patern": "^(x)"}}
    project(tmp_path, monkeypatch, "fsdd", {"data": data})
    assert main(["ingest"]) != 0
    err = capsys.readouterr().err
    assert "params.yaml: unknown key(s) ['group_patern'] in data.folder" in err
    assert not (tmp_path / "metrics/ingest.json").exists()
