"""A stage of a workspace `dvc exp run` refuses params.yaml that changed under the run (a second
`dvc exp run -S` in the same workspace), and checks nothing outside experiments."""

from __future__ import annotations

import pytest

from avgate import workspace
from avgate.errors import StageError


@pytest.fixture
def experiment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_EXP_NAME", "first")
    monkeypatch.setenv("DVC_STAGE", "train")
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  lr: 0.001\n")
    return params


def test_stages_of_one_experiment_on_the_same_params_run(experiment):
    for _ in range(3):
        with workspace.params_held(experiment):
            pass


def test_a_stage_after_params_changed_under_the_experiment_refuses(experiment):
    with workspace.params_held(experiment):
        pass
    experiment.write_text("train:\n  lr: 0.1\n")  # what a second `dvc exp run -S` does
    refused = pytest.raises(StageError, match="changed since the first stage of experiment 'first'")
    with refused, workspace.params_held(experiment):
        pytest.fail("the stage ran on changed params")


def test_params_changed_during_a_stage_fail_it_at_its_end(experiment):
    with (
        pytest.raises(StageError, match=r"changed during stage train .*dvc exp run --queue"),
        workspace.params_held(experiment),
    ):
        experiment.write_text("train:\n  lr: 0.1\n")


def test_the_next_experiment_starts_a_record_of_its_own(experiment, monkeypatch):
    with workspace.params_held(experiment):
        pass
    experiment.write_text("train:\n  lr: 0.1\n")
    monkeypatch.setenv("DVC_EXP_NAME", "second")
    with workspace.params_held(experiment):
        pass
    assert '"experiment": "second"' in workspace.RECORD.read_text()


def test_outside_an_experiment_nothing_is_checked_or_written(experiment, monkeypatch):
    monkeypatch.delenv("DVC_EXP_NAME")
    with workspace.params_held(experiment):
        experiment.write_text("train:\n  lr: 0.1\n")
    assert not workspace.RECORD.exists()
