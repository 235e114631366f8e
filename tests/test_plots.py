"""The `plots:` of dvc.yaml: what `dvc plots show --json` gives a reviewer, checked without a
browser by bench/render_plots.py's data check (rendering in Chromium is left to that script)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from avgate import preflight
from avgate.files import write_csv
from avgate.stages import gate
from avgate.stages.train import summarize
from bench import render_plots
from tests.scratch import REPO, tool_env

GATE_PLOT = "Gate delta against the baseline by seed (mean row carries the interval)"
EFFICIENCY_PLOT = "Primary metric on validation vs trainable parameters"


def titles() -> list[str]:
    return [title for entry in yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
            for title in entry]  # fmt: skip


@pytest.fixture
def plots_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DVC project (no git) with this project's plot definitions, templates and plot files."""
    monkeypatch.chdir(tmp_path)
    subprocess.run(["dvc", "init", "--no-scm", "-q"], check=True, env=tool_env())
    plots = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"plots": plots}, sort_keys=False))
    shutil.copytree(REPO / ".dvc" / "plots", tmp_path / ".dvc" / "plots", dirs_exist_ok=True)
    shutil.copytree(REPO / "plots", tmp_path / "plots")
    return tmp_path


def checked(root: Path) -> tuple[dict[str, list[str]], list[str]]:
    """Problems by plot title, and the titles DVC drew nothing for."""
    output = render_plots.dvc_plots(root, [])
    plots = render_plots.check_data(output, render_plots.axis_fields(root / "dvc.yaml"))
    return {plot.name: plot.problems for plot in plots}, render_plots.not_drawn(output)


def seed_metrics(values: list[float]) -> dict[int, dict]:
    return {seed: {"val": {"acc": value}} for seed, value in enumerate(values)}


def test_the_committed_plots_are_neither_empty_nor_single_points():
    problems, skipped = checked(REPO)
    assert not any(problems.values()), problems
    assert set(problems) | set(skipped) == set(titles())
    for title in skipped:  # only a definition whose file holds a header and no rows
        assert title == GATE_PLOT and pd.read_csv(REPO / "plots/gate_deltas.csv").empty


def test_the_reliability_plot_carries_both_files_and_every_bin_count():
    output = render_plots.dvc_plots(REPO, [])
    (plot,) = next(v for k, v in output["data"].items() if k.startswith("Reliability"))
    rows = plot["content"]["data"]["values"]
    assert {row["filename"] for row in rows} == {
        "reliability_uncalibrated.csv",
        "reliability_calibrated.csv",
    }
    counts = pd.read_csv(REPO / "plots/reliability_uncalibrated.csv")["count"]
    shown = [int(r["count"]) for r in rows if r["filename"] == "reliability_uncalibrated.csv"]
    assert shown == counts.tolist() and min(shown) > 0


def test_one_seed_at_one_size_is_a_single_point_and_fails(plots_project):
    write_csv(summarize.efficiency_rows(seed_metrics([0.9]), "acc", 1000), "plots/efficiency.csv")
    problems, _ = checked(plots_project)
    assert problems[EFFICIENCY_PLOT] == ["a single point: nothing to compare or read a trend from"]


def test_seeds_make_points_and_rows_without_values_or_files_fail(plots_project):
    rows = summarize.efficiency_rows(seed_metrics([0.9, 0.92, 0.95]), "acc", 1000)
    write_csv(rows, "plots/efficiency.csv")
    assert checked(plots_project)[0][EFFICIENCY_PLOT] == []
    write_csv(rows.assign(primary_val=None), "plots/efficiency.csv")
    Path("plots/seed_scores.csv").unlink()
    problems, _ = checked(plots_project)
    assert problems[EFFICIENCY_PLOT] == ["empty: no rows with both an x and a y value"]
    assert "could not load" in problems["Primary metric on validation by seed"][0]


def test_the_gate_plot_is_drawn_only_with_deltas_and_then_carries_the_interval(plots_project):
    no_baseline = {"stage": "selection", "decision": "no_baseline"}
    write_csv(gate._plot_rows(no_baseline), gate.GATE_PLOT)
    problems, skipped = checked(plots_project)
    assert GATE_PLOT in skipped and GATE_PLOT not in problems
    deltas = [0.01, 0.03, -0.005]
    compared = {
        "seeds": [0, 1, 2],
        "deltas": deltas,
        "mean_delta": float(np.mean(deltas)),
        "interval": gate._interval({}, np.asarray(deltas)),
    }  # as at selection
    write_csv(gate._plot_rows(compared), gate.GATE_PLOT)
    problems, skipped = checked(plots_project)
    assert problems[GATE_PLOT] == [] and GATE_PLOT not in skipped
    mean = pd.read_csv(gate.GATE_PLOT).set_index("seed").loc["mean"]
    assert mean["delta"] == pytest.approx(np.mean(deltas))
    assert mean["low"] < mean["delta"] < mean["high"]
    assert "t interval" in mean["interval"]


def test_a_test_stage_plot_keeps_the_stage_interval():
    result = {
        "per_seed": [{"seed": 0, "delta": 0.02}, {"seed": 1, "delta": 0.04}],
        "mean_delta": 0.03,
        "interval": {"low": 0.01, "high": 0.05, "confidence": 0.95, "method": "bca"},
    }
    rows = gate._plot_rows(result)
    assert rows["seed"].tolist() == ["seed0", "seed1", "mean"]
    assert rows.iloc[-1][["low", "high", "interval"]].tolist() == [0.01, 0.05, "95% bca"]


def test_duration_bins_are_numbers_that_tile_the_range():
    durations = pd.Series([9.55, 9.6, 10.0, 10.5, None])
    histogram = preflight.duration_histogram(durations)
    assert histogram["bin_start"].is_monotonic_increasing
    assert (histogram["bin_end"].iloc[:-1].to_numpy() == histogram["bin_start"].iloc[1:]).all()
    assert histogram["bin_start"].iloc[0] == 9.55 and histogram["bin_end"].iloc[-1] == 10.5
    assert histogram["clips"].sum() == 4
    assert histogram.loc[histogram["bin_start"] <= 9.6, "clips"].sum() == 2
