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

import numpy as np
import pandas as pd

HISTOGRAM_BINS = 20


def duplicate_sets(manifest: pd.DataFrame, column: str) -> list[list[str]]:
    """Clip ids sharing one value of `column` (a file or audio hash), sets of two or more."""
    usable = manifest[manifest[column].notna() & (manifest[column] != "")]
    sets = usable.groupby(column)["clip_id"].apply(sorted)
    return sorted(ids for ids in sets if len(ids) > 1)


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


def av_mismatches(manifest: pd.DataFrame, tolerance_s: float) -> list[dict]:
    """Clips whose decoded audio and video durations differ by more than `tolerance_s`."""
    both = manifest[manifest["video_duration_s"].notna()]
    gap = (both["duration_s"] - both["video_duration_s"]).abs()
    return [
        {"clip_id": row.clip_id, "audio_s": row.duration_s, "video_s": row.video_duration_s}
        for row in both[gap > tolerance_s].itertuples()
    ]


def duration_histogram(durations: pd.Series) -> pd.DataFrame:
    """Histogram of durations for a bar plot: bin (its lower edge, text) and clips."""
    array = durations.dropna().astype(float).to_numpy()
    if not len(array):
        return pd.DataFrame({"duration_s": [], "clips": []})
    counts, edges = np.histogram(array, bins=HISTOGRAM_BINS)
    return pd.DataFrame({"duration_s": [f"{e:.2f}" for e in edges[:-1]], "clips": counts})


def report(
    manifest: pd.DataFrame,
    min_ok_fraction: float,
    imbalance_warning_ratio: float,
    tolerance_s: float,
    adapter_warnings: list[str],
) -> dict:
    """The ingest report: load success, distributions, balance, duplicates, warnings."""
    ok = manifest[manifest["status"] == "ok"]
    failed = manifest[manifest["status"] != "ok"]
    balance = class_balance(ok, imbalance_warning_ratio)
    exact = duplicate_sets(manifest, "sha256")
    exact_ids = {frozenset(ids) for ids in exact}
    same_sound = [
        ids for ids in duplicate_sets(ok, "audio_sha256") if frozenset(ids) not in exact_ids
    ]
    mismatched = av_mismatches(ok, tolerance_s)
    warnings = list(adapter_warnings)
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
        "n_groups": int(ok["group"].nunique()),
        "label_counts": balance["counts"],
        "class_balance": balance,
        "duration_s": distribution(ok["duration_s"]),
        "sample_rate": counts_of(ok["sample_rate"]),
        "channels": counts_of(ok["channels"]),
        "has_video": counts_of(ok["has_video"]),
        "duplicates": {"exact": exact, "same_audio": same_sound},
        "av_mismatch": mismatched,
        "warnings": warnings,
        "failures": [
            {"clip_id": row.clip_id, "path": row.path, "reason": row.status}
            for row in failed.itertuples()
        ],
    }
