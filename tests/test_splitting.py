import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import train_test_split

from avgate import audit
from avgate.splitting import METHODS, SplitError, SplitResult, assign_splits, group_split


def clips_table(n_groups: int = 20, per_group: int = 5, n_labels: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = [
        (f"g{g}-{i}", f"l{rng.integers(n_labels)}", f"g{g}")
        for g in range(n_groups)
        for i in range(per_group)
    ]
    return pd.DataFrame(rows, columns=["clip_id", "label", "group"])


def with_split(clips: pd.DataFrame, result: SplitResult) -> pd.DataFrame:
    return clips.assign(split=result.split)


def no_group_overlap(table: pd.DataFrame) -> bool:
    return not any(audit.group_overlap(table).values())


def every_label_everywhere(table: pd.DataFrame) -> bool:
    return not any(audit.label_coverage(table).values())


# group


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_group_keeps_groups_apart_and_covers_every_label(seed):
    clips = clips_table(seed=seed)
    result = assign_splits(clips, "group", 0.2, 0.2, seed)
    table = with_split(clips, result)
    assert no_group_overlap(table)
    assert every_label_everywhere(table)
    assert result.info["method"] == "group"
    assert result.info["groups_shared_on_purpose"] is False
    json.dumps(result.info)


def test_group_retries_with_the_next_seeds_until_every_label_is_covered():
    clips = clips_table(n_groups=10, per_group=3, seed=3)
    result = assign_splits(clips, "group", 0.2, 0.2, seed=0)
    attempts = result.info["attempts"]
    assert attempts > 1  # this table needs a retry: the first draw misses a label
    assert result.info["seed"] == attempts - 1
    for failed_seed in range(attempts - 1):
        first = clips.assign(split=group_split(clips, 0.2, 0.2, failed_seed))
        assert not every_label_everywhere(first)
    assert result.split.equals(group_split(clips, 0.2, 0.2, result.info["seed"]))
    assert every_label_everywhere(with_split(clips, result))


def test_group_names_a_label_from_too_few_groups():
    clips = clips_table()
    clips.loc[clips["group"].isin(["g0", "g1"]), "label"] = "rare"
    with pytest.raises(
        SplitError, match="label 'rare' has clips from 2 groups; a grouped 3-way split needs >= 3"
    ):
        assign_splits(clips, "group", 0.2, 0.2, 0)


def test_group_gives_up_after_max_attempts_naming_the_uncovered_labels():
    clips = clips_table(n_groups=12, per_group=2, n_labels=5, seed=4)
    with pytest.raises(SplitError, match=r"none of 20 grouped splits \(seeds 0..19\)") as error:
        assign_splits(clips, "group", 0.2, 0.2, 0)
    assert "label 'l1' (clips from 3 groups) from test" in str(error.value)
    with pytest.raises(SplitError, match=r"none of 1 grouped splits \(seeds 7..7\)"):
        assign_splits(clips, "group", 0.2, 0.2, 7, max_attempts=1)
    with pytest.raises(SplitError, match="max_attempts is 0"):
        assign_splits(clips, "group", 0.2, 0.2, 0, max_attempts=0)


def test_group_refuses_too_few_groups_with_the_fix():
    clips = clips_table(n_groups=3, n_labels=1)
    with pytest.raises(SplitError, match="3 groups cannot be split into folds of 20%.*more groups"):
        assign_splits(clips, "group", 0.2, 0.2, 0)


def test_group_refuses_labels_too_small_to_stratify():
    clips = pd.DataFrame(
        {
            "clip_id": [f"c{i}" for i in range(6)],
            "label": ["a", "a", "a", "b", "b", "b"],
            "group": ["g0", "g1", "g2", "g0", "g3", "g4"],
        }
    )
    with pytest.raises(SplitError, match="every label has fewer than 5 clips, too few to stratify"):
        assign_splits(clips, "group", 0.2, 0.2, 0)


# predefined


def test_predefined_takes_the_split_column_as_it_is():
    clips = clips_table(n_groups=3, per_group=2)
    clips["split"] = ["train", "train", "val", "val", "test", "test"]
    clips.index = [10, 11, 12, 13, 14, 15]
    result = assign_splits(clips, "predefined", 0.2, 0.2, 0, test_fold=4)
    assert result.split.tolist() == clips["split"].tolist()
    assert result.split.index.equals(clips.index)
    assert result.info == {
        "method": "predefined",
        "seed": None,
        "attempts": 1,
        "groups_shared_on_purpose": False,
        "source": "split",
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["train", "dev", "val", "test"], r"it holds \['dev'\] and 0 empty rows"),
        (["train", None, "val", "test"], r"it holds \[\] and 1 empty rows"),
        (["train", "train", "test", "test"], r"leaves no clip in \['val'\]"),
    ],
)
def test_predefined_refuses_a_bad_split_column(values, message):
    clips = clips_table(n_groups=4, per_group=1).assign(split=values)
    with pytest.raises(SplitError, match=message):
        assign_splits(clips, "predefined", 0.2, 0.2, 0)


@pytest.mark.parametrize(("test_fold", "val_fold"), [(2, 3), (5, 1), (1, 2)])
def test_predefined_folds_hold_out_one_fold_and_the_next_wrapping_around(test_fold, val_fold):
    clips = clips_table()
    clips["fold"] = clips["group"].str[1:].astype(int) % 5 + 1  # folds 1..5, by group
    result = assign_splits(clips, "predefined", 0.2, 0.2, 0, test_fold=test_fold)
    expected = np.where(
        clips["fold"] == test_fold, "test", np.where(clips["fold"] == val_fold, "val", "train")
    )
    assert result.split.tolist() == expected.tolist()
    assert result.info["test_fold"] == test_fold and result.info["val_fold"] == val_fold
    assert no_group_overlap(with_split(clips, result))
    json.dumps(result.info)


def test_predefined_folds_wrap_to_the_smallest_fold_when_folds_have_gaps():
    clips = clips_table(n_groups=6, per_group=1).assign(fold=[3, 3, 7, 7, 9, 9])
    result = assign_splits(clips, "predefined", 0.2, 0.2, 0, test_fold=9)
    assert result.split.tolist() == ["val", "val", "train", "train", "test", "test"]


@pytest.mark.parametrize(
    ("fold", "test_fold", "message"),
    [
        ([1, 2, 3, 1], 4, r"split.test_fold 4 is not one of the folds \[1, 2, 3\]"),
        ([1, 2, 3, 1], None, r"split.test_fold None is not one of the folds \[1, 2, 3\]"),
        ([1, 2, 1, 2], 1, r"the clips have 2 folds \[1, 2\]; predefined folds need >= 3"),
        ([1, 2, None, 3], 1, r"column 'fold' has 1 empty rows"),
    ],
)
def test_predefined_folds_refuse_what_they_cannot_use(fold, test_fold, message):
    clips = clips_table(n_groups=4, per_group=1).assign(fold=fold)
    with pytest.raises(SplitError, match=message):
        assign_splits(clips, "predefined", 0.2, 0.2, 0, test_fold=test_fold)


def test_predefined_without_split_or_fold_names_the_columns_needed():
    with pytest.raises(SplitError, match="needs a 'split' column .* or a 'fold' column"):
        assign_splits(clips_table(), "predefined", 0.2, 0.2, 0, test_fold=1)


# intra_group


def test_intra_group_puts_every_group_on_every_side_in_time_order():
    rng = np.random.default_rng(0)
    sizes = {"g0": 1, "g1": 2, "g2": 3, "g3": 10, "g4": 7}
    rows = [
        (f"{g}-{i}", "a", g, int(t))
        for g, n in sizes.items()
        for i, t in enumerate(rng.permutation(n) * 4)
    ]
    clips = pd.DataFrame(rows, columns=["clip_id", "label", "group", "start_s"]).sample(
        frac=1, random_state=0
    )
    result = assign_splits(clips, "intra_group", 0.2, 0.2, 0)
    table = with_split(clips, result)
    counts = table.groupby(["group", "split"]).size().unstack(fill_value=0)
    assert counts.loc["g0"].tolist() == [0, 1, 0]  # test, train, val: one clip stays in train
    assert counts.loc["g1"].tolist() == [0, 1, 1]
    assert counts.loc["g2"].tolist() == [1, 1, 1]
    assert counts.loc["g3"].tolist() == [2, 6, 2]
    for _, group in table.groupby("group"):
        ordered = group.sort_values("start_s")["split"].tolist()
        assert ordered == sorted(ordered, key=["train", "val", "test"].index)
    assert result.info["groups_shared_on_purpose"] is True
    assert result.info["order"] == ["start_s", "clip_id"]
    json.dumps(result.info)


def test_intra_group_orders_by_clip_id_without_start_times():
    clips = pd.DataFrame(
        {"clip_id": ["c3", "c1", "c4", "c2", "c0"], "label": "a", "group": "g"},
        index=["v", "w", "x", "y", "z"],
    )
    result = assign_splits(clips, "intra_group", 0.2, 0.2, 0)
    expected = {"z": "train", "w": "train", "y": "train", "v": "val", "x": "test"}
    assert result.split.to_dict() == expected
    assert result.info["order"] == ["clip_id"]


def test_intra_group_refuses_when_no_group_can_fill_test():
    clips = clips_table(per_group=2)
    with pytest.raises(SplitError, match=r"intra_group leaves no clip in \['test'\]"):
        assign_splits(clips, "intra_group", 0.2, 0.2, 0)


# random


def test_random_is_refused_without_allow_leakage():
    with pytest.raises(SplitError, match="set split.allow_leakage: true to measure"):
        assign_splits(clips_table(), "random", 0.2, 0.2, 0)


def test_random_matches_sklearn_stratified_and_puts_groups_on_both_sides():
    clips = clips_table()
    result = assign_splits(clips, "random", 0.2, 0.2, 3, allow_leakage=True)
    rows, labels = np.arange(len(clips)), clips["label"].to_numpy()
    rest, test = train_test_split(rows, test_size=0.2, random_state=3, stratify=labels)
    assert sorted(np.flatnonzero(result.split == "test")) == sorted(test)
    assert result.info["stratified"] == {"test": True, "val": True}
    assert result.info["groups_shared_on_purpose"] is False
    assert not no_group_overlap(with_split(clips, result))
    assert set(result.split) == {"train", "val", "test"}


def test_random_falls_back_to_unstratified_for_a_single_clip_label():
    clips = clips_table()
    clips.loc[0, "label"] = "once"
    result = assign_splits(clips, "random", 0.2, 0.2, 0, allow_leakage=True)
    assert result.info["stratified"]["test"] is False


# every method


def test_unknown_method_lists_the_methods():
    with pytest.raises(SplitError, match=r"unknown split.method 'kfold'.*'intra_group'"):
        assign_splits(clips_table(), "kfold", 0.2, 0.2, 0)


@pytest.mark.parametrize(
    ("clips", "message"),
    [
        (clips_table().drop(columns="group"), r"lack the columns \['group'\]"),
        (clips_table().assign(label=None), r"empty values in \{'label': 100\}"),
    ],
)
def test_missing_columns_and_values_are_refused(clips, message):
    with pytest.raises(SplitError, match=message):
        assign_splits(clips, "group", 0.2, 0.2, 0)


@pytest.mark.parametrize("fractions", [(0.0, 0.2), (0.5, 0.5), (0.2, -0.1)])
def test_bad_fractions_are_refused(fractions):
    with pytest.raises(SplitError, match="each must be above 0 and together below 1"):
        assign_splits(clips_table(), "intra_group", *fractions, 0)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_is_deterministic_and_keeps_the_index(method):
    clips = clips_table().assign(fold=lambda t: t["group"].str[1:].astype(int) % 4)
    clips.index = [f"row{i}" for i in range(len(clips))][::-1]
    run = dict(allow_leakage=True, test_fold=0)
    first = assign_splits(clips, method, 0.2, 0.2, 1, **run)
    assert first.split.equals(assign_splits(clips, method, 0.2, 0.2, 1, **run).split)
    assert first.split.index.equals(clips.index)
    assert set(first.split) == {"train", "val", "test"}
    if method in ("group", "random"):
        assert not first.split.equals(assign_splits(clips, method, 0.2, 0.2, 2, **run).split)


tables = st.lists(
    st.tuples(st.sampled_from("abc"), st.integers(0, 9), st.integers(0, 4), st.integers(0, 60)),
    max_size=50,
).map(
    lambda rows: pd.DataFrame(
        {
            "clip_id": [f"c{i}" for i in range(len(rows))],
            "label": [r[0] for r in rows],
            "group": [f"g{r[1]}" for r in rows],
            "fold": pd.Series([r[2] for r in rows], dtype=int),
            "start_s": pd.Series([r[3] for r in rows], dtype=int),
        }
    )
)


@settings(max_examples=60, deadline=None)
@given(tables, st.integers(0, 5), st.sampled_from([0.1, 0.2, 0.3]))
def test_group_split_never_leaks_and_never_fails_unexplained(clips, seed, fraction):
    try:
        result = assign_splits(clips, "group", fraction, fraction, seed, max_attempts=3)
    except SplitError:
        return
    table = with_split(clips, result)
    assert no_group_overlap(table)
    assert every_label_everywhere(table)
    assert table["split"].value_counts().reindex(audit.SPLITS).min() > 0


@settings(max_examples=40, deadline=None)
@given(tables, st.sampled_from(METHODS), st.integers(0, 4))
def test_every_method_returns_a_full_split_or_a_split_error(clips, method, test_fold):
    try:
        result = assign_splits(
            clips, method, 0.2, 0.2, 0, allow_leakage=True, test_fold=test_fold, max_attempts=2
        )
    except SplitError:
        return
    assert result.split.index.equals(clips.index)
    assert set(result.split) == {"train", "val", "test"}
    json.dumps(result.info)
