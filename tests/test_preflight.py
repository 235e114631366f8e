import numpy as np
import pandas as pd
import pytest

from avgate import preflight
from avgate.datasets.checks import Rejected


def manifest(**overrides) -> pd.DataFrame:
    base = {
        "clip_id": ["a", "b", "c", "d", "e"],
        "path": [f"raw/{c}.wav" for c in "abcde"],
        "label": ["x", "x", "x", "y", "y"],
        "group": ["g1", "g1", "g2", "g3", "g3"],
        "sha256": ["h1", "h1", "h2", "h3", "h4"],
        "audio_sha256": ["p1", "p1", "p2", "p2", "p3"],
        "duration_s": [1.0, 1.0, 2.0, 3.0, 4.0],
        "video_duration_s": [None, None, None, 1.0, 4.2],
        "sample_rate": [16000, 16000, 8000, 16000, 16000],
        "channels": [1, 1, 2, 1, 1],
        "has_video": [False, False, False, True, True],
        "status": ["ok"] * 5,
    }
    base.update(overrides)
    return pd.DataFrame(base)


def build(frame: pd.DataFrame, ratio: float = 5.0) -> dict:
    return preflight.report(frame, 0.95, ratio, 0.5, ["from the adapter"])


def test_exact_and_same_audio_duplicates_are_told_apart():
    summary = build(manifest())
    assert summary["duplicates"]["exact"] == [["a", "b"]]
    assert summary["duplicates"]["same_audio"] == [["c", "d"]]  # a/b already count as exact


def test_audio_video_length_mismatch_beyond_tolerance():
    assert build(manifest())["av_mismatch"] == [{"clip_id": "d", "audio_s": 3.0, "video_s": 1.0}]


def test_distributions_and_counts():
    summary = build(manifest())
    assert summary["duration_s"]["median"] == 2.0
    assert summary["duration_s"]["p95"] == pytest.approx(np.percentile([1, 1, 2, 3, 4], 95))
    assert summary["sample_rate"] == {"8000": 1, "16000": 4}
    assert summary["channels"] == {"1": 4, "2": 1}


def test_imbalance_warning_follows_the_ratio():
    frame = manifest(label=["x", "x", "x", "x", "y"])
    assert build(frame, ratio=5.0)["class_balance"]["imbalance_ratio"] == 4.0
    assert not any("imbalance" in w for w in build(frame, ratio=5.0)["warnings"])
    assert any("imbalance 4.0:1" in w for w in build(frame, ratio=3.0)["warnings"])


def test_failures_are_listed_and_left_out_of_the_statistics():
    frame = manifest(status=["ok", "ok", "ok", "ok", "raw/e.wav: empty file (0 bytes)"])
    summary = build(frame)
    assert summary["n_failed"] == 1 and summary["ok_fraction"] == 0.8
    assert summary["failures"] == [
        {"clip_id": "e", "path": "raw/e.wav", "reason": "raw/e.wav: empty file (0 bytes)"}
    ]
    assert summary["duration_s"]["max"] == 3.0
    assert summary["warnings"][0] == "from the adapter"


def test_duration_histogram_counts_every_clip():
    histogram = preflight.duration_histogram(pd.Series([1.0, 1.5, 2.0, 9.0]))
    assert histogram["clips"].sum() == 4 and len(histogram) == preflight.HISTOGRAM_BINS


def test_a_label_whose_every_file_failed_is_a_warning_and_is_counted():
    frame = manifest(status=["ok", "ok", "ok", "raw/d.wav: empty", "raw/e.wav: silent"])
    summary = build(frame)
    assert summary["labels_lost"] == {"y": 2}
    assert "y" not in summary["label_counts"]
    assert any(
        w.startswith("label 'y' lost all its 2 file(s) at ingest") for w in summary["warnings"]
    )
    assert build(manifest(status=["ok", "ok", "ok", "ok", "bad"]))["labels_lost"] == {}


def test_lines_left_out_are_listed_warned_and_counted_against_the_records():
    rejected = [
        Rejected("Annotations.txt", 7, "need StartTime < EndTime, got 0, 0: 'x&id&good&0&0'")
    ]
    summary = preflight.report(manifest(), 0.95, 5.0, 0.5, [], rejected)
    assert summary["rejected_lines"] == [
        {"file": "Annotations.txt", "line": 7, "reason": rejected[0].reason}
    ]
    assert summary["warnings"][0] == f"Annotations.txt:7: {rejected[0].reason}; line left out"
    assert summary["records_kept_fraction"] == pytest.approx(5 / 6, abs=1e-6)
    assert build(manifest())["records_kept_fraction"] == 1.0


def test_identical_files_with_different_labels_are_named_as_a_label_conflict():
    frame = manifest(label=["x", "y", "x", "y", "y"])  # a/b byte-identical, c/d same audio
    summary = build(frame)
    assert summary["duplicates"]["label_conflicts"] == [
        {"kind": "exact", "paths": ["raw/a.wav", "raw/b.wav"], "labels": ["x", "y"]},
        {"kind": "same_audio", "paths": ["raw/c.wav", "raw/d.wav"], "labels": ["x", "y"]},
    ]
    conflicts = [w for w in summary["warnings"] if w.startswith("label conflict")]
    assert conflicts == [
        "label conflict: byte-identical files carry different labels: raw/a.wav ('x'), "
        "raw/b.wav ('y'); keep one file with its right label (duplicates.label_conflicts)",
        "label conflict: files with identical audio carry different labels: raw/c.wav ('x'), "
        "raw/d.wav ('y'); keep one file with its right label (duplicates.label_conflicts)",
    ]
    assert summary["duplicates"]["exact"] == [["a", "b"]]  # still duplicates too
    agreeing = manifest(label=["x", "x", "x", "x", "y"])  # each set under one label
    assert build(agreeing)["duplicates"]["label_conflicts"] == []
    assert not any(w.startswith("label conflict") for w in build(agreeing)["warnings"])
