"""The eventness stage on the small demo: every second of every split scored once, the same
bytes on a re-run, quality on validation only (test labels never read), and errors that name
the key to fix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from avgate import eventness
from avgate.cli import main
from avgate.config import EVENTNESS_METHODS
from avgate.declare import ConfigError
from avgate.errors import StageError
from avgate.layout import clips, labels
from avgate.stages import eventness as stage
from tests.conftest import embedded_project, write_params


@pytest.fixture(scope="module")
def embedded(small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project with the small demo ingested, split and embedded; the working directory."""
    with embedded_project(small_demo, tmp_path_factory.mktemp("eventness")) as root:
        yield root


def test_the_declared_methods_are_the_registered_ones():
    assert sorted(EVENTNESS_METHODS) == sorted(eventness.METHODS)


def test_energy_scores_every_second_once_the_same_bytes_twice_and_val_quality_only(
    embedded, monkeypatch
):
    params = write_params(embedded, {})
    labelled: list[str] = []

    def spy(params, index, *args):
        labelled.extend(index["clip_id"])
        return labels.second_labels(params, index, *args)

    monkeypatch.setattr(stage, "second_labels", spy)
    summary = stage.run(params)
    scores_path = clips.eventness_scores("energy")
    first = (scores_path.read_bytes(), stage.REPORT.read_bytes())
    stage.run(params)
    assert (scores_path.read_bytes(), stage.REPORT.read_bytes()) == first

    table = pd.read_parquet(scores_path)
    assert list(table.columns) == ["clip_id", "t", "split", "score"]
    for split in clips.SPLITS:
        index = pd.read_parquet(clips.embedding_dir("logmel") / f"{split}.index.parquet")
        rows = table[table["split"] == split].reset_index(drop=True)
        assert rows[["clip_id", "t"]].equals(index)
    assert not table.duplicated(["clip_id", "t"]).any()
    assert np.isfinite(table["score"]).all()

    test_clips = set(table.loc[table["split"] == "test", "clip_id"])
    assert labelled and not test_clips & set(labelled)  # the test split stays sealed
    report = json.loads(stage.REPORT.read_text())
    assert report == summary and set(report) == {"method", "identity", "seed", "val"}
    n_mels = params.embed.sections["logmel"]["n_mels"]
    assert report["identity"]["columns"] == [0, n_mels]  # the log-mel means
    assert report["val"]["auc"] > 0.5  # the demo's events are louder than their background


def test_an_unknown_method_fails_naming_eventness_method(embedded, capsys):
    write_params(embedded, {})
    data = yaml.safe_load(Path("params.yaml").read_text())
    data["eventness"]["method"] = "loudness"
    Path("params.yaml").write_text(yaml.safe_dump(data))
    assert main(["eventness"]) == 1
    assert "eventness.method must be one of ['energy'" in capsys.readouterr().err


def test_a_typo_in_any_method_section_fails_naming_it(embedded):
    params = write_params(embedded, {"eventness": {"mil": {"sharpnes": 2.0}}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['sharpnes'\] in eventness.mil"):
        stage.run(params)


def test_clip_tasks_get_energy_scores_without_quality_and_refuse_a_trained_method(embedded):
    clip = {"task": {"kind": "clip"}, "evaluate": {"primary_metric": "accuracy"}}
    summary = stage.run(write_params(embedded, clip))
    assert summary["val"] is None and "per-second labels" in summary["reason"]
    trained = {**clip, "eventness": {"method": "mil", "mil": {"max_epochs": 1}}}
    with pytest.raises(StageError, match=r"eventness.method mil: .*task.kind clip"):
        stage.run(write_params(embedded, trained))
