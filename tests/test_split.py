import json

import numpy as np
import pandas as pd
import pytest

from avgate import audit
from avgate.cli import main
from avgate.config import DataParams, Params
from avgate.datasets import format_named, formats
from avgate.errors import StageError
from avgate.splitting import group_sides
from avgate.stages import split
from avgate.stages.split import check, leakage_report, select_labels
from tests.conftest import merge, write_params


def clips_table(n_groups: int = 20, per_group: int = 5, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = ["a", "b", "c", "d"]
    rows = []
    for g in range(n_groups):
        for i in range(per_group):
            rows.append((f"g{g}-{i}", labels[rng.integers(4)], f"g{g}", f"hash{g}-{i}"))
    return pd.DataFrame(rows, columns=["clip_id", "label", "group", "sha256"])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_group_sides_never_puts_a_group_on_two_sides(seed):
    clips = clips_table(seed=seed)
    clips["split"] = group_sides(clips, (0.2, 0.2), seed)
    assert all(not ids for ids in audit.group_overlap(clips).values())
    assert clips.groupby("group")["split"].nunique().max() == 1
    shares = clips["split"].value_counts(normalize=True)
    assert 0.1 <= shares["test"] <= 0.3 and 0.1 <= shares["val"] <= 0.3


def test_group_sides_is_deterministic_per_seed():
    clips = clips_table()
    first = group_sides(clips, (0.2, 0.2), 5)
    assert first.equals(group_sides(clips, (0.2, 0.2), 5))
    assert not first.equals(group_sides(clips, (0.2, 0.2), 6))


def test_check_refuses_a_group_on_two_sides():
    clips = clips_table()
    clips["split"] = group_sides(clips, (0.2, 0.2), 0)
    moved = clips.index[clips["split"] == "train"][0]
    clips.loc[moved, "split"] = "test"
    summary = leakage_report(clips, Params(), {"method": "group"})
    assert summary["group_overlap"]["train|test"] == 1
    with pytest.raises(StageError, match="groups on two sides of the split"):
        check(summary)


def test_check_refuses_identical_content_on_two_sides():
    clips = clips_table()
    clips["split"] = group_sides(clips, (0.2, 0.2), 0)
    train_row = clips.index[clips["split"] == "train"][0]
    test_row = clips.index[clips["split"] == "test"][0]
    clips.loc[test_row, "sha256"] = clips.loc[train_row, "sha256"]
    with pytest.raises(StageError, match="identical content on two sides"):
        check(leakage_report(clips, Params(), {"method": "group"}))


def test_check_refuses_a_label_without_training_clips():
    clips = clips_table()
    clips["split"] = group_sides(clips, (0.2, 0.2), 0)
    clips.loc[clips["split"] != "train", "label"] = "only-held-out"
    with pytest.raises(StageError, match=r"labels \['only-held-out'\] have no training clip"):
        check(leakage_report(clips, Params(), {"method": "group"}))


def test_allowed_leakage_is_reported_as_leaky_and_not_refused():
    clips = clips_table()
    clips["split"] = group_sides(clips, (0.2, 0.2), 0)
    clips.loc[clips.index[clips["split"] == "train"][0], "split"] = "test"
    params = Params.from_dict({"split": {"method": "random", "allow_leakage": True}})
    summary = leakage_report(clips, params, {"method": "random"})
    check(summary)
    assert summary["verdict"].startswith("LEAKY")
    assert summary["clips_in_shared_groups"]["train|test"] == 5


def test_intra_group_split_is_flagged_not_refused():
    clips = clips_table()
    clips["split"] = "train"
    for rows in clips.groupby("group").groups.values():
        clips.loc[rows[-1], "split"] = "val"
        clips.loc[rows[-2], "split"] = "test"
    info = {"method": "intra_group", "groups_shared_on_purpose": True}
    summary = leakage_report(clips, Params(), info)
    check(summary)
    assert "shared on purpose" in summary["verdict"]


def test_params_know_the_same_split_methods_as_the_splitter():
    from avgate.config import SPLIT_METHODS
    from avgate.splitting import METHODS

    assert SPLIT_METHODS == METHODS


# what the verdict can see


def singleton_table(n: int = 30) -> pd.DataFrame:
    """Clips that are each their own group, as folder data without data.folder.group_pattern."""
    clips = pd.DataFrame(
        {
            "clip_id": [f"c{i}" for i in range(n)],
            "label": ["a", "b", "c"] * (n // 3),
            "sha256": [f"h{i}" for i in range(n)],
        }
    )
    clips["group"] = clips["clip_id"]
    clips["split"] = group_sides(clips, (0.2, 0.2), 0)
    return clips


@pytest.mark.parametrize(
    ("fmt", "fix"),
    [("folder", "data.folder.group_pattern"), ("csv", "group column"), ("ave", "groups.csv")],
)
def test_every_group_of_one_clip_makes_the_verdict_unknown_with_the_fix(fmt, fix):
    params = Params.from_dict({"data": {"format": fmt}})
    summary = leakage_report(singleton_table(), params, {"method": "group"})
    check(summary)  # unknown is reported, not refused
    assert summary["verdict"].startswith("UNKNOWN")
    assert "Cramér's V" in summary["verdict"] and fix in summary["verdict"]
    assert summary["group_check"] == {
        "n_groups": 30,
        "singleton_groups": 30,
        "blind": True,
        "fix": format_named(fmt).group_fix,
    }


def test_one_group_of_two_clips_lets_the_check_see_and_the_verdict_say_so():
    clips = singleton_table()
    clips.loc[1, "group"] = clips.loc[0, "group"]
    clips.loc[1, "split"] = clips.loc[0, "split"]
    summary = leakage_report(clips, Params(), {"method": "group"})
    assert summary["verdict"].startswith("no leakage")
    assert summary["group_check"]["blind"] is False and summary["group_check"]["fix"] == ""
    assert summary["group_check"]["singleton_groups"] == 28


def test_identical_content_makes_singleton_groups_leaky_not_unknown():
    clips = singleton_table()
    test_row = clips.index[clips["split"] == "test"][0]
    clips.loc[test_row, "sha256"] = clips.loc[clips["split"] == "train", "sha256"].iloc[0]
    params = Params.from_dict({"split": {"method": "random", "allow_leakage": True}})
    assert leakage_report(clips, params, {"method": "random"})["verdict"].startswith("LEAKY")


def test_every_dataset_format_has_a_group_fix():
    assert all(format_named(name).group_fix for name in formats())


# label selection


def test_select_labels_keeps_the_named_labels_and_reports_the_rest():
    clips = clips_table()
    counts = clips["label"].value_counts()
    kept, report = select_labels(clips, DataParams(labels=["a", "b", "c"], exclude_labels=["c"]))
    assert set(kept["label"]) == {"a", "b"}
    assert report["left_out"] == {"c": int(counts["c"]), "d": int(counts["d"])}
    everything, report = select_labels(clips, DataParams())
    assert len(everything) == len(clips) and report["left_out"] == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (DataParams(labels=["a", "typo"]), r"data.labels names \['typo'\]"),
        (DataParams(exclude_labels=["typo"]), r"data.exclude_labels names \['typo'\]"),
        (DataParams(exclude_labels=["a", "b", "c", "d"]), "leave no clip"),
    ],
)
def test_select_labels_refuses_unknown_names_and_an_empty_choice(data, message):
    with pytest.raises(StageError, match=message):
        select_labels(clips_table(), data)


def test_params_refuse_a_label_both_kept_and_excluded():
    from avgate.declare import ConfigError

    with pytest.raises(ConfigError, match=r"data.exclude_labels must not name .* \['a'\]"):
        Params.from_dict({"data": {"labels": ["a", "b"], "exclude_labels": ["a"]}})
    with pytest.raises(ConfigError, match="split.rare_labels must be one of"):
        Params.from_dict({"split": {"rare_labels": "keep"}})


# the stage and its console


def stage_project(tmp_path, monkeypatch, clips: pd.DataFrame, overrides: dict) -> Params:
    """A project folder holding `clips` as the ingested manifest, and its params."""
    monkeypatch.chdir(tmp_path)
    params = write_params(tmp_path, merge({"data": {"name": "t", "format": "folder"}}, overrides))
    params.data.interim_dir.mkdir(parents=True)
    manifest = clips.assign(status="ok", sha256=clips["clip_id"], audio_sha256=clips["clip_id"])
    manifest.to_parquet(params.data.interim_dir / "manifest.parquet")
    return params


def rare_clips() -> pd.DataFrame:
    """Labels a-d from 5 single-label groups each, 'one' from 1 group and 'two' from 2."""
    groups = [(label, g) for label in "abcd" for g in range(5)] + [("one", 0), ("two", 0)]
    groups += [("two", 1)]
    rows = [(f"{label}{g}-{i}", label, f"{label}{g}") for label, g in groups for i in range(3)]
    return pd.DataFrame(rows, columns=["clip_id", "label", "group"])


def test_rare_labels_fail_by_default_naming_them_and_the_param(tmp_path, monkeypatch):
    params = stage_project(tmp_path, monkeypatch, rare_clips(), {})
    with pytest.raises(StageError, match="label 'one' has clips from 1 group.*split.rare_labels"):
        split.run(params)


def test_rare_labels_drop_names_them_in_the_report_and_the_console(tmp_path, monkeypatch, capsys):
    overrides = {"split": {"rare_labels": "drop"}, "data": {"exclude_labels": ["d"]}}
    stage_project(tmp_path, monkeypatch, rare_clips(), overrides)
    assert main(["split"]) == 0
    out = capsys.readouterr().out
    assert "'one' (3 clips from 1 group), 'two' (6 clips from 2 groups)" in out
    assert "left out (split.rare_labels)" in out
    assert "left out by data.labels / data.exclude_labels: 'd' (15 clips)" in out
    report = json.loads((tmp_path / "metrics/leakage.json").read_text())
    assert report["split"]["rare_labels"]["labels"] == {
        "one": {"clips": 3, "groups": 1},
        "two": {"clips": 6, "groups": 2},
    }
    assert report["label_selection"]["left_out"] == {"d": 15}
    splits = pd.read_parquet(tmp_path / "data/splits/t/splits.parquet")
    assert sorted({c[0] for c in splits["clip_id"]}) == ["a", "b", "c"]
    assert not any(report["labels_missing"].values())


def test_rare_labels_train_only_trains_on_them_and_says_so(tmp_path, monkeypatch, capsys):
    stage_project(tmp_path, monkeypatch, rare_clips(), {"split": {"rare_labels": "train_only"}})
    assert main(["split"]) == 0
    assert "kept in train only (split.rare_labels): 'one'" in capsys.readouterr().out
    splits = pd.read_parquet(tmp_path / "data/splits/t/splits.parquet").set_index("clip_id")
    assert set(splits.loc[["one0-0", "two0-0", "two1-2"], "split"]) == {"train"}
    assert len(splits) == len(rare_clips())


def test_the_console_says_unknown_when_every_clip_is_its_own_group(tmp_path, monkeypatch, capsys):
    clips = singleton_table().drop(columns=["split", "sha256"])
    stage_project(tmp_path, monkeypatch, clips, {})
    assert main(["split"]) == 0
    out = capsys.readouterr().out
    assert "UNKNOWN" in out and "data.folder.group_pattern" in out
    assert json.loads((tmp_path / "metrics/leakage.json").read_text())["verdict"].startswith(
        "UNKNOWN"
    )
