"""`ingest`: probe and decode every media file; write the manifest, the segment table, the
preflight report and its plot data.

Files that fail to decode stay in the manifest with `status` giving the reason, and source lines
a format cannot use are reported with their line number; the stage fails only when the share
of usable files, or of kept lines, drops below `ingest.min_ok_fraction`, after writing its
report. Nothing under data/raw is ever written.

The dataset is read by the format `data.format` names, with the options of its section
`data.<data.format>` (dvc.yaml lists that section). Every other `data.<format>` section is
checked too, so a typo fails, and an option set there is reported as ignored.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd

from avgate import media, preflight
from avgate.config import Params
from avgate.datasets import check_sections, load_records
from avgate.errors import StageError
from avgate.files import sha256_of, write_csv, write_json, write_parquet
from avgate.parallel import ordered_map
from avgate.profiles import recorded

REPORT = Path("metrics/ingest.json")
PLOTS = Path("plots/ingest")
MANIFEST_COLUMNS = [
    "clip_id", "path", "sha256", "audio_sha256", "label", "group", "duration_s",
    "video_duration_s", "sample_rate", "channels", "has_video", "fps", "width", "height",
    "status",
]  # fmt: skip
OPTIONAL_COLUMNS = ["fold", "split", "start_s", "end_s"]


def probe_record(path: str, tolerance_s: float) -> dict:
    """Hash and fully decode one file; `status` is 'ok' or the reason it cannot be used."""
    row = {"sha256": sha256_of(Path(path)) if Path(path).is_file() else "", "status": "ok"}
    try:
        info = media.verify(path, tolerance_s=tolerance_s)
    except media.MediaError as error:
        row["status"] = str(error)
        return row
    row.update(vars(info))
    return row


def build_manifest(records: pd.DataFrame, tolerance_s: float, workers: int) -> pd.DataFrame:
    """Probe every record's file; one manifest row per record, sorted by clip_id."""
    probe = partial(probe_record, tolerance_s=tolerance_s)
    rows = list(ordered_map(probe, records["path"], workers=workers, desc="ingest"))
    manifest = pd.concat([records.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
    for column in MANIFEST_COLUMNS:
        if column not in manifest:
            manifest[column] = None
    if "end_s" in manifest:
        too_long = (manifest["status"] == "ok") & (
            manifest["end_s"] > manifest["duration_s"] + tolerance_s
        )
        manifest.loc[too_long, "status"] = [
            f"{row.path}: annotation ends at {row.end_s} s, after the media ends "
            f"({row.duration_s:.2f} s)"
            for row in manifest[too_long].itertuples()
        ]
    extra = [c for c in OPTIONAL_COLUMNS if c in manifest]
    return manifest[MANIFEST_COLUMNS + extra].sort_values("clip_id").reset_index(drop=True)


def build_segments(manifest: pd.DataFrame, background: str) -> pd.DataFrame:
    """One row per usable clip and second: inside an annotated span the event's label, outside
    it `background`; clips without a span carry their clip label in every second."""
    rows = []
    spans = "start_s" in manifest
    for clip in manifest[manifest["status"] == "ok"].itertuples():
        for t in range(media.seconds_in(clip.duration_s)):
            inside = not spans or pd.isna(clip.start_s) or clip.start_s <= t < clip.end_s
            rows.append((clip.clip_id, t, clip.label if inside else background))
    return pd.DataFrame(rows, columns=["clip_id", "t", "label"])


def refuse_rejected_lines(summary: dict, min_ok_fraction: float) -> None:
    """StageError when the dataset format left out too many source lines for `min_ok_fraction`."""
    if summary["records_kept_fraction"] >= min_ok_fraction:
        return
    rejected = summary["rejected_lines"]
    listing = "\n".join(f"  {r['file']}:{r['line']}: {r['reason']}" for r in rejected[:20])
    raise StageError(
        f"{len(rejected)} source line(s) left out, {summary['n_files']} kept "
        f"({summary['records_kept_fraction']:.1%} < ingest.min_ok_fraction "
        f"{min_ok_fraction:.1%}); fix these lines (full list in {REPORT}):\n{listing}"
    )


def run(params: Params) -> dict:
    """Ingest `data/raw/<data.name>` into `data/interim/<data.name>`; return the report."""
    with recorded("ingest"):
        return _ingest(params)


def _ingest(params: Params) -> dict:
    data_format, sections = params.data.format, params.data.options
    ignored = check_sections(data_format, sections)  # a typo in any data.<format> fails here
    records = load_records(data_format, params.data.raw_dir, **sections.get(data_format, {}))
    if params.task.kind == "event" and "start_s" not in records.frame:
        raise StageError(
            f"task.kind event needs per-second event spans, which data.format "
            f"{data_format!r} does not provide; set task.kind: clip in params.yaml"
        )
    manifest = build_manifest(
        records.frame, params.ingest.duration_tolerance_s, params.ingest.workers
    )
    least = params.ingest.min_ok_fraction
    summary = preflight.report(
        manifest, least, params.ingest.imbalance_warning_ratio,
        params.ingest.duration_tolerance_s, records.warnings + ignored, records.rejected,
    )  # fmt: skip
    write_json(REPORT, summary)
    ok = manifest[manifest["status"] == "ok"]
    write_csv(preflight.duration_histogram(ok["duration_s"]), PLOTS / "durations.csv")
    balance = summary["label_counts"]
    write_csv(pd.DataFrame({"label": list(balance), "clips": list(balance.values())}),
              PLOTS / "class_balance.csv")  # fmt: skip
    refuse_rejected_lines(summary, least)
    if summary["ok_fraction"] < least:
        listing = "\n".join(f"  {f['reason']}" for f in summary["failures"][:20])
        raise StageError(
            f"only {summary['n_ok']} of {summary['n_files']} files are usable "
            f"({summary['ok_fraction']:.1%} < ingest.min_ok_fraction {least:.1%}); "
            f"fix or remove these files (full list in {REPORT}):\n{listing}"
        )
    out = params.data.interim_dir
    write_parquet(manifest, out / "manifest.parquet")
    write_parquet(build_segments(manifest, params.task.background_label), out / "segments.parquet")
    return summary
