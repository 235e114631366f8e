"""`split`: assign every usable clip to train, val or test and prove how much the split leaks.

The leakage report is written before any check can fail, so a refused split can be inspected.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from avgate import audit
from avgate.config import Params
from avgate.files import write_json, write_parquet
from avgate.splitting import SplitError, assign_splits
from avgate.stages import StageError
from avgate.stages.profile import recorded

REPORT = Path("metrics/leakage.json")
CONTENT_HASHES = ("sha256", "audio_sha256")


def verdict(groups_shared: bool, content_shared: bool, info: dict) -> str:
    """One line saying whether the split leaks, and whether that was asked for."""
    if info.get("groups_shared_on_purpose"):
        return "groups shared on purpose (intra_group, for confound studies): not held-out scores"
    if groups_shared or content_shared:
        return "LEAKY: groups or identical content on two sides (allowed by split.allow_leakage)"
    return "no leakage: zero group overlap and zero identical content across splits"


def leakage_report(table: pd.DataFrame, params: Params, info: dict) -> dict:
    """How the split was made, its sizes, the overlaps, the label-group association."""
    groups = audit.group_overlap(table)
    content = {
        column: {pair: len(ids) for pair, ids in audit.duplicate_overlap(table, column).items()}
        for column in CONTENT_HASHES
        if column in table and table[column].notna().any()
    }
    groups_shared = any(groups.values())
    content_shared = any(n for overlaps in content.values() for n in overlaps.values())
    return {
        "verdict": verdict(groups_shared, content_shared, info),
        "split": info,
        "allow_leakage": params.split.allow_leakage,
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
        "clips_in_shared_groups": {
            pair: int(table["group"].isin(ids).sum()) for pair, ids in groups.items()
        },
        "groups_on_two_sides": sorted({g for ids in groups.values() for g in ids})[:50],
        "duplicate_overlap": content,
        "label_group_cramers_v": audit.cramers_v(table["label"], table["group"]),
    }


def check(summary: dict) -> None:
    """Refuse a leaky split unless leakage was asked for; refuse labels absent from train."""
    allowed = summary["allow_leakage"] or summary["split"].get("groups_shared_on_purpose")
    if summary["groups_on_two_sides"] and not allowed:
        raise StageError(
            f"groups on two sides of the split: {summary['groups_on_two_sides'][:10]} "
            f"(see {REPORT}); every clip of a group must land in one split"
        )
    shared = {
        column: overlaps
        for column, overlaps in summary["duplicate_overlap"].items()
        if any(overlaps.values())
    }
    if shared and not summary["allow_leakage"]:
        raise StageError(
            f"identical content on two sides of the split: {shared} (see {REPORT}); "
            "remove the duplicates from the dataset or give them one group"
        )
    if summary["labels_missing"]["train"]:
        raise StageError(
            f"labels {summary['labels_missing']['train']} have no training clip; "
            "bring more groups of those labels or change split.seed"
        )


def run(params: Params) -> dict:
    """Split the usable clips of the manifest; write splits.parquet and the leakage report."""
    with recorded("split"):
        return _split(params)


def _split(params: Params) -> dict:
    manifest = pd.read_parquet(params.data.interim_dir / "manifest.parquet")
    clips = manifest[manifest["status"] == "ok"].reset_index(drop=True)
    p = params.split
    try:
        result = assign_splits(
            clips, p.method, p.val_fraction, p.test_fraction, p.seed,
            allow_leakage=p.allow_leakage, test_fold=p.test_fold,
        )  # fmt: skip
    except SplitError as error:
        raise StageError(f"split: {error}") from None
    clips["split"] = result.split
    summary = leakage_report(clips, params, result.info)
    write_json(REPORT, summary)
    check(summary)
    write_parquet(clips[["clip_id", "split"]], params.data.splits_dir / "splits.parquet")
    return summary
