"""AVE-format annotations (`Category&VideoID&Quality&StartTime&EndTime`), `<VideoID>.mp4` media.

Lines are split on `&` only: category names hold commas and spaces, and ids may start with `-`.
An optional `groups.csv` (`video_id,group`) names each clip's recording group; without it every
video is its own group.

>>> import io
>>> read_annotations(io.StringIO("Category&VideoID&Quality&StartTime&EndTime\\n"
...                              "Church bell&-a1B&good&2&7\\n"), "Annotations.txt")
         label clip_id quality  start_s  end_s
0  Church bell    -a1B    good        2      7
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import pandas as pd

ANNOTATIONS = "Annotations.txt"
GROUPS = "groups.csv"
HEADER_PREFIX = "Category&"


class AnnotationError(ValueError):
    """An annotation file that cannot be read; the message names file and line."""


def read_annotations(stream: TextIO, name: str) -> pd.DataFrame:
    """Parse AVE annotation lines into label, clip_id, quality, start_s, end_s."""
    rows = []
    for number, line in enumerate(stream, start=1):
        line = line.rstrip("\r\n")
        if not line.strip() or (number == 1 and line.startswith(HEADER_PREFIX)):
            continue
        fields = line.split("&")
        if len(fields) != 5:
            raise AnnotationError(
                f"{name}:{number}: expected 5 '&'-separated fields "
                f"(Category&VideoID&Quality&StartTime&EndTime), got {len(fields)}: {line!r}"
            )
        label, clip_id, quality, start, end = fields
        try:
            start_s, end_s = int(start), int(end)
        except ValueError:
            raise AnnotationError(
                f"{name}:{number}: StartTime and EndTime must be whole seconds, "
                f"got {start!r}, {end!r}"
            ) from None
        if not label.strip() or not clip_id:
            raise AnnotationError(f"{name}:{number}: empty Category or VideoID: {line!r}")
        if not 0 <= start_s < end_s:
            raise AnnotationError(
                f"{name}:{number}: need 0 <= StartTime < EndTime, got {start_s}, {end_s}"
            )
        rows.append((label, clip_id, quality, start_s, end_s))
    frame = pd.DataFrame(rows, columns=["label", "clip_id", "quality", "start_s", "end_s"])
    return _drop_repeats(frame, name)


def _drop_repeats(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Keep exact repeats once; refuse a VideoID annotated two different ways."""
    frame = frame.drop_duplicates().reset_index(drop=True)
    conflicting = frame[frame["clip_id"].duplicated(keep=False)]
    if not conflicting.empty:
        ids = sorted(conflicting["clip_id"].unique())
        raise AnnotationError(
            f"{name}: VideoID(s) {ids[:5]} annotated more than once with different "
            "labels or spans; keep one annotation per video"
        )
    return frame


def load(root: Path) -> pd.DataFrame:
    """Records of an AVE-format dataset: clip_id, path, label, group, start_s, end_s."""
    annotations = root / ANNOTATIONS
    if not annotations.exists():
        raise AnnotationError(f"{annotations}: not found; an AVE-format dataset needs it")
    with open(annotations, encoding="utf-8") as stream:
        frame = read_annotations(stream, str(annotations))
    frame["path"] = [str(root / f"{clip_id}.mp4") for clip_id in frame["clip_id"]]
    frame["group"] = _groups(root, frame["clip_id"])
    return frame[["clip_id", "path", "label", "group", "start_s", "end_s"]]


def _groups(root: Path, clip_ids: pd.Series) -> list[str]:
    path = root / GROUPS
    if not path.exists():
        return list(clip_ids)
    table = pd.read_csv(path, dtype=str)
    missing_columns = {"video_id", "group"} - set(table.columns)
    if missing_columns:
        raise AnnotationError(f"{path}: missing column(s) {sorted(missing_columns)}")
    mapping = dict(zip(table["video_id"], table["group"], strict=True))
    unmapped = [c for c in clip_ids if c not in mapping]
    if unmapped:
        raise AnnotationError(f"{path}: no group for VideoID(s) {unmapped[:5]}; add a row for each")
    return [mapping[c] for c in clip_ids]
