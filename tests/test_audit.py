import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency
from sklearn.metrics.pairwise import cosine_similarity

from avgate.audit import cramers_v, group_predictability, near_duplicates


def from_table(table: list[list[int]]) -> tuple[list[str], list[str]]:
    """(labels, groups) with one entry per count of a label x group contingency table."""
    labels, groups = [], []
    for i, row in enumerate(table):
        for j, n in enumerate(row):
            labels += [f"l{i}"] * n
            groups += [f"g{j}"] * n
    return labels, groups


# cramers_v


def test_cramers_v_matches_a_hand_computed_2x2_table():
    # For a 2x2 table V = |ad - bc| / sqrt((a+b)(c+d)(a+c)(b+d)) = 250 / sqrt(375000).
    labels, groups = from_table([[20, 10], [5, 15]])
    assert cramers_v(labels, groups) == pytest.approx(250 / np.sqrt(30 * 20 * 25 * 25))


def test_cramers_v_matches_the_chi_square_definition():
    rng = np.random.default_rng(0)
    labels = rng.choice(["a", "b", "c"], 300)
    groups = np.where(labels == "a", rng.choice(["g0", "g1"], 300), rng.choice(["g1", "g2"], 300))
    groups[:40] = "g3"
    table = pd.crosstab(labels, groups).to_numpy()
    chi2 = chi2_contingency(table, correction=False).statistic
    expected = np.sqrt(chi2 / (table.sum() * (min(table.shape) - 1)))
    assert cramers_v(labels, groups) == pytest.approx(expected)


def test_cramers_v_is_one_when_each_group_holds_one_label():
    labels, groups = from_table([[5, 3, 0, 0], [0, 0, 4, 6]])
    assert cramers_v(labels, groups) == pytest.approx(1.0)


def test_cramers_v_is_zero_for_independent_label_and_group():
    labels, groups = from_table([[6, 6, 6], [3, 3, 3]])
    assert cramers_v(labels, groups) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(1)
    assert cramers_v(rng.choice(["a", "b"], 5000), rng.choice(list("pqrs"), 5000)) < 0.05


def test_cramers_v_is_zero_with_a_single_level_or_no_rows():
    assert cramers_v(["a", "a", "a"], ["g0", "g1", "g2"]) == 0.0
    assert cramers_v(["a", "b", "c"], ["g", "g", "g"]) == 0.0
    assert cramers_v([], []) == 0.0


def test_cramers_v_pairs_by_position_not_by_series_index():
    labels, groups = from_table([[5, 0], [0, 5]])
    shifted = pd.Series(labels, index=range(100, 110))
    assert cramers_v(shifted, pd.Series(groups)) == pytest.approx(1.0)


# group_predictability


def embeddings(groups: np.ndarray, signal: float, seed: int = 0, dims: int = 16) -> np.ndarray:
    """Noise plus `signal` times a random centre per group."""
    rng = np.random.default_rng(seed)
    names, codes = np.unique(groups, return_inverse=True)
    centres = rng.normal(size=(len(names), dims))
    return signal * centres[codes] + rng.normal(size=(len(groups), dims))


def test_group_predictability_is_high_when_embeddings_encode_the_group():
    groups = np.repeat([f"g{i}" for i in range(6)], 30)
    result = group_predictability(embeddings(groups, signal=3.0), groups)
    assert result["accuracy"] > 0.9
    assert result["chance"] == pytest.approx(1 / 6)
    assert result["lift"] == pytest.approx(result["accuracy"] / result["chance"])
    assert (result["n_groups"], result["n_rows"], result["folds"]) == (6, 180, 5)
    assert result["test"] == "5-fold cross-validated logistic regression, group from embedding"


def test_group_predictability_is_near_chance_for_noise():
    groups = np.repeat([f"g{i}" for i in range(6)], 30)
    result = group_predictability(embeddings(groups, signal=0.0), groups)
    assert result["accuracy"] < result["chance"] + 0.12
    assert result["lift"] < 1.8


def test_group_predictability_drops_single_row_groups_and_sets_folds_by_the_smallest():
    groups = np.array(["a"] * 10 + ["b"] * 3 + ["c"] * 10 + ["x", "y"])
    result = group_predictability(embeddings(groups, signal=3.0), groups)
    assert result["dropped_groups"] == 2
    assert (result["n_groups"], result["n_rows"], result["folds"]) == (3, 23, 3)
    assert result["test"].startswith("3-fold")
    assert result["chance"] == pytest.approx(10 / 23)


@pytest.mark.parametrize("groups", [["a", "a", "b"], ["a", "b", "c"], []])
def test_group_predictability_without_two_usable_groups_says_why(groups):
    result = group_predictability(np.zeros((len(groups), 4)), np.array(groups))
    assert result["accuracy"] is None and result["lift"] is None
    assert "predicting the group needs >= 2" in result["reason"]


def test_group_predictability_subsamples_deterministically():
    groups = np.repeat([f"g{i}" for i in range(4)], 50)
    x = embeddings(groups, signal=1.0)
    first = group_predictability(x, groups, seed=3, max_rows=80)
    assert first["n_rows"] == 80
    assert first == group_predictability(x, groups, seed=3, max_rows=80)
    assert first != group_predictability(x, groups, seed=4, max_rows=80)


def test_group_predictability_given_labels_separates_label_from_group():
    # Groups nested in labels, embeddings encode only the label: knowing the label explains
    # all of the accuracy, so the lift over a label-aware chance stays near 1.
    groups = np.repeat([f"g{i}" for i in range(6)], 40)
    labels = np.where(np.isin(groups, ["g0", "g1", "g2"]), "cat", "dog")
    x = embeddings(labels, signal=4.0)
    result = group_predictability(x, groups, labels)
    assert result["chance_given_label"] == pytest.approx(1 / 3)
    assert result["lift"] > 1.5
    assert result["lift_given_label"] < 1.3


def test_group_predictability_refuses_misaligned_inputs():
    with pytest.raises(ValueError, match="one row per group entry"):
        group_predictability(np.zeros((5, 2)), ["a"] * 4)
    with pytest.raises(ValueError, match="3 labels for 4 rows"):
        group_predictability(np.zeros((4, 2)), ["a"] * 4, labels=["x"] * 3)


# near_duplicates


def planted(seed: int = 0) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    x_a, x_b = rng.normal(size=(30, 6)), rng.normal(size=(25, 6))
    x_b[3] = 2 * x_a[7] + 1e-3 * rng.normal(size=6)
    x_b[10] = x_a[2]
    return x_a, [f"a{i}" for i in range(30)], x_b, [f"b{i}" for i in range(25)]


@pytest.mark.parametrize("threshold", [0.999, 0.6, -0.2])
def test_near_duplicates_match_sklearn_cosine_similarity(threshold):
    x_a, ids_a, x_b, ids_b = planted()
    found = near_duplicates(x_a, ids_a, x_b, ids_b, threshold=threshold)
    similarity = cosine_similarity(x_a, x_b)
    rows, cols = np.nonzero(similarity >= threshold)
    expected = {(ids_a[i], ids_b[j]): similarity[i, j] for i, j in zip(rows, cols, strict=True)}
    assert set(zip(found["id_a"], found["id_b"], strict=True)) == set(expected)
    for _, pair in found.iterrows():
        assert pair["cosine"] == pytest.approx(expected[(pair["id_a"], pair["id_b"])])
    assert found["cosine"].is_monotonic_decreasing


def test_near_duplicates_find_the_planted_copies():
    found = near_duplicates(*planted(), threshold=0.999)
    assert found[["id_a", "id_b"]].values.tolist() == [["a2", "b10"], ["a7", "b3"]]


@pytest.mark.parametrize("chunk", [1, 2, 7, 25, 30, 4096])
def test_near_duplicates_do_not_depend_on_chunk_boundaries(chunk):
    x_a, ids_a, x_b, ids_b = planted()
    whole = near_duplicates(x_a, ids_a, x_b, ids_b, threshold=0.3, chunk=4096)
    pd.testing.assert_frame_equal(
        near_duplicates(x_a, ids_a, x_b, ids_b, threshold=0.3, chunk=chunk), whole
    )


def test_near_duplicates_never_match_zero_rows():
    x_a, ids_a, x_b, ids_b = planted()
    x_a[[0, 5]] = 0.0
    x_b[3] = 0.0
    found = near_duplicates(x_a, ids_a, x_b, ids_b, threshold=-1.0, chunk=4)
    assert len(found) == 28 * 24  # every other pair, as cosine >= -1 always holds
    assert not {"a0", "a5"} & set(found["id_a"]) and "b3" not in set(found["id_b"])


def test_near_duplicates_read_float32_and_memory_maps(tmp_path):
    x_a, ids_a, x_b, ids_b = planted()
    stored = np.lib.format.open_memmap(
        tmp_path / "b.npy", mode="w+", dtype=np.float32, shape=x_b.shape
    )
    stored[:] = x_b
    found = near_duplicates(x_a.astype(np.float32), ids_a, stored, ids_b, threshold=0.999, chunk=8)
    assert sorted(found[["id_a", "id_b"]].values.tolist()) == [["a2", "b10"], ["a7", "b3"]]
    assert found["cosine"].dtype == np.float64


def test_near_duplicates_without_matches_or_rows_keep_the_columns():
    x_a, ids_a, x_b, ids_b = planted()
    empty = near_duplicates(x_a[:0], [], x_b, ids_b)
    assert list(empty.columns) == ["id_a", "id_b", "cosine"] and empty.empty
    orthogonal = np.eye(4)
    assert near_duplicates(orthogonal[:2], ["a", "b"], orthogonal[2:], ["c", "d"]).empty


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.zeros((3, 2)), ["a"] * 2, np.zeros((3, 2)), ["b"] * 3), "x_a of shape"),
        ((np.zeros((3, 2)), ["a"] * 3, np.zeros(3), ["b"] * 3), "x_b of shape"),
        ((np.zeros((3, 2)), ["a"] * 3, np.zeros((3, 4)), ["b"] * 3), "x_a has 2 columns"),
    ],
)
def test_near_duplicates_refuse_misaligned_inputs(args, message):
    with pytest.raises(ValueError, match=message):
        near_duplicates(*args)


def test_near_duplicates_refuse_an_empty_chunk():
    with pytest.raises(ValueError, match="chunk is 0"):
        near_duplicates(np.ones((2, 2)), ["a", "b"], np.ones((2, 2)), ["c", "d"], chunk=0)
