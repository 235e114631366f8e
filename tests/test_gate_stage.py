"""The gate stage on real predictions: a baseline committed and tagged (its predictions read back
through DVC at the tag), a different candidate in the workspace, and every refusal the ledger and
the pairing checks owe: unpaired data, missing seeds, an edited spec, an edited or truncated
ledger, a spent look budget whatever the line's name, a moved baseline tag, too few test groups,
a look from a queued experiment's throwaway copy."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps

from avgate import stats
from avgate.cli import main
from avgate.commands import verify
from avgate.config import Params
from avgate.declare import ConfigError
from avgate.errors import StageError
from avgate.gating import ledger
from avgate.gating.pairing import UnpairedError
from avgate.gating.spec import load_spec
from avgate.layout.labels import labels_of
from avgate.stages import gate
from avgate.stages.train import evaluate, summarize
from tests.conftest import run_until_train, train_every_seed, write_params
from tests.scratch import sh

SPEC = {
    "primary_metric": "segment_accuracy",
    "baseline": "base",
    "alpha_correction": "bonferroni",
    "min_groups": 2,
    "selection": {"split": "val", "seeds": [0, 1, 2], "rule": "max_mean_delta"},
    "stages": [
        {"name": "quick_test", "split": "test", "seeds": [0, 1, 2], "statistic": "sign_flip",
         "alternative": "greater", "alpha": 0.4, "looks": 2, "min_delta": 0.0,
         "ci_low_min": -1.0, "non_inferiority": {"ece": 0.5, "class_recall": 1.0}},
        {"name": "full_test", "split": "test", "seeds": [0, 1, 2, 3], "statistic": "paired_t",
         "alternative": "greater", "alpha": 0.05, "looks": 1, "min_delta": 0.02},
    ],
}  # fmt: skip
SEEDS = {"train": {"seeds": [0, 1, 2]}}


def git(root: Path, *args: str) -> str:
    return sh(root, "git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args)


@pytest.fixture(scope="module")
def built(tmp_path_factory, small_demo) -> Path:
    """Baseline (hidden 8) committed with its predictions under DVC and tagged `base`; the
    candidate (hidden 64) trained in the workspace."""
    root = tmp_path_factory.mktemp("gate") / "project"
    shutil.copytree(small_demo, root / "data/raw/demo")
    previous = Path.cwd()
    try:
        os.chdir(root)
        params = write_params(root, {**SEEDS, "train": {**SEEDS["train"], "hidden": 8}})
        run_until_train(params)
        train_every_seed(params)
        summarize.run(params)
        (root / "gates.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False))
        git(root, "init", "-q")
        sh(root, "dvc", "init", "-q")
        sh(root, "dvc", "add", "-q", "predictions", "data/interim", "data/budget")
        (root / "gates").mkdir()
        (root / "gates/ledger.jsonl").write_bytes(b"")
        git(root, "add", "gates.yaml", "params.yaml", "metrics", "predictions.dvc", ".gitignore",
            "gates/ledger.jsonl", "data/interim.dvc", "data/budget.dvc",
            "data/.gitignore")  # fmt: skip
        git(root, "commit", "-qm", "baseline")
        git(root, "tag", "-a", "base", "-m", "baseline")
        candidate = write_params(root, {**SEEDS, "train": {**SEEDS["train"], "hidden": 64}})
        train_every_seed(candidate)
        summarize.run(candidate)
    finally:
        os.chdir(previous)
    return root


@pytest.fixture
def project(built, tmp_path, monkeypatch) -> Path:
    root = tmp_path / "project"
    shutil.copytree(built, root, symlinks=True)
    monkeypatch.chdir(root)
    return root


def params_for(root: Path, stage: str, candidate: str = "wide"):
    overrides = {**SEEDS, "train": {**SEEDS["train"], "hidden": 64}}
    return write_params(root, {**overrides, "gate": {"stage": stage, "candidate": candidate}})


def set_spec(root: Path, **changes) -> None:
    spec = json.loads(json.dumps(SPEC))
    for key, value in changes.items():
        spec[key] = value
    (root / "gates.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def test_selection_compares_validation_and_leaves_the_ledger_alone(project):
    result = gate.run(params_for(project, "selection"))
    base = json.loads(git(project, "show", "base:metrics/scores.json"))
    cand = json.loads((project / "metrics/scores.json").read_text())
    per_seed = [cand["val"]["segment_accuracy"]["per_seed"][f"seed{s}"] for s in range(3)]
    baseline = [base["val"]["segment_accuracy"]["per_seed"][f"seed{s}"] for s in range(3)]
    assert result["decision"] == "compared"
    assert result["deltas"] == pytest.approx(np.subtract(per_seed, baseline).tolist())
    assert (project / "gates/ledger.jsonl").read_bytes() == b""
    deltas = np.asarray(result["deltas"])
    low, high = sps.t.interval(0.95, len(deltas) - 1, deltas.mean(), sps.sem(deltas))
    assert result["interval"]["low"] == pytest.approx(low)
    assert result["interval"]["high"] == pytest.approx(high)
    report = (project / "reports/gate.md").read_text()
    assert "no test split read" in report and "95% t interval over seeds" in report
    headline = json.loads((project / "metrics/gate_headline.json").read_text())
    assert headline == {"gate": "selection: compared", "delta": result["mean_delta"]}


def test_selection_without_a_baseline_tag_says_so(project):
    set_spec(project, baseline="no-such-tag")
    result = gate.run(params_for(project, "selection"))
    assert result["decision"] == "no_baseline" and "no-such-tag" in result["reason"]


def segment_accuracy(root: Path, params: Params, seed: int) -> float:
    """A seed's test score computed here from its stored logits and the labels on disk."""
    table = pd.read_parquet(root / f"predictions/seed{seed}/test.parquet")
    logits = table.filter(like="logit_")
    predicted = logits.columns.str.removeprefix("logit_")[logits.to_numpy().argmax(axis=1)]
    return float((predicted == labels_of(params, table)).mean())


def test_quick_test_is_the_one_place_test_labels_are_scored_and_it_records_one_look(project):
    # The baseline's predictions exist only in the DVC cache: the tag is the one way to them.
    params = params_for(project, "quick_test")
    stored = pd.read_parquet(project / "predictions/seed0/test.parquet")
    assert "label" not in stored  # sealed: evaluate stores test logits without labels
    result = gate.run(params)
    assert result["baseline"]["revision"] == "base"
    base_commit = git(project, "rev-parse", "base^{commit}").strip()
    assert result["baseline"]["commit"] == base_commit
    assert [r["candidate"] for r in result["per_seed"]] == pytest.approx(
        [segment_accuracy(project, params, s) for s in range(3)]
    )
    deltas = [r["delta"] for r in result["per_seed"]]
    assert result["p_value"] == stats.STATISTICS["sign_flip"].test(deltas, "greater").p_value
    assert result["statistics"]["test"]["alternative"] == "greater"
    assert [c["name"] for c in result["criteria"]] == [
        "min_delta", "p_value", "ci_low", "non_inferiority:ece", "non_inferiority:class_recall",
    ]  # fmt: skip
    groups = pd.read_parquet(project / "data/interim/demo/manifest.parquet").set_index("clip_id")
    assert (
        result["interval"]["n_groups"] == groups.loc[stored["clip_id"].unique(), "group"].nunique()
    )
    entries = ledger.verify(project / "gates/ledger.jsonl")
    assert [(e.kind, e.candidate, e.stage, e.outcome, e.seeds) for e in entries] == [
        ("look", "wide", "quick_test", result["decision"], [0, 1, 2])
    ]
    entry = entries[0]
    assert entry.spec_hash == load_spec(project / "gates.yaml").hash == result["spec"]["sha256"]
    assert entry.baseline_commit == base_commit and entry.test_ids_hash == result["ids_sha256"]
    assert entry.candidate_commit == git(project, "rev-parse", "HEAD").strip()
    committed = git(project, "show", f"{ledger.REF}:gates/ledger.jsonl")
    assert committed == (project / "gates/ledger.jsonl").read_text()  # committed at once
    report = (project / "reports/gate.md").read_text()
    assert "Gate `quick_test` on test" in report and "look 1 of 2" in report
    assert "test groups" in report and "Bonferroni" in report
    plot = pd.read_csv(project / "plots/gate_deltas.csv")
    assert plot["seed"].tolist() == ["seed0", "seed1", "seed2", "mean"]
    rows = pd.DataFrame(result["buckets"]["rows"])  # per-second accuracy by bucket
    assert rows["delta"].is_monotonic_increasing  # where the candidate hurts comes first
    for _, dimension in rows.groupby("dimension"):
        assert dimension["seconds"].sum() == len(stored)
        weighted = (dimension["delta"] * dimension["seconds"]).sum() / len(stored)
        assert weighted == pytest.approx(np.mean(deltas))  # segment_accuracy is per second
    assert set(rows.loc[rows["dimension"] == "anchor", "bucket"]) == {"no anchors"}  # uniform
    assert "Where the candidate gains and loses on test" in report


def test_the_look_budget_belongs_to_the_spec_and_test_split_not_the_line_name(project):
    params = params_for(project, "quick_test")
    gate.run(params)
    gate.run(params_for(project, "quick_test", candidate="renamed-line"))
    before = (project / "gates/ledger.jsonl").read_bytes()
    for line in ("wide", "a-third-name"):
        with pytest.raises(StageError, match="2 test looks already made at stage 'quick_test'"):
            gate.run(params_for(project, "quick_test", candidate=line))
    assert (project / "gates/ledger.jsonl").read_bytes() == before


def test_a_spec_edited_after_the_first_look_is_refused(project):
    params = params_for(project, "quick_test")
    gate.run(params)
    before = (project / "gates/ledger.jsonl").read_bytes()
    stages = json.loads(json.dumps(SPEC["stages"]))
    stages[0]["min_delta"] = -0.5  # a threshold moved after seeing the test split
    set_spec(project, stages=stages)
    with pytest.raises(StageError, match="thresholds cannot move"):
        gate.run(params_for(project, "quick_test", candidate="new-line"))
    assert (project / "gates/ledger.jsonl").read_bytes() == before


def test_a_moved_baseline_tag_is_refused(project):
    gate.run(params_for(project, "quick_test"))
    git(project, "commit", "-q", "--allow-empty", "-m", "elsewhere")
    git(project, "tag", "-f", "-a", "base", "-m", "moved")
    with pytest.raises(StageError, match="a moved tag is refused"):
        gate.run(params_for(project, "quick_test"))


def test_an_edited_ledger_is_detected_and_blocks_the_gate(project, capsys):
    params = params_for(project, "quick_test")
    gate.run(params)
    path = project / "gates/ledger.jsonl"
    line = json.loads(path.read_text())
    line["outcome"] = "pass" if line["outcome"] == "fail" else "fail"
    path.write_text(ledger.canonical(line) + "\n")
    with pytest.raises(StageError, match="ledger.jsonl:1: its hash does not match"):
        gate.run(params)
    assert main(["ledger", "verify"]) == 1
    assert "hash does not match its content" in capsys.readouterr().err


@pytest.mark.parametrize("attack", ["drop_last_line", "checkout_from_git", "delete"])
def test_a_lost_look_fails_verify_and_the_next_look(project, capsys, attack):
    params = params_for(project, "quick_test")
    gate.run(params)
    gate.run(params_for(project, "quick_test", candidate="second"))
    path = project / "gates/ledger.jsonl"
    if attack == "drop_last_line":
        path.write_text(path.read_text().splitlines(keepends=True)[0])
    elif attack == "checkout_from_git":
        git(project, "checkout", "--", "gates/ledger.jsonl")
    else:
        path.unlink()
    assert main(["ledger", "verify"]) == 1
    error = capsys.readouterr().err
    assert ("does not exist" if attack == "delete" else "quick_test, ") in error
    with pytest.raises(StageError, match="ledger"):
        gate.run(params_for(project, "quick_test", candidate="third"))


def test_too_few_test_groups_for_the_interval_are_refused_before_a_look(project):
    set_spec(project, min_groups=50)
    with pytest.raises(ConfigError, match="min_groups"):
        gate.run(params_for(project, "quick_test"))
    assert (project / "gates/ledger.jsonl").read_bytes() == b""


def test_a_plan_and_params_naming_different_primary_metrics_refuse_to_start(project):
    set_spec(project, primary_metric="macro_f1")
    written = project / "metrics/gate.json"
    before = written.read_bytes() if written.exists() else None
    for stage in ("selection", "quick_test"):
        with pytest.raises(ConfigError) as err:
            gate.run(params_for(project, stage))
        assert "gates.yaml: primary_metric 'macro_f1' differs from params.yaml: " in str(err.value)
        assert "evaluate.primary_metric 'segment_accuracy'" in str(err.value)
    assert (project / "gates/ledger.jsonl").read_bytes() == b""
    assert (written.read_bytes() if written.exists() else None) == before


def test_a_look_from_a_queued_experiments_copy_is_refused(project, monkeypatch):
    monkeypatch.setattr(ledger, "in_throwaway_copy", lambda repo=".": True)
    with pytest.raises(StageError, match="temporary copy"):
        gate.run(params_for(project, "quick_test"))
    assert (project / "gates/ledger.jsonl").read_bytes() == b""


def test_unpaired_predictions_abort_before_any_look(project):
    path = project / "predictions/seed1/test.parquet"
    table = pd.read_parquet(path)
    table.iloc[::-1].reset_index(drop=True).to_parquet(path)
    with pytest.raises(UnpairedError, match="seed 1 test: the ordered sample ids differ"):
        gate.run(params_for(project, "quick_test"))
    assert (project / "gates/ledger.jsonl").read_bytes() == b""
    assert not (project / "reports/gate.md").exists()


def test_a_stage_needing_seeds_the_runs_lack_aborts(project):
    with pytest.raises(UnpairedError, match=r"seeds \[0, 1, 2, 3\] are needed; the baseline lacks"):
        gate.run(params_for(project, "full_test"))
    assert (project / "gates/ledger.jsonl").read_bytes() == b""


def test_a_test_look_needs_a_candidate_line_and_a_known_stage(project):
    with pytest.raises(StageError, match="gate.candidate is empty"):
        gate.run(params_for(project, "quick_test", candidate=""))
    with pytest.raises(StageError, match="gate.stage 'final' is not a stage of gates.yaml"):
        gate.run(params_for(project, "final"))


def promote_by_hand(root: Path, tag: str, report: bytes | None = None) -> None:
    """Commit the workspace after a look and tag it as `avgate promote` does."""
    if report is not None:
        (root / "reports/gate.md").write_bytes(report)
    sh(root, "dvc", "add", "-q", "predictions")
    git(root, "add", "-A", "gates", "params.yaml", "metrics", "reports", "plots", "predictions.dvc")
    git(root, "commit", "-qm", f"promote {tag}")
    digest = hashlib.sha256((root / "reports/gate.md").read_bytes()).hexdigest()
    git(
        root,
        "tag",
        "-a",
        tag,
        "-m",
        f"avgate promote: model {tag}\n\ngate report reports/gate.md sha256 {digest}\n",
    )


def test_verify_rederives_a_promotion_from_its_tag_without_a_look(project):
    set_spec(project, stages=SPEC["stages"][:1])
    git(project, "commit", "-qam", "the plan with one test stage")
    gate.run(params_for(project, "quick_test"))
    promote_by_hand(project, "model/wide")
    ledger_before = (project / "gates/ledger.jsonl").read_bytes()
    ref_before = git(project, "rev-parse", ledger.REF)
    lines = verify.run("model/wide")
    assert "quick_test: recomputed" in lines[1] and "matches the tag's note" in lines[-1]
    assert (project / "gates/ledger.jsonl").read_bytes() == ledger_before
    assert git(project, "rev-parse", ledger.REF) == ref_before


def test_verify_names_the_first_line_where_a_doctored_report_differs(project):
    set_spec(project, stages=SPEC["stages"][:1])
    git(project, "commit", "-qam", "the plan with one test stage")
    gate.run(params_for(project, "quick_test"))
    text = (project / "reports/gate.md").read_text()
    doctored = text.replace("**REJECTED**", "**PASSED**").replace("**PASSED**", "**PASSED** ", 1)
    promote_by_hand(project, "model/doctored", doctored.encode())
    with pytest.raises(StageError, match=r"first difference, line 1:"):
        verify.run("model/doctored")
    with pytest.raises(StageError, match="names no gate report sha256"):
        git(project, "tag", "-a", "plain", "-m", "a tag of another kind")
        verify.run("plain")


def test_opening_the_test_split_is_recorded_once_and_disclosed_by_the_next_look(project):
    opened = write_params(project, {**SEEDS, "train": {**SEEDS["train"], "hidden": 64},
                                    "evaluate": {"test": "open"}})  # fmt: skip
    scores = [evaluate.run(opened, seed) for seed in (0, 1)]
    assert all(0 <= s["test"]["segment_accuracy"] <= 1 for s in scores)
    entries = ledger.verify(project / "gates/ledger.jsonl")
    assert [(e.kind, e.outcome, e.stage) for e in entries] == [("opened", "opened", "")]
    assert git(project, "show", f"{ledger.REF}:gates/ledger.jsonl").count("\n") == 1
    result = gate.run(params_for(project, "quick_test"))
    assert result["test_split_opened"]["index"] == 0
    assert "The test split was opened" in (project / "reports/gate.md").read_text()
