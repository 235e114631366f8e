"""Train/val/test assignment of clips by one of four methods (`METHODS`).

- ``group``: grouped and label-stratified; no group ever lands on two sides, every label on each.
- ``predefined``: the dataset's own ``split`` column, or its ``fold`` column with one test fold.
- ``intra_group``: every group on every side, cut in time order; for confound studies only.
- ``random``: label-stratified, groups ignored; only with ``allow_leakage=True``, to measure it.

>>> import pandas as pd
>>> clips = pd.DataFrame({"clip_id": [f"c{i}" for i in range(40)],
...                       "label": ["a", "b"] * 20, "group": [f"g{i // 2}" for i in range(40)]})
>>> result = assign_splits(clips, "group", val_fraction=0.25, test_fraction=0.25, seed=0)
>>> sorted(result.split.value_counts().index)
['test', 'train', 'val']
>>> result.info
{'method': 'group', 'seed': 0, 'attempts': 1, 'groups_shared_on_purpose': False}
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from avgate.audit import SPLITS, label_coverage

METHODS = ("group", "predefined", "intra_group", "random")
REQUIRED = ("clip_id", "label", "group")


class SplitError(ValueError):
    """A split that cannot be made as asked; the message says what is wrong and the fix."""


@dataclass(frozen=True)
class SplitResult:
    """Split name per clip (index aligned with the clips) and how it was made.

    `info` is JSON-serialisable: ``method``, ``seed`` (the one used; None when no seed plays a
    part), ``attempts``, ``groups_shared_on_purpose`` (True for ``intra_group`` only; a
    ``random`` split shares groups too, as a leak let in by ``allow_leakage``) and
    method-specific facts.
    """

    split: pd.Series
    info: dict


def assign_splits(
    clips: pd.DataFrame,
    method: str,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    allow_leakage: bool = False,
    test_fold: int | None = None,
    max_attempts: int = 20,
) -> SplitResult:
    """Assign every clip to train, val or test with `method`; each split gets at least one clip.

    `clips` has columns ``clip_id``, ``label``, ``group`` and, depending on the method, ``split``,
    ``fold`` or ``start_s``. Raises `SplitError` when the split cannot be made as asked.
    """
    if method not in METHODS:
        raise SplitError(f"unknown split.method {method!r}: choose one of {list(METHODS)}")
    _check_columns(clips)
    if method == "predefined":
        result = _predefined(clips, test_fold)
    else:
        _check_fractions(val_fraction, test_fraction)
        if method == "group":
            result = _group(clips, val_fraction, test_fraction, seed, max_attempts)
        elif method == "intra_group":
            result = _intra_group(clips, val_fraction, test_fraction)
        else:
            result = _random(clips, val_fraction, test_fraction, seed, allow_leakage)
    empty = [s for s in SPLITS if not (result.split == s).any()]
    if empty:
        raise SplitError(
            f"split.method {method} leaves no clip in {empty}: "
            "bring more clips or groups, or change the split settings"
        )
    return result


def group_split(
    clips: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int
) -> pd.Series:
    """Split name per clip (index aligned with `clips`), grouped by `group`, stratified by `label`.

    The test fold is drawn first; val is then drawn from the rest with the fraction rescaled so
    that it is about `val_fraction` of all clips. One draw: labels may miss a split (see
    `assign_splits`, which retries until every split holds every label).
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


def _hold_out(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of one StratifiedGroupKFold fold holding out about `fraction` of the rows."""
    n_splits = max(2, round(1 / fraction))
    n_groups = len(pd.unique(groups))
    if n_groups < n_splits:
        raise SplitError(
            f"{n_groups} groups cannot be split into folds of {fraction:.0%}: "
            "lower the split fractions or bring more groups"
        )
    if pd.Series(labels).value_counts().max() < n_splits:
        raise SplitError(
            f"every label has fewer than {n_splits} clips, too few to stratify folds of "
            f"{fraction:.0%}: bring more clips or raise the split fractions"
        )
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # Rare labels are expected here; label coverage is checked by the caller.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        _, held = next(folds.split(np.zeros(len(labels)), labels, groups))
    mask = np.zeros(len(labels), dtype=bool)
    mask[held] = True
    return mask


def _check_columns(clips: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED if c not in clips]
    if missing:
        raise SplitError(f"clips lack the columns {missing}; every split needs {list(REQUIRED)}")
    empty = clips[list(REQUIRED)].isna().sum()
    if empty.any():
        raise SplitError(
            f"empty values in {empty[empty > 0].to_dict()}: every clip needs a clip_id, "
            "a label and a group; fix or drop those rows"
        )


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    if not (val_fraction > 0 and test_fraction > 0 and val_fraction + test_fraction < 1):
        raise SplitError(
            f"split fractions val={val_fraction}, test={test_fraction}: "
            "each must be above 0 and together below 1"
        )


def _group(
    clips: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int, max_attempts: int
) -> SplitResult:
    """Grouped split, retried with seed, seed + 1, ... until every split holds every label."""
    if max_attempts < 1:
        raise SplitError(f"max_attempts is {max_attempts}; it must be at least 1")
    n_groups = clips.groupby("label")["group"].nunique()
    few = n_groups[n_groups < 3]
    if len(few):
        reasons = "; ".join(
            f"label {label!r} has clips from {_groups(n)}" for label, n in few.items()
        )
        raise SplitError(
            f"{reasons}; a grouped 3-way split needs >= 3: bring clips of "
            "these labels from more groups, or drop them"
        )
    tried = []
    for attempt in range(max_attempts):
        split = group_split(clips, val_fraction, test_fraction, seed + attempt)
        missing = label_coverage(
            pd.DataFrame({"label": clips["label"].to_numpy(), "split": split.to_numpy()})
        )
        if not any(missing.values()):
            info = {"method": "group", "seed": seed + attempt, "attempts": attempt + 1}
            return SplitResult(split, {**info, "groups_shared_on_purpose": False})
        tried.append((_count(missing), seed + attempt, missing))
    _, closest, missing = min(tried, key=lambda t: t[:2])
    gaps = "; ".join(
        f"label {label!r} (clips from {_groups(n_groups[label])}) from {side}"
        for side, labels in missing.items()
        for label in labels
    )
    raise SplitError(
        f"none of {max_attempts} grouped splits (seeds {seed}..{seed + max_attempts - 1}) put "
        f"every label in train, val and test; the closest, seed {closest}, left out {gaps}. "
        "Bring clips of these labels from more groups, lower the split fractions "
        "or raise max_attempts"
    )


def _count(missing: dict[str, list]) -> int:
    return sum(len(labels) for labels in missing.values())


def _groups(n: int) -> str:
    return f"{n} group" if n == 1 else f"{n} groups"


def _predefined(clips: pd.DataFrame, test_fold: int | None) -> SplitResult:
    """The `split` column as it is, else the `fold` column with `test_fold` held out."""
    info = {"method": "predefined", "seed": None, "attempts": 1, "groups_shared_on_purpose": False}
    if "split" in clips:
        sides = clips["split"]
        unknown = sorted({str(s) for s in sides.dropna()} - set(SPLITS))
        if unknown or sides.isna().any():
            raise SplitError(
                f"column 'split' must hold one of {list(SPLITS)} in every row; it holds "
                f"{unknown} and {int(sides.isna().sum())} empty rows: fix the dataset's splits "
                "or use split.method group"
            )
        split = pd.Series(sides.to_numpy(), index=clips.index, name="split")
        return SplitResult(split, {**info, "source": "split"})
    if "fold" not in clips:
        raise SplitError(
            "split.method predefined needs a 'split' column (train/val/test per clip) or a "
            "'fold' column with split.test_fold; the clips have neither"
        )
    if clips["fold"].isna().any():
        raise SplitError(
            f"column 'fold' has {int(clips['fold'].isna().sum())} empty rows: every clip needs a "
            "fold for split.method predefined"
        )
    fold = clips["fold"].astype(int).to_numpy()
    folds = sorted(int(f) for f in np.unique(fold))
    if test_fold not in folds:
        raise SplitError(f"split.test_fold {test_fold!r} is not one of the folds {folds}")
    if len(folds) < 3:
        raise SplitError(
            f"the clips have {len(folds)} folds {folds}; predefined folds need >= 3 "
            "(test, val and train): use split.method group"
        )
    val_fold = folds[(folds.index(test_fold) + 1) % len(folds)]
    sides = np.where(fold == test_fold, "test", np.where(fold == val_fold, "val", "train"))
    split = pd.Series(sides, index=clips.index, name="split")
    return SplitResult(
        split, {**info, "source": "fold", "test_fold": int(test_fold), "val_fold": val_fold}
    )


def _intra_group(clips: pd.DataFrame, val_fraction: float, test_fraction: float) -> SplitResult:
    """Cut each group in time order: its first clips to train, the next to val, the last to test.

    A group of n clips gives at least one clip to train, to val (n >= 2) and to test (n >= 3).
    """
    order = ["start_s", "clip_id"] if "start_s" in clips else ["clip_id"]
    ranked = clips.reset_index(drop=True).sort_values(order, kind="stable")
    by_group = ranked.groupby("group", sort=False)
    position = by_group.cumcount().to_numpy()
    n = by_group["clip_id"].transform("size").to_numpy()
    train_end = np.clip(
        np.round(n * (1 - val_fraction - test_fraction)), 1, n - (n >= 2) - (n >= 3)
    )
    # For n == 1 the bounds cross and val_end is 1: the one clip stays in train.
    val_end = np.clip(np.round(n * (1 - test_fraction)), train_end + 1, n - (n >= 3))
    sides = np.empty(len(clips), dtype=object)
    sides[ranked.index] = np.where(
        position < train_end, "train", np.where(position < val_end, "val", "test")
    )
    split = pd.Series(sides, index=clips.index, name="split")
    info = {"method": "intra_group", "seed": None, "attempts": 1, "order": order}
    return SplitResult(split, {**info, "groups_shared_on_purpose": True})


def _random(
    clips: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int, allow_leakage: bool
) -> SplitResult:
    """Label-stratified random split ignoring groups (stratified only where every label can be)."""
    if not allow_leakage:
        raise SplitError(
            "split.method random puts a group on both sides; set split.allow_leakage: true "
            "to measure how much a leaky split inflates scores"
        )
    labels = clips["label"].to_numpy()
    rest, test, test_stratified = _random_hold_out(
        np.arange(len(clips)), labels, test_fraction, seed
    )
    train, val, val_stratified = _random_hold_out(
        rest, labels[rest], val_fraction / (1 - test_fraction), seed
    )
    sides = np.full(len(clips), "train", dtype=object)
    sides[test] = "test"
    sides[val] = "val"
    split = pd.Series(sides, index=clips.index, name="split")
    info = {"method": "random", "seed": seed, "attempts": 1, "groups_shared_on_purpose": False}
    stratified = {"test": test_stratified, "val": val_stratified}
    return SplitResult(split, {**info, "stratified": stratified})


def _random_hold_out(
    rows: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(kept rows, held-out rows, stratified?) holding out `fraction` of `rows` at random."""
    counts = pd.Series(labels).value_counts()
    n_held = math.ceil(fraction * len(rows))
    stratify = bool(
        len(counts) > 0 and counts.min() >= 2 and len(counts) <= min(n_held, len(rows) - n_held)
    )
    try:
        kept, held = train_test_split(
            rows, test_size=fraction, random_state=seed, stratify=labels if stratify else None
        )
    except ValueError as error:
        raise SplitError(
            f"a random split of {len(rows)} clips failed ({error}): bring more clips"
        ) from None
    return kept, held, stratify
