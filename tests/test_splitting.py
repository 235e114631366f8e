import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import train_test_split

from avgate import audit
from avgate.splitting import (
    METHODS,
    RARE_POLICIES,
    SplitError,
    SplitResult,
    assign_splits,
    group_sides,
)


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


def test_group_names_a_label_from_too_few_groups():
    clips = clips_table()
    clips.loc[clips["group"].isin(["g0", "g1"]), "label"] = "rare"
    with pytest.raises(
        SplitError, match="label 'rare' has clips from 2 groups; a grouped 3-way split needs >= 3"
    ):
        assign_splits(clips, "group", 0.2, 0.2, 0)


@pytest.mark.parametrize(
    ("labels", "groups"),
    [
        (["a"] * 6, ["g0", "g1", "g2"] * 2),  # three groups: one to each side
        (["a", "a", "a", "b", "b", "b"], ["g0", "g1", "g2", "g0", "g3", "g4"]),  # one clip each
    ],
)
def test_group_splits_the_smallest_sets_that_can_be_split(labels, groups):
    clips = pd.DataFrame({"clip_id": [f"c{i}" for i in range(6)], "label": labels, "group": groups})
    table = with_split(clips, assign_splits(clips, "group", 0.2, 0.2, 0))
    assert every_label_everywhere(table) and no_group_overlap(table)


def single_label_groups(groups_per_label: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """Clips of groups that each hold one label (1-5 clips a group), as in ESC-50."""
    rng = np.random.default_rng(seed)
    rows = [
        (f"{label}-g{g}-{c}", label, f"{label}-g{g}")
        for label, n_groups in groups_per_label.items()
        for g in range(n_groups)
        for c in range(rng.integers(1, 6))
    ]
    return pd.DataFrame(rows, columns=["clip_id", "label", "group"])


def test_group_puts_every_label_of_an_esc50_shaped_set_on_every_side_at_the_first_seed():
    rng = np.random.default_rng(7)
    clips = single_label_groups({f"class{k:02d}": int(rng.integers(3, 9)) for k in range(48)})
    assert clips.groupby("label")["group"].nunique().min() == 3
    result = assign_splits(clips, "group", 0.2, 0.2, seed=0)
    table = with_split(clips, result)
    assert every_label_everywhere(table) and no_group_overlap(table)
    shares = table["split"].value_counts(normalize=True)
    assert shares["val"] == pytest.approx(0.2, abs=0.04)
    assert shares["test"] == pytest.approx(0.2, abs=0.04)
    assert result.info == {
        "method": "group",
        "seed": 0,
        "groups_shared_on_purpose": False,
        "rare_labels": {"policy": "fail", "labels": {}},
    }


@pytest.mark.parametrize("seed", range(5))
def test_a_label_of_three_groups_sends_its_largest_group_to_train(seed):
    clips = pd.DataFrame(
        {
            "clip_id": [f"c{i}" for i in range(10)],
            "label": "a",
            "group": ["big"] * 8 + ["small1", "small2"],
        }
    )
    split = group_sides(clips, (0.2, 0.2), seed)
    assert set(split[clips["group"] == "big"]) == {"train"}
    assert sorted(split[clips["group"] != "big"]) == ["test", "val"]


def test_group_sides_are_fixed_by_the_seed_and_vary_with_it():
    clips = single_label_groups({"a": 8, "b": 8, "c": 8})
    splits = [group_sides(clips, (0.2, 0.2), seed) for seed in (0, 0, 1, 2, 3)]
    assert splits[0].equals(splits[1])
    assert any(not splits[0].equals(other) for other in splits[2:])


def test_a_group_holding_several_labels_is_placed_once_and_counts_for_each():
    clips = clips_table(n_groups=12, per_group=6, n_labels=5, seed=4)
    assert clips.groupby("group")["label"].nunique().min() > 1
    for seed in range(4):
        table = with_split(clips, assign_splits(clips, "group", 0.2, 0.2, seed))
        assert table.groupby("group")["split"].nunique().max() == 1
        assert every_label_everywhere(table)


def test_labels_sharing_their_groups_can_leave_no_side_free_and_are_named():
    # a covers g1..g3 and b covers g1, g2, g4 on all three sides: g3 and g4 must share the side
    # g1 and g2 leave, so c (g3, g4, g5) can reach only two sides.
    pairs = [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2), ("b", 4)]
    pairs += [("c", 3), ("c", 4), ("c", 5)]
    clips = pd.DataFrame(
        {
            "clip_id": [f"c{i}" for i in range(len(pairs))],
            "label": [label for label, _ in pairs],
            "group": [f"g{g}" for _, g in pairs],
        }
    )
    with pytest.raises(
        SplitError, match=r"leave out label 'c' from \['(train|val|test)'\]"
    ) as error:
        assign_splits(clips, "group", 0.2, 0.2, 0)
    assert "data.exclude_labels" in str(error.value)


def rare_table() -> pd.DataFrame:
    clips = single_label_groups({"a": 4, "b": 5, "c": 3})
    rare = pd.DataFrame(
        {
            "clip_id": ["r0", "r1", "r2", "s0"],
            "label": ["rare", "rare", "rare", "once"],
            "group": ["rg0", "rg0", "rg1", "sg0"],
        }
    )
    return pd.concat([clips, rare], ignore_index=True)


def test_rare_labels_fail_names_each_label_and_the_param():
    with pytest.raises(SplitError) as error:
        assign_splits(rare_table(), "group", 0.2, 0.2, 0)
    message = str(error.value)
    assert "label 'once' has clips from 1 group; label 'rare' has clips from 2 groups" in message
    assert "split.rare_labels" in message


def test_rare_labels_drop_leaves_out_their_clips_and_reports_them():
    clips = rare_table()
    result = assign_splits(clips, "group", 0.2, 0.2, 0, rare_labels="drop")
    kept = clips.loc[result.split.index]
    assert set(kept["label"]) == {"a", "b", "c"}
    assert len(kept) == int(clips["label"].isin(["a", "b", "c"]).sum())
    assert every_label_everywhere(with_split(kept, result))
    assert result.info["rare_labels"] == {
        "policy": "drop",
        "labels": {"once": {"clips": 1, "groups": 1}, "rare": {"clips": 3, "groups": 2}},
    }


def test_rare_labels_train_only_keeps_their_groups_in_train():
    clips = rare_table()
    result = assign_splits(clips, "group", 0.2, 0.2, 0, rare_labels="train_only")
    table = with_split(clips, result)
    assert result.split.index.equals(clips.index)
    assert set(table.loc[table["label"].isin(["rare", "once"]), "split"]) == {"train"}
    assert every_label_everywhere(table[~table["label"].isin(["rare", "once"])])
    assert set(result.info["rare_labels"]["labels"]) == {"once", "rare"}


def test_a_rare_label_sharing_a_group_pins_that_group_to_train():
    clips = single_label_groups({"a": 4, "b": 4})
    clips.loc[len(clips)] = ["r0", "rare", "a-g0"]  # the rare label's only group also holds a
    result = assign_splits(clips, "group", 0.2, 0.2, 0, rare_labels="train_only")
    table = with_split(clips, result)
    assert set(table.loc[table["group"] == "a-g0", "split"]) == {"train"}
    assert every_label_everywhere(table[table["label"] != "rare"])


def test_rare_labels_drop_refuses_to_leave_no_clip():
    clips = single_label_groups({"a": 2, "b": 1})
    with pytest.raises(SplitError, match="split.rare_labels drop leaves no clip"):
        assign_splits(clips, "group", 0.2, 0.2, 0, rare_labels="drop")


def test_unknown_rare_label_policy_lists_the_policies():
    with pytest.raises(SplitError, match=r"unknown split.rare_labels 'keep'.*'train_only'"):
        assign_splits(clips_table(), "group", 0.2, 0.2, 0, rare_labels="keep")


def test_params_know_the_same_rare_label_policies_as_the_splitter():
    from avgate.config import RARE_LABEL_POLICIES

    assert RARE_LABEL_POLICIES == RARE_POLICIES


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
        result = assign_splits(clips, "group", fraction, fraction, seed)
    except SplitError as error:
        few = clips.groupby("label")["group"].nunique().lt(3).any()
        assert ("split.rare_labels" in str(error)) == bool(few)
        assert few or clips.empty or "groups holding several labels leave out" in str(error)
        return
    table = with_split(clips, result)
    assert no_group_overlap(table)
    assert every_label_everywhere(table)
    assert table["split"].value_counts().reindex(audit.SPLITS).min() > 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(1, 4), min_size=3, max_size=6), min_size=1, max_size=12),
    st.integers(0, 5),
    st.sampled_from([0.1, 0.2, 0.3]),
)
def test_group_split_of_single_label_groups_covers_every_label_by_construction(
    sizes, seed, fraction
):
    """sizes[label][group]: clips in each group; every label has at least 3 groups."""
    rows = [
        (f"l{label}-g{group}-{c}", f"l{label}", f"l{label}-g{group}")
        for label, groups in enumerate(sizes)
        for group, n in enumerate(groups)
        for c in range(n)
    ]
    clips = pd.DataFrame(rows, columns=["clip_id", "label", "group"])
    table = with_split(clips, assign_splits(clips, "group", fraction, fraction, seed))
    assert no_group_overlap(table) and every_label_everywhere(table)


@settings(max_examples=40, deadline=None)
@given(tables, st.sampled_from(METHODS), st.integers(0, 4))
def test_every_method_returns_a_full_split_or_a_split_error(clips, method, test_fold):
    try:
        result = assign_splits(clips, method, 0.2, 0.2, 0, allow_leakage=True, test_fold=test_fold)
    except SplitError:
        return
    assert result.split.index.equals(clips.index)
    assert set(result.split) == {"train", "val", "test"}
    json.dumps(result.info)
