"""The summary `make repro` ends with: short, validation only, saying what it could not show."""

from __future__ import annotations

import json
import re

from avgate import summary
from avgate.cli import main
from tests.scratch import REPO


def committed(name: str) -> dict:
    return json.loads((REPO / "metrics" / name).read_text())


def test_the_demo_summary_fits_15_lines_of_100_characters_and_shows_no_test_score():
    lines = summary.render(
        committed("scores.json"), committed("leakage.json"), committed("gate.json")
    )
    assert 4 <= len(lines) <= 15 and max(len(line) for line in lines) <= 100
    evaluation = committed("scores.json")
    mean = evaluation["val"][evaluation["primary_metric"]]["mean"]
    assert f"{mean:.4f}" in lines[1] and "sealed" in lines[0]
    assert not any(re.search(r"\btest (score|accuracy)|test\.", line) for line in lines)


def test_a_test_stage_gate_is_summarised_with_its_decision():
    gate = {"stage": "full_test", "split": "test", "decision": "pass", "mean_delta": 0.2364}
    lines = summary.render(committed("scores.json"), None, gate)
    assert "gate full_test: PASS, mean delta +0.2364 (reports/gate.md)" in lines


def test_without_metrics_the_command_says_what_to_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("{}\n")
    assert main(["summary"]) == 1
    assert "run `dvc repro` first" in capsys.readouterr().err


def test_the_go_verdict_is_summarised_with_its_failed_checks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("{}\n")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/scores.json").write_text(json.dumps(committed("scores.json")))
    (tmp_path / "reports").mkdir()
    verdict = {"verdict": "NO-GO", "failed": ["no_leakage", "seed_std"], "counts": {}}
    (tmp_path / "reports/go.json").write_text(json.dumps(verdict))
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    assert "go/no-go: NO-GO, failed: no_leakage, seed_std (reports/go.md)" in out
