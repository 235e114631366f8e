"""The `go` stage on hand-written evidence: one verdict from the checks gates.yaml declares
(headline, details, the report with failures first), UNCHECKED without checks, and `avgate
promote` refusing to start, before it queues anything, on a No-Go, a stale or a missing verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from avgate.cli import main
from avgate.gating.go_verdict import GO_DETAILS, GO_METRICS, GO_REPORT, refusal
from avgate.gating.promote import Promotion, PromotionError
from avgate.gating.spec import load_spec
from avgate.go import Context
from tests import go_evidence as ev
from tests.conftest import write_params
from tests.scratch import REPO, sh

SEEDS = (0, 1, 2)
CHECKS = {
    "files_load": {"min_ok_fraction": 0.95},
    "no_leakage": None,
    "calibration": {"max_ece": 0.1},
    "seed_std": {"max_std": 0.03},
    "backbone_frozen": None,  # a head, not LoRA: not applicable
    "audio_reliance": {"min_drop": 0.02, "phase": "learning"},
}


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Evidence of a healthy audio-visual head on three seeds, params and a plan with checks."""
    ev.write_run(tmp_path, SEEDS)
    write_params(tmp_path, {"train": {"seeds": list(SEEDS)}})
    plan(tmp_path, CHECKS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def plan(root: Path, checks: dict | None) -> None:
    data = yaml.safe_load((REPO / "gates.yaml").read_text())
    data.pop("checks", None)
    if checks is not None:
        data["checks"] = checks
    (root / "gates.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def too_uncalibrated(root: Path) -> None:
    ev.edit(root, ev.SCORES, lambda d: d["calibration_val"]["ece"]["before"].update(mean=0.2))


def go(capsys: pytest.CaptureFixture) -> tuple[dict, str]:
    assert main(["go"]) == 0  # a No-Go is a verdict, not a failed stage
    return json.loads(GO_DETAILS.read_text()), capsys.readouterr().out


def refused(root: Path) -> str:
    params = write_params(root, {"train": {"seeds": list(SEEDS)}})
    return refusal(load_spec(root / "gates.yaml").checks, Context(tuple(params.train.seeds), root))


def test_a_healthy_workspace_is_a_go(workspace, capsys):
    details, out = go(capsys)
    assert details["verdict"] == "GO" and details["failed"] == []
    assert details["counts"] == {"failed": 0, "passed": 5, "not_applicable": 1}
    assert json.loads(GO_METRICS.read_text()) == {
        "go": "GO", "failed": 0, "passed": 5, "not_applicable": 1,
    }  # fmt: skip
    assert out.startswith("go: GO: 5 of 6 checks passed, none failed")
    assert refused(workspace) == ""


def test_a_failed_check_is_a_no_go_reported_first_with_its_evidence(workspace, capsys):
    too_uncalibrated(workspace)
    details, out = go(capsys)
    assert details["verdict"] == "NO-GO" and details["failed"] == ["calibration"]
    assert json.loads(GO_METRICS.read_text()) == {
        "go": "NO-GO", "failed": 1, "passed": 4, "not_applicable": 1,
    }  # fmt: skip
    statuses = [(r["name"], r["status"], r["phase"]) for r in details["checks"]]
    assert statuses == [
        ("calibration", "fail", "learning"),
        ("backbone_frozen", "not applicable", "safety"),
        ("files_load", "pass", "data"),
        ("no_leakage", "pass", "data"),
        ("audio_reliance", "pass", "learning"),  # moved from robustness by the plan
        ("seed_std", "pass", "reproducibility"),
    ]
    failed = details["checks"][0]
    assert (failed["value"], failed["threshold"], failed["rule"]) == (0.2, 0.1, "<=")
    assert failed["evidence"] == ["metrics/scores.json"]
    rows = [line for line in GO_REPORT.read_text().splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| status | check | phase | value | threshold | evidence |")
    assert rows[2].startswith("| FAIL | `calibration` | learning | 0.2 | <= 0.1 | ")
    assert "`metrics/scores.json`" in rows[2] and "`models/seed<k>/head.json`" in rows[3]
    assert GO_REPORT.read_text().startswith("## Go/no-go: NO-GO\n")
    assert "go: FAIL calibration (learning): val ECE" in out


def test_without_checks_the_verdict_says_none_are_declared(workspace, capsys):
    plan(workspace, None)
    details, out = go(capsys)
    assert details["verdict"] == "UNCHECKED" and details["checks"] == []
    assert json.loads(GO_METRICS.read_text())["go"] == "UNCHECKED"
    assert "gates.yaml declares no checks" in GO_REPORT.read_text()
    assert "UNCHECKED" in out


def test_checks_that_all_do_not_apply_are_no_go_either(workspace, capsys):
    plan(workspace, {"backbone_frozen": None, "forward_equivalence": None})
    details, _ = go(capsys)
    assert details["verdict"] == "UNCHECKED"
    assert details["counts"] == {"failed": 0, "passed": 0, "not_applicable": 2}
    assert refused(workspace).startswith(f"{GO_DETAILS}: UNCHECKED: none of the 2 checks")


def test_a_recorded_verdict_holds_only_for_its_checks_and_evidence(workspace, capsys):
    assert refused(workspace).endswith("is missing: run `dvc repro go`")
    go(capsys)
    assert refused(workspace) == ""
    ev.edit(workspace, ev.seed_scores(2), lambda d: d.update(seed=2.0))
    assert refused(workspace) == (
        f"{GO_DETAILS} is stale: its evidence changed since it was written "
        "(['predictions/seed2/metrics.json']); run `dvc repro go`"
    )
    go(capsys)
    plan(workspace, {**CHECKS, "calibration": {"max_ece": 0.2}})
    assert "the checks of gates.yaml changed since it was written" in refused(workspace)


def test_promote_refuses_a_no_go_naming_the_failed_checks(workspace, capsys):
    too_uncalibrated(workspace)
    go(capsys)
    spec = load_spec("gates.yaml")
    params = write_params(workspace, {"train": {"seeds": list(SEEDS)}})
    with pytest.raises(PromotionError) as err:
        Promotion("line", []).check_go(spec, params)
    message = str(err.value)
    assert message.startswith(f"{GO_DETAILS}: NO-GO, failed: calibration (val ECE ")
    assert "[metrics/scores.json]" in message and message.endswith("nothing was queued")


def test_promote_stops_on_no_go_before_queuing_and_goes_on_after_a_go(
    workspace, monkeypatch, capsys
):
    too_uncalibrated(workspace)
    go(capsys)
    (workspace / "gates").mkdir()
    (workspace / "gates/ledger.jsonl").write_text("")
    git = ("git", "-c", "user.name=t", "-c", "user.email=t@t.invalid")
    for args in (("init", "-q"), ("add", "-A"), ("commit", "-qm", "workspace")):
        sh(workspace, *git, *args)
    sh(workspace, *git, "tag", "-a", yaml.safe_load(Path("gates.yaml").read_text())["baseline"],
       "-m", "baseline")  # fmt: skip

    def queue(self, spec):
        raise AssertionError("queued")

    monkeypatch.setattr(Promotion, "queue", queue)
    with pytest.raises(PromotionError, match="NO-GO, failed: calibration"):
        Promotion("line", ["train.hidden=64"]).run()
    ev.write_run(workspace, SEEDS)  # calibrated again, and the verdict re-run
    go(capsys)
    sh(workspace, *git, "commit", "-qam", "go")
    with pytest.raises(AssertionError, match="queued"):
        Promotion("line", ["train.hidden=64"]).run()
    assert "go/no-go: GO" in capsys.readouterr().out


def test_promote_is_not_held_back_by_a_plan_without_checks(workspace, capsys):
    plan(workspace, None)
    spec = load_spec("gates.yaml")
    promotion = Promotion("line", [])
    promotion.check_go(spec, write_params(workspace, {}))
    assert promotion.log == ["go/no-go: gates.yaml declares no checks"]
