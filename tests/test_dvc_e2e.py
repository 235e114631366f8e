"""The whole pipeline through DVC in a scratch git repository: repro, status, a head-only
experiment, `dvc exp show`, `dvc metrics diff` and `dvc plots diff`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import write_params
from tests.scratch import commit, scratch_project, sh

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
        "train@0",
        "evaluate@1",
        "summarize",
    } <= ran_stages(log)
    assert "up to date" in sh(dvc_project, "dvc", "status")
    sh(dvc_project, "dvc", "repro", "--force", "--single-item", "embed@logmel")
    stale = sh(dvc_project, "dvc", "status")  # identical embeddings hash the same: no retraining
    assert "up to date" in stale  # and timings live outside DVC's outputs
    sh(dvc_project, "dvc", "repro")
    summary = json.loads((dvc_project / "metrics/eval.json").read_text())
    assert summary["n_seeds"] == 2 and "std" in summary["val"]["segment_accuracy"]
    assert "test" not in summary  # sealed
    commit(dvc_project, "run")


def test_head_only_experiment_reruns_nothing_before_train(dvc_project):
    log = sh(dvc_project, "dvc", "exp", "run", "-S", "train.lr=0.003")
    ran = ran_stages(log)
    assert {"train@0", "train@1", "evaluate@0", "evaluate@1", "summarize"} <= ran
    assert not {s for s in ran if s.split("@")[0] in {"demo_data", "ingest", "split", "embed"}}
    table = json.loads(sh(dvc_project, "dvc", "exp", "show", "--json"))
    experiments = [e for rev in table for e in (rev.get("experiments") or [])]
    assert experiments, "dvc exp show lists the experiment"
    data = experiments[0]["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["train"]["lr"] == 0.003
    metrics = data["metrics"]["metrics/eval.json"]["data"]["val"]["segment_accuracy"]
    assert {"mean", "std"} <= set(metrics)
    assert '"test' not in json.dumps(data["metrics"])  # no test score outside a recorded look
    assert "test sealed" in log


def test_metrics_and_plots_diff_against_the_baseline(dvc_project):
    experiment = json.loads(sh(dvc_project, "dvc", "exp", "show", "--json"))
    name = next(e["name"] for rev in experiment for e in (rev.get("experiments") or []))
    diff = sh(dvc_project, "dvc", "metrics", "diff", "HEAD", name, "--md", "--all")
    assert "val.segment_accuracy.mean" in diff and "test." not in diff
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
