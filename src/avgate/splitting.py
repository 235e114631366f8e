"""Grouped, label-stratified train/val/test assignment: no group ever lands on two sides.

>>> import pandas as pd
>>> clips = pd.DataFrame({"clip_id": [f"c{i}" for i in range(40)],
...                       "label": ["a", "b"] * 20, "group": [f"g{i // 2}" for i in range(40)]})
>>> sides = group_split(clips, val_fraction=0.25, test_fraction=0.25, seed=0)
>>> sorted(sides.value_counts().index)
['test', 'train', 'val']
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold


def _hold_out(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of one StratifiedGroupKFold fold holding out about `fraction` of the rows."""
    n_splits = max(2, round(1 / fraction))
    if len(np.unique(groups)) < n_splits:
        raise ValueError(
            f"{len(np.unique(groups))} groups cannot be split into folds of {fraction:.0%}: "
            "lower the split fractions or bring more groups"
        )
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, held = next(folds.split(np.zeros(len(labels)), labels, groups))
    mask = np.zeros(len(labels), dtype=bool)
    mask[held] = True
    return mask


def group_split(
    clips: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int
) -> pd.Series:
    """Split name per clip (index aligned with `clips`), grouped by `group`, stratified by `label`.

    The test fold is drawn first; val is then drawn from the rest with the fraction rescaled so
    that it is about `val_fraction` of all clips.
    """
    labels = clips["label"].to_numpy()
    groups = clips["group"].to_numpy()
    sides = np.full(len(clips), "train", dtype=object)
    test = _hold_out(labels, groups, test_fraction, seed)
    sides[test] = "test"
    rest = np.flatnonzero(~test)
    val = _hold_out(labels[rest], groups[rest], val_fraction / (1 - test_fraction), seed)
    sides[rest[val]] = "val"
    return pd.Series(sides, index=clips.index, name="split")
