"""Leakage checks on a split: groups and identical content must not cross split boundaries.

>>> import pandas as pd
>>> table = pd.DataFrame({"clip_id": ["a", "b", "c"], "group": ["g1", "g1", "g2"],
...                       "sha256": ["x", "y", "z"], "split": ["train", "test", "val"]})
>>> group_overlap(table)
{'train|val': [], 'train|test': ['g1'], 'val|test': []}
"""

from __future__ import annotations

from itertools import combinations

import pandas as pd

SPLITS = ("train", "val", "test")


def _overlap(table: pd.DataFrame, column: str) -> dict[str, list[str]]:
    members = {s: set(table.loc[table["split"] == s, column]) for s in SPLITS}
    return {f"{a}|{b}": sorted(members[a] & members[b]) for a, b in combinations(SPLITS, 2)}


def group_overlap(table: pd.DataFrame) -> dict[str, list[str]]:
    """Groups present in two splits, per pair of splits (all lists empty = no group leakage)."""
    return _overlap(table, "group")


def duplicate_overlap(table: pd.DataFrame) -> dict[str, list[str]]:
    """File hashes present in two splits, per pair of splits (exact duplicate content)."""
    return _overlap(table, "sha256")


def label_coverage(table: pd.DataFrame) -> dict[str, list[str]]:
    """Labels missing from each split."""
    labels = set(table["label"])
    return {s: sorted(labels - set(table.loc[table["split"] == s, "label"])) for s in SPLITS}
