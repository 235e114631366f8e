"""What makes a comparison paired: the same seeds, and the same samples in the same order.

`ids_sha256` hashes the ordered sample ids of a predictions table (`clip_id`, plus `t` for
per-second tasks); two runs are comparable sample by sample only when these hashes and the true
labels agree. `check_paired` raises `UnpairedError` naming what differs; nothing falls back to an
unpaired comparison.

>>> a = pd.DataFrame({"clip_id": ["v1", "v1", "v2"], "t": [0, 1, 0], "label": ["x", "y", "x"]})
>>> ids_sha256(a) == ids_sha256(a.copy()), ids_sha256(a) == ids_sha256(a.iloc[::-1])
(True, False)
>>> check_paired(a, a.iloc[[1, 0, 2]], "seed 0 test")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
avgate.gating.pairing.UnpairedError: unpaired comparison on seed 0 test: the ordered sample ids ...
"""

from __future__ import annotations

import hashlib

import pandas as pd

KEYS = ("clip_id", "t")


class UnpairedError(ValueError):
    """Baseline and candidate do not cover the same seeds or the same samples in the same order."""


def ids_sha256(table: pd.DataFrame) -> str:
    """sha256 of the ordered sample ids: one line `clip_id<TAB>t` (or `clip_id`) per row."""
    keys = [k for k in KEYS if k in table.columns]
    if "clip_id" not in keys:
        raise UnpairedError("a predictions table has no clip_id column")
    lines = table[keys].astype(str).agg("\t".join, axis=1)
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def check_paired(baseline: pd.DataFrame, candidate: pd.DataFrame, where: str) -> str:
    """The shared ids hash of two predictions tables; UnpairedError when ids or labels differ
    (labels are compared where both tables hold them: sealed test tables do not)."""
    base_hash, cand_hash = ids_sha256(baseline), ids_sha256(candidate)
    if base_hash != cand_hash:
        raise UnpairedError(
            f"unpaired comparison on {where}: the ordered sample ids differ (baseline "
            f"{len(baseline)} rows, ids sha256 {base_hash[:12]}; candidate {len(candidate)} rows, "
            f"{cand_hash[:12]}). Both must be evaluated on the same split of the same data: "
            "re-run the candidate on the baseline's data and split params"
        )
    if "label" not in baseline or "label" not in candidate:
        return base_hash
    differs = (baseline["label"].to_numpy() != candidate["label"].to_numpy()).sum()
    if differs:
        raise UnpairedError(
            f"unpaired comparison on {where}: the same samples carry different labels in "
            f"{differs} rows; baseline and candidate were built from different annotations"
        )
    return base_hash


def check_seeds(baseline: list[int], candidate: list[int], needed: list[int], where: str) -> None:
    """UnpairedError when baseline or candidate lacks one of the `needed` seeds.

    >>> check_seeds([0, 1, 2], [0, 1], [0, 1, 2], "quick_test")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    avgate.gating.pairing.UnpairedError: unpaired ... [0, 1, 2] are needed; the candidate lacks [2]
    """
    lacking = [
        f"the {side} lacks {sorted(set(needed) - set(have))}"
        for side, have in (("baseline", baseline), ("candidate", candidate))
        if set(needed) - set(have)
    ]
    if lacking:
        raise UnpairedError(
            f"unpaired comparison at {where}: seeds {sorted(needed)} are needed; "
            + " and ".join(lacking)
        )
