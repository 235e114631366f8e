"""The whole pipeline through DVC in a scratch git repository: repro, status, a head-only
experiment, `dvc exp show`, `dvc metrics diff` and `dvc plots diff`."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from bench import render_plots
from tests.conftest import write_params
from tests.scratch import commit, scratch_project, sh, terminal_table, tool_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dvc_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = scratch_project(tmp_path_factory.mktemp("dvc-project"))
    write_params(root, {"demo": {"workers": 0}})
    commit(root, "small params")
    return root


def ran_stages(log: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", log))


def test_repro_then_status_is_up_to_date(dvc_project):
    log = sh(dvc_project, "dvc", "repro")
    assert {
        "demo_data",
        "ingest",
        "split",
        "embed@logmel",
        "embed@frames",
        "train",
        "gate",
    } <= ran_stages(log)
    assert "up to date" in sh(dvc_project, "dvc", "status")
    sh(dvc_project, "dvc", "repro", "--force", "--single-item", "embed@logmel")
    stale = sh(dvc_project, "dvc", "status")  # identical embeddings hash the same: no retraining
    assert "up to date" in stale  # and timings live outside DVC's outputs
    sh(dvc_project, "dvc", "repro")
    summary = json.loads((dvc_project / "metrics/scores.json").read_text())
    assert summary["n_seeds"] == 2 and "std" in summary["val"]["segment_accuracy"]
    assert "test" not in summary  # sealed
    headline = json.loads((dvc_project / "metrics/eval.json").read_text())
    assert headline == {
        "segment_accuracy": summary["val"]["segment_accuracy"]["mean"],
        "seed_sd": summary["val"]["segment_accuracy"]["std"],
        "vs_majority": summary["margin_over_majority"]["val"],
        "ece": summary["calibration_val"]["ece"]["before"]["mean"],
    }
    commit(dvc_project, "run")


def test_head_only_experiment_reruns_nothing_before_train(dvc_project):
    log = sh(dvc_project, "dvc", "exp", "run", "-S", "train.lr=0.003")
    ran = ran_stages(log)
    assert ran == {"train", "gate", "probe", "go"}  # probe and go judge the new models
    assert not {s for s in ran if s.split("@")[0] in {"demo_data", "ingest", "split", "embed"}}
    table = json.loads(sh(dvc_project, "dvc", "exp", "show", "--json"))
    experiments = [e for rev in table for e in (rev.get("experiments") or [])]
    assert experiments, "dvc exp show lists the experiment"
    data = experiments[0]["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["train"]["lr"] == 0.003
    metrics = data["metrics"]["metrics/eval.json"]["data"]
    assert {"segment_accuracy", "seed_sd"} <= set(metrics)
    assert '"test' not in json.dumps(data["metrics"])  # no test score outside a recorded look
    assert "test sealed" in log


def test_the_experiments_table_fits_120_columns(dvc_project):
    sh(dvc_project, "dvc", "exp", "run", "-S", "train.lr=0.002")
    table = re.sub(r"\x1b\[[0-9;]*m", "", terminal_table(dvc_project, columns=120))
    lines = table.splitlines()
    header = next(line for line in lines if "Experiment" in line)
    assert {"segment_accuracy", "seed_sd", "vs_majority", "ece", "train.lr"} <= set(header.split())
    assert len(re.findall(r"\[[a-z]+-[a-z]+\]", table)) == 2, table  # both names, whole
    # Only the hash columns of the gate's changed deps (predictions, scores) may be folded
    # into the last column: DVC lists every dependency, and 32-hex hashes cannot fit.
    edge = header.index("train.lr") + len("train.lr")
    assert all(line.find("…") == -1 or line.find("…") > edge for line in lines), table
    assert max(len(line.rstrip()) for line in lines) <= 120


@pytest.mark.parametrize(
    ("override", "message"),
    [("+train.lrr=0.1", "unknown key(s) ['lrr'] in train"),  # train reads its whole section
     ("+trian.lr=0.1", "unknown key(s) ['trian'] in top level")],  # the gate reads the file
)  # fmt: skip
def test_an_unknown_params_key_fails_the_next_experiment_naming_it(dvc_project, override, message):
    done = subprocess.run(["dvc", "exp", "run", "-S", override], cwd=dvc_project,
                          env=tool_env(), capture_output=True, text=True)  # fmt: skip
    sh(dvc_project, "git", "checkout", "--", ".")  # a failed stage removes its outputs
    sh(dvc_project, "dvc", "checkout", "-q")
    assert done.returncode != 0
    assert message in done.stdout + done.stderr


def test_metrics_and_plots_diff_against_the_baseline(dvc_project):
    experiment = json.loads(sh(dvc_project, "dvc", "exp", "show", "--json"))
    name = next(e["name"] for rev in experiment for e in (rev.get("experiments") or []))
    diff = sh(dvc_project, "dvc", "metrics", "diff", "HEAD", name, "--md", "--all")
    assert "seed_sd" in diff and "test" not in diff
    out = dvc_project / "plots_diff"
    sh(dvc_project, "dvc", "plots", "diff", "HEAD", name, "-o", str(out))
    html = (out / "index.html").read_text()
    titles = (
        "Validation loss by seed",
        "Validation confusion",
        "Primary metric on validation by seed",
        "Reliability diagram on validation",
        "Primary metric on validation vs trainable parameters",
    )
    sh(dvc_project, "dvc", "plots", "show", "-o", str(dvc_project / "plots_show"))
    shown = (dvc_project / "plots_show/index.html").read_text()
    for title in titles:
        assert title in shown
        assert title in html
    output = render_plots.dvc_plots(dvc_project, ["HEAD", name])
    fields = render_plots.axis_fields(dvc_project / "dvc.yaml")
    problems = {p.name: p.problems for p in render_plots.check_data(output, fields) if p.problems}
    assert not problems, problems  # no plot of a real experiment is empty or a single point
