"""Preflight audit of an ingested manifest: what loaded, what it looks like, what repeats.

Plain DataFrame in, JSON-ready dict out; the ingest stage writes it and decides what fails.

>>> import pandas as pd
>>> manifest = pd.DataFrame({"clip_id": ["a", "b", "c"], "label": ["x", "x", "y"],
...     "sha256": ["h1", "h1", "h2"], "status": ["ok", "ok", "ok"]})
>>> duplicate_sets(manifest, "sha256")
[['a', 'b']]
>>> class_balance(manifest, warning_ratio=5.0)["imbalance_ratio"]
2.0
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd

from avgate.datasets.checks import Rejected

HISTOGRAM_BINS = 20


def duplicate_sets(manifest: pd.DataFrame, column: str) -> list[list[str]]:
    """Clip ids sharing one value of `column` (a file or audio hash), sets of two or more."""
    usable = manifest[manifest[column].notna() & (manifest[column] != "")]
    sets = usable.groupby(column)["clip_id"].apply(sorted)
    return sorted(ids for ids in sets if len(ids) > 1)


def label_conflicts(manifest: pd.DataFrame, sets: list[list[str]], kind: str) -> list[dict]:
    """Sets of identical clips (`duplicate_sets` of `kind`: exact or same_audio) whose files
    carry more than one label, each with its files and their labels."""
    rows = manifest.set_index("clip_id")
    conflicts = []
    for ids in sets:
        labels = rows.loc[ids, "label"]
        if labels.nunique() > 1:
            paths = rows.loc[ids, "path"].tolist()
            conflicts.append({"kind": kind, "paths": paths, "labels": labels.tolist()})
    return conflicts


def conflict_warning(conflict: dict) -> str:
    """One line naming a label conflict's files and labels."""
    what = {"exact": "byte-identical files", "same_audio": "files with identical audio"}
    files = zip(conflict["paths"], conflict["labels"], strict=True)
    return (
        f"label conflict: {what[conflict['kind']]} carry different labels: "
        + ", ".join(f"{path} ({label!r})" for path, label in files)
        + "; keep one file with its right label (duplicates.label_conflicts)"
    )


def class_balance(manifest: pd.DataFrame, warning_ratio: float) -> dict:
    """Clips per label, the largest-to-smallest ratio and whether it passes `warning_ratio`."""
    counts = Counter(manifest["label"])
    ratio = max(counts.values()) / min(counts.values()) if counts else None
    return {
        "counts": dict(sorted(counts.items())),
        "imbalance_ratio": ratio,
        "warning_ratio": warning_ratio,
        "imbalanced": bool(ratio is not None and ratio > warning_ratio),
    }


def distribution(values: pd.Series) -> dict:
    """Summary of a numeric column: min, 5th percentile, median, 95th percentile, max."""
    array = values.dropna().astype(float).to_numpy()
    if not len(array):
        return {"n": 0}
    low, p5, median, p95, high = np.percentile(array, [0, 5, 50, 95, 100])
    return {"n": len(array), "min": low, "p5": p5, "median": median, "p95": p95, "max": high}


def counts_of(values: pd.Series) -> dict[str, int]:
    """How often each value occurs, keyed by its text."""
    return {str(k): int(v) for k, v in values.value_counts(dropna=False).sort_index().items()}


def labels_lost(manifest: pd.DataFrame) -> dict[str, int]:
    """Labels none of whose files is usable, with how many files each had."""
    usable = set(manifest.loc[manifest["status"] == "ok", "label"])
    lost = manifest[~manifest["label"].isin(usable)]
    return {str(k): int(v) for k, v in lost["label"].value_counts().sort_index().items()}


def av_mismatches(manifest: pd.DataFrame, tolerance_s: float) -> list[dict]:
    """Clips whose decoded audio and video durations differ by more than `tolerance_s`."""
    both = manifest[manifest["video_duration_s"].notna()]
    gap = (both["duration_s"] - both["video_duration_s"]).abs()
    return [
        {"clip_id": row.clip_id, "audio_s": row.duration_s, "video_s": row.video_duration_s}
        for row in both[gap > tolerance_s].itertuples()
    ]


def duration_histogram(durations: pd.Series) -> pd.DataFrame:
    """Histogram of durations in seconds for the `histogram` plot template: each bin's numeric
    start and end (so the axis is a number line, not text sorted as text) and its clips."""
    array = durations.dropna().astype(float).to_numpy()
    if not len(array):
        return pd.DataFrame({"bin_start": [], "bin_end": [], "clips": []})
    counts, edges = np.histogram(array, bins=HISTOGRAM_BINS)
    edges = edges.round(6)  # microseconds: no float noise such as 10.048000000000002 in the CSV
    return pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], "clips": counts})


def report(
    manifest: pd.DataFrame,
    min_ok_fraction: float,
    imbalance_warning_ratio: float,
    tolerance_s: float,
    adapter_warnings: list[str],
    rejected: Sequence[Rejected] = (),
) -> dict:
    """The ingest report: load success, distributions, balance, duplicates, warnings.

    `rejected` are source lines the adapter left out: each is a warning, and
    ``records_kept_fraction`` is the share of records kept (manifest rows against rows plus
    lines left out).
    """
    ok = manifest[manifest["status"] == "ok"]
    failed = manifest[manifest["status"] != "ok"]
    balance = class_balance(ok, imbalance_warning_ratio)
    lost = labels_lost(manifest)
    exact = duplicate_sets(manifest, "sha256")
    exact_ids = {frozenset(ids) for ids in exact}
    same_sound = [
        ids for ids in duplicate_sets(ok, "audio_sha256") if frozenset(ids) not in exact_ids
    ]
    mismatched = av_mismatches(ok, tolerance_s)
    conflicts = label_conflicts(manifest, exact, "exact")
    conflicts += label_conflicts(ok, same_sound, "same_audio")
    warnings = list(adapter_warnings)
    warnings += [f"{r.file}:{r.line}: {r.reason}; line left out" for r in rejected]
    warnings += [
        f"label {label!r} lost all its {n} file(s) at ingest (none is usable, see failures); "
        "it is absent from label_counts and from every later stage"
        for label, n in lost.items()
    ]
    if balance["imbalanced"]:
        warnings.append(
            f"class imbalance {balance['imbalance_ratio']:.1f}:1 exceeds "
            f"ingest.imbalance_warning_ratio {imbalance_warning_ratio:g}:1"
        )
    if exact:
        warnings.append(f"{len(exact)} set(s) of byte-identical files (duplicates.exact)")
    if same_sound:
        warnings.append(
            f"{len(same_sound)} set(s) of files with identical decoded audio "
            "(duplicates.same_audio)"
        )
    warnings += [conflict_warning(c) for c in conflicts]
    if mismatched:
        warnings.append(
            f"{len(mismatched)} clip(s) whose audio and video lengths differ by more "
            f"than {tolerance_s:g} s (av_mismatch)"
        )
    return {
        "n_files": len(manifest),
        "n_ok": len(ok),
        "n_failed": len(failed),
        "ok_fraction": round(len(ok) / max(len(manifest), 1), 6),
        "min_ok_fraction": min_ok_fraction,
        "rejected_lines": [asdict(r) for r in rejected],
        "records_kept_fraction": round(len(manifest) / max(len(manifest) + len(rejected), 1), 6),
        "n_groups": int(ok["group"].nunique()),
        "label_counts": balance["counts"],
        "labels_lost": lost,
        "class_balance": balance,
        "duration_s": distribution(ok["duration_s"]),
        "sample_rate": counts_of(ok["sample_rate"]),
        "channels": counts_of(ok["channels"]),
        "has_video": counts_of(ok["has_video"]),
        "duplicates": {"exact": exact, "same_audio": same_sound, "label_conflicts": conflicts},
        "av_mismatch": mismatched,
        "warnings": warnings,
        "failures": [
            {"clip_id": row.clip_id, "path": row.path, "reason": row.status}
            for row in failed.itertuples()
        ],
    }
