"""Leakage and confound checks on a split: groups and identical or near-identical content must
not cross split boundaries, and the group should not be what a model learns.

>>> import pandas as pd
>>> table = pd.DataFrame({"clip_id": ["a", "b", "c"], "group": ["g1", "g1", "g2"],
...                       "sha256": ["x", "y", "z"], "split": ["train", "test", "val"]})
>>> group_overlap(table)
{'train|val': [], 'train|test': ['g1'], 'val|test': []}
"""

from __future__ import annotations

import warnings
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats.contingency import association
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

SPLITS = ("train", "val", "test")


def _overlap(table: pd.DataFrame, column: str) -> dict[str, list[str]]:
    members = {s: set(table.loc[table["split"] == s, column]) for s in SPLITS}
    return {f"{a}|{b}": sorted(members[a] & members[b]) for a, b in combinations(SPLITS, 2)}


def group_overlap(table: pd.DataFrame) -> dict[str, list[str]]:
    """Groups present in two splits, per pair of splits (all lists empty = no group leakage)."""
    return _overlap(table, "group")


def duplicate_overlap(table: pd.DataFrame, column: str = "sha256") -> dict[str, list[str]]:
    """Hashes in `column` present in two splits, per pair of splits (exact duplicate content)."""
    return _overlap(table, column)


def label_coverage(table: pd.DataFrame) -> dict[str, list[str]]:
    """Labels missing from each split."""
    labels = set(table["label"])
    return {s: sorted(labels - set(table.loc[table["split"] == s, "label"])) for s in SPLITS}


def cramers_v(labels, groups) -> float:
    """Cramér's V between label and group: 0 independent, 1 the group gives the label away.

    0.0 when either has a single level (nothing to associate).

    >>> cramers_v(["a", "a", "b", "b"], ["g1", "g1", "g2", "g2"])
    1.0
    """
    table = pd.crosstab(np.asarray(labels), np.asarray(groups))
    if min(table.shape) < 2:
        return 0.0
    return float(association(table.to_numpy(), method="cramer"))


def group_predictability(
    x: np.ndarray, groups, labels=None, seed: int = 0, max_rows: int = 20000
) -> dict:
    """How well a standardised logistic regression predicts the group from embeddings `x`.

    Rows of `x` align with `groups`. At most `max_rows` rows, drawn by `seed`; groups with a
    single row are dropped (counted in ``dropped_groups``). Accuracy is pooled over
    ``folds``-fold stratified cross-validation, ``chance`` is the share of the most frequent
    group and ``lift`` is accuracy / chance. With `labels`, ``chance_given_label`` is the share
    of the most frequent group within each label: the accuracy of a predictor that only knows
    the label, so ``lift_given_label`` well above 1 means the embedding carries the group
    beyond the label. Fewer than 2 usable groups: the scores are None and ``reason`` says why.
    """
    x, groups = np.asarray(x), np.asarray(groups)
    if x.ndim != 2 or len(x) != len(groups):
        raise ValueError(f"x of shape {x.shape} needs one row per group entry ({len(groups)})")
    if labels is not None and len(labels) != len(groups):
        raise ValueError(f"{len(labels)} labels for {len(groups)} rows")
    rows = np.arange(len(x))
    if len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(len(x), max_rows, replace=False))
    counts = pd.Series(groups[rows]).value_counts()
    usable = counts[counts >= 2]
    rows = rows[pd.Series(groups[rows]).isin(usable.index).to_numpy()]
    sizes = {
        "n_groups": len(usable),
        "n_rows": len(rows),
        "dropped_groups": len(counts) - len(usable),
    }
    if len(usable) < 2:
        reason = f"{len(usable)} groups with >= 2 rows; predicting the group needs >= 2"
        scores = {"accuracy": None, "chance": None, "lift": None}
        return {**scores, **sizes, "folds": None, "test": None, "reason": reason}
    folds = min(5, int(usable.min()))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    # many groups for few clips is this check's normal case (sklearn suspects a regression)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)
        predicted = cross_val_predict(model, x[rows], groups[rows], cv=cv)
    accuracy = float(np.mean(predicted == groups[rows]))
    chance = float(usable.max() / len(rows))
    result = {
        "accuracy": accuracy,
        "chance": chance,
        "lift": accuracy / chance,
        **sizes,
        "folds": folds,
        "test": f"{folds}-fold cross-validated logistic regression, group from embedding",
    }
    if labels is not None:
        per_label = pd.crosstab(np.asarray(labels)[rows], groups[rows]).max(axis=1)
        chance_given_label = float(per_label.sum() / len(rows))
        result["chance_given_label"] = chance_given_label
        result["lift_given_label"] = accuracy / chance_given_label
    return result


def near_duplicates(
    x_a: np.ndarray, ids_a, x_b: np.ndarray, ids_b, threshold: float = 0.99, chunk: int = 4096
) -> pd.DataFrame:
    """Pairs of rows of `x_a` and `x_b` with cosine similarity >= `threshold`, strongest first.

    Columns ``id_a``, ``id_b``, ``cosine``. Blocks of `chunk` x `chunk` similarities are computed
    one at a time, so memory stays bounded and memory-mapped arrays are read block by block.
    Zero (and non-finite) rows never match. Passing one matrix twice finds duplicates within it,
    self-pairs included.

    >>> near_duplicates(np.array([[1.0, 0.0], [0.0, 1.0]]), ["a1", "a2"],
    ...                 np.array([[2.0, 0.01], [0.0, 0.0]]), ["b1", "b2"])
      id_a id_b    cosine
    0   a1   b1  0.999988
    """
    for x, ids, name in ((x_a, ids_a, "x_a"), (x_b, ids_b, "x_b")):
        if np.ndim(x) != 2 or len(x) != len(ids):
            raise ValueError(f"{name} of shape {np.shape(x)} needs one row per id ({len(ids)})")
    if np.shape(x_a)[1] != np.shape(x_b)[1]:
        raise ValueError(f"x_a has {np.shape(x_a)[1]} columns and x_b {np.shape(x_b)[1]}")
    if chunk < 1:
        raise ValueError(f"chunk is {chunk}; it must be at least 1")
    rows_a, rows_b, cosines = [np.empty(0, int)], [np.empty(0, int)], [np.empty(0)]
    for i in range(0, len(x_a), chunk):
        a = _unit_rows(x_a[i : i + chunk])
        for j in range(0, len(x_b), chunk):
            similarity = a @ _unit_rows(x_b[j : j + chunk]).T
            hit_a, hit_b = np.nonzero(similarity >= threshold)
            rows_a.append(i + hit_a)
            rows_b.append(j + hit_b)
            cosines.append(similarity[hit_a, hit_b].astype(float))
    pairs = pd.DataFrame(
        {
            "id_a": np.asarray(ids_a)[np.concatenate(rows_a)],
            "id_b": np.asarray(ids_b)[np.concatenate(rows_b)],
            "cosine": np.concatenate(cosines),
        }
    )
    return pairs.sort_values("cosine", ascending=False, kind="stable", ignore_index=True)


def _unit_rows(block: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows become NaN so that they match nothing."""
    block = np.asarray(block)
    block = block.astype(np.result_type(block.dtype, np.float32), copy=False)
    norms = np.linalg.norm(block, axis=1, keepdims=True)
    norms[norms == 0] = np.nan
    return block / norms
