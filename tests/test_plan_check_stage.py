"""`avgate plan check` on a trained workspace: validation predictions in, power per test stage
out; a declared min_power turns a low power into an error, and `avgate promote` refuses to start."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from avgate.cli import main
from avgate.commands import plan_check
from avgate.declare import ConfigError
from avgate.gating.promote import Promotion, PromotionError
from tests.conftest import run_until_train, train_every_seed, write_params
from tests.scratch import REPO, sh


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_demo) -> Path:
    root = tmp_path_factory.mktemp("plan") / "project"
    shutil.copytree(small_demo, root / "data/raw/demo")
    previous = Path.cwd()
    try:
        os.chdir(root)
        params = write_params(root, {"train": {"seeds": [0, 1, 2]}})
        run_until_train(params)
        train_every_seed(params)
    finally:
        os.chdir(previous)
    return root


@pytest.fixture
def workspace(trained, tmp_path, monkeypatch) -> Path:
    root = tmp_path / "project"
    shutil.copytree(trained, root)
    plan = yaml.safe_load((REPO / "gates.yaml").read_text())
    plan["min_groups"] = 2  # the small demo's test split holds a few groups
    (root / "gates.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    monkeypatch.chdir(root)
    return root


def declare(root: Path, min_power: float) -> None:
    plan = yaml.safe_load((root / "gates.yaml").read_text())
    plan["min_power"] = min_power
    (root / "gates.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))


def test_the_check_reads_validation_and_counts_the_test_split(workspace):
    from avgate.config import Params

    params = Params.load("params.yaml")
    table = plan_check.validation_table(params)
    assert set(table["seed"]) == {0, 1, 2} and set(table["correct"]) <= {0.0, 1.0}
    groups, clips = plan_check.test_split_size(params)
    report, lines = plan_check.run(params, replications=40)
    assert report["test_split"]["groups"] == groups and groups >= 1 and clips > 0
    assert [row["stage"] for row in report["stages"]] == ["quick_test", "full_test"]
    assert all(0 <= row["power"] <= 1 for row in report["stages"])
    assert report["passed"] is None and all(len(line) <= 100 for line in lines)


def test_a_declared_min_power_fails_the_check_and_blocks_promote(workspace, capsys):
    declare(workspace, 0.99)
    assert main(["plan", "check", "--replications", "40"]) == 1
    assert "below its min_power (0.99)" in capsys.readouterr().err
    with pytest.raises(PromotionError, match="min_power 0.99"):
        Promotion("line", []).check_power(0.99)


def test_a_reachable_min_power_passes(workspace):
    plan = yaml.safe_load((workspace / "gates.yaml").read_text())
    plan["stages"] = plan["stages"][:1]  # the quick test alone: within reach on the small demo
    (workspace / "gates.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    declare(workspace, 0.01)
    assert main(["plan", "check", "--replications", "40"]) == 0


def test_a_plan_naming_another_primary_metric_than_params_blocks_the_check_and_promote(
    workspace, capsys
):
    plan = yaml.safe_load((workspace / "gates.yaml").read_text())
    plan["primary_metric"] = "balanced_accuracy"
    (workspace / "gates.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    assert main(["plan", "check", "--replications", "40"]) == 1
    said = capsys.readouterr().err
    assert "gates.yaml: primary_metric 'balanced_accuracy' differs from params.yaml: " in said
    assert "evaluate.primary_metric 'segment_accuracy'" in said
    for args in (("init", "-q"), ("add", "gates.yaml", "params.yaml"), ("commit", "-qm", "plan")):
        sh(workspace, "git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args)
    with pytest.raises(ConfigError, match="primary_metric 'balanced_accuracy' differs from"):
        Promotion("line", []).check()
