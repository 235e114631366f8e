import numpy as np
import pandas as pd
import pytest

from avgate import audit
from avgate.config import Params
from avgate.splitting import group_split
from avgate.stages import StageError
from avgate.stages.split import check, leakage_report


def clips_table(n_groups: int = 20, per_group: int = 5, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = ["a", "b", "c", "d"]
    rows = []
    for g in range(n_groups):
        for i in range(per_group):
            rows.append((f"g{g}-{i}", labels[rng.integers(4)], f"g{g}", f"hash{g}-{i}"))
    return pd.DataFrame(rows, columns=["clip_id", "label", "group", "sha256"])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_group_split_never_puts_a_group_on_two_sides(seed):
    clips = clips_table(seed=seed)
    clips["split"] = group_split(clips, 0.2, 0.2, seed)
    assert all(not ids for ids in audit.group_overlap(clips).values())
    assert clips.groupby("group")["split"].nunique().max() == 1
    shares = clips["split"].value_counts(normalize=True)
    assert 0.1 <= shares["test"] <= 0.3 and 0.1 <= shares["val"] <= 0.3


def test_group_split_is_deterministic_per_seed():
    clips = clips_table()
    first = group_split(clips, 0.2, 0.2, 5)
    assert first.equals(group_split(clips, 0.2, 0.2, 5))
    assert not first.equals(group_split(clips, 0.2, 0.2, 6))


def test_too_few_groups_are_refused_with_the_fix():
    clips = clips_table(n_groups=3)
    with pytest.raises(ValueError, match="3 groups cannot be split into folds of 20%"):
        group_split(clips, 0.2, 0.2, 0)


def test_check_refuses_a_group_on_two_sides():
    clips = clips_table()
    clips["split"] = group_split(clips, 0.2, 0.2, 0)
    moved = clips.index[clips["split"] == "train"][0]
    clips.loc[moved, "split"] = "test"
    summary = leakage_report(clips, Params(), {"method": "group"})
    assert summary["group_overlap"]["train|test"] == 1
    with pytest.raises(StageError, match="groups on two sides of the split"):
        check(summary)


def test_check_refuses_identical_content_on_two_sides():
    clips = clips_table()
    clips["split"] = group_split(clips, 0.2, 0.2, 0)
    train_row = clips.index[clips["split"] == "train"][0]
    test_row = clips.index[clips["split"] == "test"][0]
    clips.loc[test_row, "sha256"] = clips.loc[train_row, "sha256"]
    with pytest.raises(StageError, match="identical content on two sides"):
        check(leakage_report(clips, Params(), {"method": "group"}))


def test_check_refuses_a_label_without_training_clips():
    clips = clips_table()
    clips["split"] = group_split(clips, 0.2, 0.2, 0)
    clips.loc[clips["split"] != "train", "label"] = "only-held-out"
    with pytest.raises(StageError, match=r"labels \['only-held-out'\] have no training clip"):
        check(leakage_report(clips, Params(), {"method": "group"}))


def test_allowed_leakage_is_reported_as_leaky_and_not_refused():
    clips = clips_table()
    clips["split"] = group_split(clips, 0.2, 0.2, 0)
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
