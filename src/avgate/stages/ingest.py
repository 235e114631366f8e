"""`ingest`: probe and decode every media file; write the manifest, the segment table and a report.

Files that fail to decode stay in the manifest with `status` giving the reason; the stage fails only
when the share of usable files drops below `ingest.min_ok_fraction`, after writing its report.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from functools import partial
from pathlib import Path

import pandas as pd

from avgate import media
from avgate.config import Params
from avgate.datasets import ave
from avgate.files import write_json, write_parquet
from avgate.parallel import ordered_map
from avgate.stages import StageError

REPORT = Path("metrics/ingest.json")
MANIFEST_COLUMNS = [
    "clip_id", "path", "sha256", "label", "group", "duration_s", "sample_rate", "channels",
    "has_video", "fps", "width", "height", "status",
]  # fmt: skip


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def probe_record(path: str, tolerance_s: float) -> dict:
    """Hash and fully decode one file; `status` is 'ok' or the reason it cannot be used."""
    row = {"sha256": sha256_of(Path(path)) if Path(path).exists() else "", "status": "ok"}
    try:
        info = media.verify(path, tolerance_s=tolerance_s)
    except media.MediaError as error:
        row["status"] = str(error)
        return row
    row.update(
        duration_s=info.duration_s,
        sample_rate=info.sample_rate,
        channels=info.channels,
        has_video=info.has_video,
        fps=info.fps,
        width=info.width,
        height=info.height,
    )
    return row


def build_manifest(records: pd.DataFrame, tolerance_s: float, workers: int) -> pd.DataFrame:
    """Probe every record's file; one manifest row per record, sorted by clip_id."""
    probe = partial(probe_record, tolerance_s=tolerance_s)
    rows = list(ordered_map(probe, records["path"], workers=workers, desc="ingest"))
    manifest = pd.concat([records.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
    if "start_s" in manifest:
        too_long = (manifest["status"] == "ok") & (
            manifest["end_s"] > manifest["duration_s"] + tolerance_s
        )
        manifest.loc[too_long, "status"] = [
            f"{row.path}: annotation ends at {row.end_s} s, after the media ends "
            f"({row.duration_s:.2f} s)"
            for row in manifest[too_long].itertuples()
        ]
    for column in MANIFEST_COLUMNS:
        if column not in manifest:
            manifest[column] = None
    extra = [c for c in ("start_s", "end_s") if c in manifest]
    return manifest[MANIFEST_COLUMNS + extra].sort_values("clip_id").reset_index(drop=True)


def build_segments(manifest: pd.DataFrame, background: str) -> pd.DataFrame:
    """One row per usable clip and second: the event label inside its span, else background."""
    rows = []
    for clip in manifest[manifest["status"] == "ok"].itertuples():
        for t in range(media.seconds_in(clip.duration_s)):
            inside = clip.start_s <= t < clip.end_s
            rows.append((clip.clip_id, t, clip.label if inside else background))
    return pd.DataFrame(rows, columns=["clip_id", "t", "label"])


def report(manifest: pd.DataFrame, min_ok_fraction: float) -> dict:
    """Counts, the ok share and every failed file with its reason."""
    ok = manifest[manifest["status"] == "ok"]
    failed = manifest[manifest["status"] != "ok"]
    durations = ok["duration_s"].astype(float)
    return {
        "n_files": len(manifest),
        "n_ok": len(ok),
        "n_failed": len(failed),
        "ok_fraction": round(len(ok) / max(len(manifest), 1), 6),
        "min_ok_fraction": min_ok_fraction,
        "n_groups": int(ok["group"].nunique()),
        "label_counts": dict(sorted(Counter(ok["label"]).items())),
        "duration_s": {
            "min": float(durations.min()) if len(ok) else None,
            "mean": float(durations.mean()) if len(ok) else None,
            "max": float(durations.max()) if len(ok) else None,
        },
        "failures": [
            {"clip_id": row.clip_id, "path": row.path, "reason": row.status}
            for row in failed.itertuples()
        ],
    }


def run(params: Params) -> dict:
    """Ingest `data/raw/<data.name>` into `data/interim/<data.name>`; return the report."""
    if params.data.format != "ave":
        raise StageError(f"params.yaml: data.format {params.data.format!r} is not supported yet")
    records = ave.load(params.data.raw_dir)
    manifest = build_manifest(records, params.ingest.duration_tolerance_s, params.ingest.workers)
    summary = report(manifest, params.ingest.min_ok_fraction)
    write_json(REPORT, summary)
    if summary["ok_fraction"] < params.ingest.min_ok_fraction:
        listing = "\n".join(f"  {f['path']}: {f['reason']}" for f in summary["failures"][:20])
        raise StageError(
            f"only {summary['n_ok']} of {summary['n_files']} files are usable "
            f"({summary['ok_fraction']:.1%} < ingest.min_ok_fraction "
            f"{params.ingest.min_ok_fraction:.1%}); fix or remove these files "
            f"(full list in {REPORT}):\n{listing}"
        )
    out = params.data.interim_dir
    write_parquet(manifest, out / "manifest.parquet")
    write_parquet(build_segments(manifest, params.task.background_label), out / "segments.parquet")
    return summary
