"""Train/val/test assignment of clips by one of four methods (`METHODS`).

- ``group``: grouped and label-stratified by construction; no group ever lands on two sides,
  every label on each (labels from fewer than `MIN_GROUPS` groups follow a `RARE_POLICIES`).
- ``predefined``: the dataset's own ``split`` column, or its ``fold`` column with one test fold.
- ``intra_group``: every group on every side, cut in time order; for confound studies only.
- ``random``: label-stratified, groups ignored; only with ``allow_leakage=True``, to measure it.

>>> import pandas as pd
>>> clips = pd.DataFrame({"clip_id": [f"c{i}" for i in range(40)],
...                       "label": ["a", "b"] * 20, "group": [f"g{i // 2}" for i in range(40)]})
>>> result = assign_splits(clips, "group", val_fraction=0.25, test_fraction=0.25, seed=0)
>>> result.split.value_counts().sort_index().to_dict()
{'test': 10, 'train': 20, 'val': 10}
>>> result.info
{'method': 'group', 'seed': 0, 'groups_shared_on_purpose': False, \
'rare_labels': {'policy': 'fail', 'labels': {}}}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from avgate.audit import SPLITS

METHODS = ("group", "predefined", "intra_group", "random")
RARE_POLICIES = ("fail", "drop", "train_only")
REQUIRED = ("clip_id", "label", "group")
MIN_GROUPS = len(SPLITS)  # a label needs a group on every side
TRAIN = SPLITS.index("train")


class SplitError(ValueError):
    """A split that cannot be made as asked; the message says what is wrong and the fix."""


@dataclass(frozen=True)
class SplitResult:
    """Split name per clip and how it was made.

    `split` is index aligned with the clips kept: all of them, unless rare labels were dropped.
    `info` is JSON-serialisable: ``method``, ``seed`` (None when no seed plays a part),
    ``groups_shared_on_purpose`` (True for ``intra_group`` only; a ``random`` split shares
    groups too, as a leak let in by ``allow_leakage``) and method-specific facts (``group``:
    ``rare_labels``, the policy and the labels it applied to with their clips and groups).
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
    rare_labels: str = "fail",
) -> SplitResult:
    """Assign every clip to train, val or test with `method`; each split gets at least one clip.

    `clips` has columns ``clip_id``, ``label``, ``group`` and, depending on the method, ``split``,
    ``fold`` or ``start_s``. `rare_labels` (one of `RARE_POLICIES`, method ``group`` only) says
    what happens to labels from fewer than `MIN_GROUPS` groups. Raises `SplitError` when the
    split cannot be made as asked.
    """
    if method not in METHODS:
        raise SplitError(f"unknown split.method {method!r}: choose one of {list(METHODS)}")
    if rare_labels not in RARE_POLICIES:
        raise SplitError(
            f"unknown split.rare_labels {rare_labels!r}: choose one of {list(RARE_POLICIES)}"
        )
    _check_columns(clips)
    if method == "predefined":
        result = _predefined(clips, test_fold)
    else:
        _check_fractions(val_fraction, test_fraction)
        if method == "group":
            result = _group(clips, (val_fraction, test_fraction), seed, rare_labels)
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
    clips: pd.DataFrame, fractions: tuple[float, float], seed: int, policy: str
) -> SplitResult:
    """Grouped split built so that every label lands on every side (see `group_sides`); labels
    from fewer than `MIN_GROUPS` groups are refused, dropped or kept in train, per `policy`."""
    n_groups = clips.groupby("label")["group"].nunique()
    rare = n_groups[n_groups < MIN_GROUPS]
    if len(rare) and policy == "fail":
        reasons = "; ".join(
            f"label {label!r} has clips from {_groups(n)}" for label, n in rare.items()
        )
        raise SplitError(
            f"{reasons}; a grouped 3-way split needs >= {MIN_GROUPS}: bring clips of these "
            "labels from more groups, or set split.rare_labels to drop (leave them out) or "
            "train_only (train on them, score nothing on them)"
        )
    n_clips = clips["label"].value_counts()
    report = {
        str(label): {"clips": int(n_clips[label]), "groups": int(n)} for label, n in rare.items()
    }
    if policy == "drop":
        clips = clips[~clips["label"].isin(rare.index)]
        if clips.empty:
            raise SplitError(
                f"split.rare_labels drop leaves no clip: every label ({sorted(report)}) has "
                f"clips from fewer than {MIN_GROUPS} groups; bring clips from more groups"
            )
    train_only = list(rare.index) if policy == "train_only" else []
    split = group_sides(clips, fractions, seed, train_only)
    info = {"method": "group", "seed": seed, "groups_shared_on_purpose": False}
    return SplitResult(split, {**info, "rare_labels": {"policy": policy, "labels": report}})


def group_sides(
    clips: pd.DataFrame,
    fractions: tuple[float, float],
    seed: int,
    train_only: Sequence[str] = (),
) -> pd.Series:
    """Split name per clip, whole groups to one side, every label on every side by construction.

    Groups of the `train_only` labels go to train. Then label by label, fewest groups first,
    each label's unplaced groups (shuffled with `seed`) fill the sides it is missing, the
    largest of them going where the label needs most clips; last, the other groups, largest
    first, each go to the side where they bring the clip counts of their labels closest to
    the fractions (val, test). A group holding several labels is placed once, by the first
    label that needs it. `SplitError` names the labels left off a side (possible only when
    groups hold several labels).
    """
    layout = _Layout(clips, fractions, seed, train_only)
    for group in layout.groups_of_train_only():
        layout.place(group, TRAIN)
    uncovered = {}
    for label in layout.labels_by_group_count():
        if label not in layout.train_only:
            missing = layout.cover(label)
            if missing:
                uncovered[layout.labels[label]] = missing
    if uncovered:
        gaps = "; ".join(f"label {label!r} from {sides}" for label, sides in uncovered.items())
        raise SplitError(
            f"no grouped split puts every label on every side: groups holding several labels "
            f"leave out {gaps}. Bring clips of these labels from more groups, or leave them "
            "out with data.exclude_labels"
        )
    layout.fill()
    return pd.Series(layout.sides_of_clips(), index=clips.index, name="split")


class _Layout:
    """Groups being placed on sides, and the clip counts per label and side they give."""

    def __init__(
        self,
        clips: pd.DataFrame,
        fractions: tuple[float, float],
        seed: int,
        train_only: Sequence[str],
    ) -> None:
        self.group_codes, groups = pd.factorize(clips["group"], sort=True)
        label_codes, self.labels = pd.factorize(clips["label"], sort=True)
        pairs = pd.DataFrame({"g": self.group_codes, "l": label_codes}).value_counts().sort_index()
        group, label = (pairs.index.get_level_values(k).to_numpy() for k in (0, 1))
        # members[g]: the label codes in group g, and its clips of each
        labels_in, clips_in = (_by_key(group, v, len(groups)) for v in (label, pairs.to_numpy()))
        self.members = list(zip(labels_in, clips_in, strict=True))
        self.groups_by_label = _by_key(label, group, len(self.labels))
        self.train_only = set(self.labels.get_indexer(list(train_only)).tolist())
        val, test = fractions
        share = np.tile([1 - val - test, val, test], (len(self.labels), 1))
        share[sorted(self.train_only)] = [1.0, 0.0, 0.0]
        self.target = share * np.bincount(label_codes, minlength=len(self.labels))[:, None]
        self.count = np.zeros_like(self.target)
        self.side = np.full(len(groups), -1)
        self.rank = np.random.default_rng(seed).permutation(len(groups))

    def groups_of_train_only(self) -> list[int]:
        return sorted({int(g) for label in self.train_only for g in self.groups_by_label[label]})

    def place(self, group: int, side: int) -> None:
        labels, n = self.members[group]
        self.side[group] = side
        self.count[labels, side] += n

    def cost(self, group: int, side: int) -> float:
        """Change in the squared gap between clip counts and targets if `group` joins `side`."""
        labels, n = self.members[group]
        return float(np.sum(n * (2 * (self.count[labels, side] - self.target[labels, side]) + n)))

    def best_side(self, group: int, sides: list[int]) -> int:
        return min(sides, key=lambda side: self.cost(group, side))

    def labels_by_group_count(self) -> list[int]:
        """Label codes, fewest groups first (ties in label order)."""
        return sorted(range(len(self.labels)), key=lambda code: len(self.groups_by_label[code]))

    def cover(self, label: int) -> list[str]:
        """Place groups of `label` on the sides it is missing; return the sides still missing."""
        groups = self.groups_by_label[label]
        missing = [s for s in range(len(SPLITS)) if not (self.side[groups] == s).any()]
        free = groups[self.side[groups] < 0]
        chosen = free[np.argsort(self.rank[free])][: len(missing)]
        for group in sorted(chosen, key=lambda g: -self._clips_of(g, label)):
            side = self.best_side(group, missing)
            self.place(group, side)
            missing.remove(side)
        return [SPLITS[s] for s in missing]

    def fill(self) -> None:
        """Place every group still unplaced, largest first, where it costs least."""
        free = np.flatnonzero(self.side < 0)
        sizes = np.array([self.members[g][1].sum() for g in free], dtype=int)
        for group in free[np.lexsort((self.rank[free], -sizes))]:
            self.place(group, self.best_side(group, list(range(len(SPLITS)))))

    def sides_of_clips(self) -> np.ndarray:
        return np.asarray(SPLITS, dtype=object)[self.side[self.group_codes]]

    def _clips_of(self, group: int, label: int) -> int:
        labels, n = self.members[group]
        return int(n[labels == label].sum())


def _by_key(keys: np.ndarray, values: np.ndarray, n_keys: int) -> list[np.ndarray]:
    """`values` gathered by `keys` (codes 0 .. n_keys - 1), in their order within each key."""
    order = np.argsort(keys, kind="stable")
    return np.split(values[order], np.cumsum(np.bincount(keys, minlength=n_keys))[:-1])


def _groups(n: int) -> str:
    return f"{n} group" if n == 1 else f"{n} groups"


def _predefined(clips: pd.DataFrame, test_fold: int | None) -> SplitResult:
    """The `split` column as it is, else the `fold` column with `test_fold` held out."""
    info = {"method": "predefined", "seed": None, "groups_shared_on_purpose": False}
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
    info = {"method": "intra_group", "seed": None, "order": order}
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
    info = {"method": "random", "seed": seed, "groups_shared_on_purpose": False}
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
