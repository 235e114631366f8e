"""`split`: assign every usable clip to train, val or test and prove the split does not leak.

The leakage report is written before any check can fail, so a refused split can be inspected.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from avgate import audit
from avgate.config import Params
from avgate.files import write_json, write_parquet
from avgate.splitting import group_split
from avgate.stages import StageError

REPORT = Path("metrics/leakage.json")


def leakage_report(table: pd.DataFrame, params: Params) -> dict:
    """How the split was made, its sizes, and the overlaps that must be empty."""
    groups = audit.group_overlap(table)
    duplicates = audit.duplicate_overlap(table)
    return {
        "method": params.split.method,
        "seed": params.split.seed,
        "group_column": "group",
        "n_clips": {s: int((table["split"] == s).sum()) for s in audit.SPLITS},
        "n_groups": {
            s: int(table.loc[table["split"] == s, "group"].nunique()) for s in audit.SPLITS
        },
        "label_counts": {
            s: table.loc[table["split"] == s, "label"].value_counts().sort_index().to_dict()
            for s in audit.SPLITS
        },
        "labels_missing": audit.label_coverage(table),
        "group_overlap": {pair: len(ids) for pair, ids in groups.items()},
        "groups_on_two_sides": sorted({g for ids in groups.values() for g in ids}),
        "duplicate_overlap": {pair: len(ids) for pair, ids in duplicates.items()},
    }


def check(summary: dict) -> None:
    """Refuse a split with a group or identical content on two sides, or a label absent in train."""
    if summary["groups_on_two_sides"]:
        raise StageError(
            f"groups on two sides of the split: {summary['groups_on_two_sides'][:10]} "
            f"(see {REPORT}); every clip of a group must land in one split"
        )
    if any(summary["duplicate_overlap"].values()):
        raise StageError(
            f"identical files on two sides of the split: {summary['duplicate_overlap']} "
            f"(see {REPORT}); remove the duplicates from the dataset"
        )
    if summary["labels_missing"]["train"]:
        raise StageError(
            f"labels {summary['labels_missing']['train']} have no training clip; "
            "bring more groups of those labels or change split.seed"
        )


def run(params: Params) -> dict:
    """Split the usable clips of the manifest; write splits.parquet and the leakage report."""
    manifest = pd.read_parquet(params.data.interim_dir / "manifest.parquet")
    clips = manifest[manifest["status"] == "ok"].reset_index(drop=True)
    try:
        clips["split"] = group_split(
            clips, params.split.val_fraction, params.split.test_fraction, params.split.seed
        )
    except ValueError as error:
        raise StageError(f"split: {error}") from None
    summary = leakage_report(clips, params)
    write_json(REPORT, summary)
    check(summary)
    write_parquet(clips[["clip_id", "split"]], params.data.splits_dir / "splits.parquet")
    return summary
