"""`split`: assign every usable clip to train, val or test and prove how much the split leaks.

Classes are chosen here (`data.labels`, `data.exclude_labels`), never by editing raw data. The
leakage report is written before any check can fail, so a refused split can be inspected. Its
verdict is UNKNOWN when every group holds one clip: group overlap and the label-group
association cannot then see related clips on two sides.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from avgate import audit
from avgate.config import DataParams, Params
from avgate.datasets import format_named
from avgate.errors import StageError
from avgate.files import write_json, write_parquet
from avgate.profiles import recorded
from avgate.splitting import MIN_GROUPS, SplitError, assign_splits

REPORT = Path("metrics/leakage.json")
CONTENT_HASHES = ("sha256", "audio_sha256")


def verdict(groups_shared: bool, content_shared: bool, info: dict, blind_fix: str = "") -> str:
    """One line saying whether the split leaks, whether that was asked for, or, with
    `blind_fix` (every group holds one clip), that nobody can tell and how to fix that."""
    if info.get("groups_shared_on_purpose"):
        return "groups shared on purpose (intra_group, for confound studies): not held-out scores"
    if groups_shared or content_shared:
        return "LEAKY: groups or identical content on two sides (allowed by split.allow_leakage)"
    if blind_fix:
        return (
            "UNKNOWN: every group holds one clip, so zero group overlap and Cramér's V say "
            "nothing about clips of one speaker or recording on two sides; fix: " + blind_fix
        )
    return "no leakage: zero group overlap and zero identical content across splits"


def group_check(table: pd.DataFrame, data_format: str) -> dict:
    """How many groups hold one clip; `blind` when all do (the overlap checks see nothing)."""
    sizes = table.groupby("group").size()
    blind = bool((sizes == 1).all())
    return {
        "n_groups": len(sizes),
        "singleton_groups": int((sizes == 1).sum()),
        "blind": blind,
        "fix": format_named(data_format).group_fix if blind else "",
    }


def select_labels(clips: pd.DataFrame, data: DataParams) -> tuple[pd.DataFrame, dict]:
    """The clips of the classes `data.labels` keeps (all when empty) and `data.exclude_labels`
    does not name, and the labels left out with their clip counts."""
    present = set(clips["label"])
    for key, named in (("data.labels", data.labels), ("data.exclude_labels", data.exclude_labels)):
        unknown = sorted(set(named) - present)
        if unknown:
            raise StageError(
                f"params.yaml: {key} names {unknown}, which no usable clip carries; the labels "
                f"are {sorted(present)}"
            )
    kept = clips["label"].isin(data.labels or present) & ~clips["label"].isin(data.exclude_labels)
    if not kept.any():
        raise StageError("params.yaml: data.labels and data.exclude_labels leave no clip")
    left_out = clips.loc[~kept, "label"].value_counts().sort_index()
    report = {"labels": data.labels, "exclude_labels": data.exclude_labels}
    left = {str(label): int(n) for label, n in left_out.items()}
    return clips[kept].reset_index(drop=True), {**report, "left_out": left}


def leakage_report(
    table: pd.DataFrame, params: Params, info: dict, selection: dict | None = None
) -> dict:
    """How the split was made, its sizes, the overlaps, the label-group association and what
    it can see (`group_check`)."""
    groups = audit.group_overlap(table)
    content = {
        column: {pair: len(ids) for pair, ids in audit.duplicate_overlap(table, column).items()}
        for column in CONTENT_HASHES
        if column in table and table[column].notna().any()
    }
    groups_shared = any(groups.values())
    content_shared = any(n for overlaps in content.values() for n in overlaps.values())
    blindness = group_check(table, params.data.format)
    return {
        "verdict": verdict(groups_shared, content_shared, info, blindness["fix"]),
        "split": info,
        "label_selection": selection or {"labels": [], "exclude_labels": [], "left_out": {}},
        "group_check": blindness,
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


def console_lines(summary: dict) -> list[str]:
    """What `avgate split` prints: sizes, overlap and verdict, then every label left out or
    kept in train only, with its clips."""
    lines = [
        f"split: {summary['n_clips']} clips, group overlap {summary['group_overlap']}; "
        f"{summary['verdict']}"
    ]
    rare = summary["split"].get("rare_labels", {})
    if rare.get("labels"):
        done = {"drop": "left out", "train_only": "kept in train only"}[rare["policy"]]
        listed = ", ".join(
            f"{label!r} ({n['clips']} clips from {n['groups']} group{'s' * (n['groups'] != 1)})"
            for label, n in rare["labels"].items()
        )
        rule = f"labels from fewer than {MIN_GROUPS} groups {done} (split.rare_labels)"
        lines.append(f"split: {rule}: {listed}")
    left_out = summary["label_selection"]["left_out"]
    if left_out:
        listed = ", ".join(f"{label!r} ({n} clips)" for label, n in left_out.items())
        lines.append(f"split: labels left out by data.labels / data.exclude_labels: {listed}")
    return lines


def run(params: Params) -> dict:
    """Split the usable clips of the manifest; write splits.parquet and the leakage report."""
    with recorded("split"):
        return _split(params)


def _split(params: Params) -> dict:
    manifest = pd.read_parquet(params.data.interim_dir / "manifest.parquet")
    clips, selection = select_labels(manifest[manifest["status"] == "ok"], params.data)
    p = params.split
    try:
        result = assign_splits(
            clips, p.method, p.val_fraction, p.test_fraction, p.seed,
            allow_leakage=p.allow_leakage, test_fold=p.test_fold, rare_labels=p.rare_labels,
        )  # fmt: skip
    except SplitError as error:
        raise StageError(f"split: {error}") from None
    clips = clips.loc[result.split.index].assign(split=result.split)
    summary = leakage_report(clips, params, result.info, selection)
    write_json(REPORT, summary)
    check(summary)
    write_parquet(clips[["clip_id", "split"]], params.data.splits_dir / "splits.parquet")
    return summary
