"""examples/tail-sweep.sh on the tiny FSDD fixture (digits 0-2, six speakers), in a scratch copy
of the project: the rare digit against the rest, the sweep of train.sampler and
train.label_smoothing as four DVC experiments, ranked by validation tail F1. Its own file, so
that pytest-xdist runs it beside tests/test_examples.py."""

from __future__ import annotations

import re

import pytest

from tests import formats
from tests.scratch import sh

pytestmark = pytest.mark.slow
RUNS = ("tail-base", "tail-shuffle-03", "tail-balanced-00", "tail-balanced-03")


def test_the_tail_sweep_runs_four_experiments_ranked_by_tail_f1(example_project, tmp_path):
    source = tmp_path / "fsdd"
    formats.write_fsdd(source)
    out = sh(example_project, "env", "TAIL_DIGIT=2", "examples/tail-sweep.sh", str(source))
    table = out[out.index("== the sweep") :]
    header = next(line for line in table.splitlines() if "Experiment" in line)
    assert [cell.strip() for cell in header.split("|")[2:-1]] == [
        "tail_f1",
        "tail_recall",
        "train.label_smoothing",
        "train.sampler",
    ]
    rows = {
        name: [cell.strip() for cell in line.split("|")[2:-1]]
        for line in table.splitlines()
        for name in re.findall(r"\[(tail-[a-z]+-?\d*)\]", line)
    }
    assert set(rows) == set(RUNS)
    assert rows["tail-balanced-03"][2:] == ["0.3", "balanced"]
    scores = [float(rows[name][0]) for name in rows]
    assert scores == sorted(scores, reverse=True)  # best validation tail F1 first
    assert all(0.0 <= float(row[1]) <= 1.0 for row in rows.values())  # tail recall, val


def test_a_digit_with_no_recording_is_refused_naming_it(example_project, tmp_path):
    source = tmp_path / "fsdd"
    formats.write_fsdd(source)
    out = sh(example_project, "bash", "-c",
             f"TAIL_DIGIT=7 examples/tail-sweep.sh {source} 2>&1 || true")  # fmt: skip
    assert "tail-sweep: no recording of digit 7" in out
