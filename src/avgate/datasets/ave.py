"""AVE-format annotations (`Category&VideoID&Quality&StartTime&EndTime`), `<VideoID>.mp4` media.

Lines are split on `&` only: category names hold commas and spaces, and ids may start with `-`.
A line that cannot be used (wrong field count, empty or unsafe VideoID, a span that is not whole
seconds with StartTime < EndTime, bytes that are not UTF-8) is left out and reported with its
line number; every other line is kept. An optional `groups.csv` (`video_id,group`) names each
clip's recording group; without it every video is its own group. Optional official split files
`trainSet.txt`, `valSet.txt` and `testSet.txt` (same line format) fill `split`: every annotated
video must be in exactly one.

A VideoID annotated twice the same way is kept once; annotated differently, each annotation is
a clip of its own, `<VideoID>`, `<VideoID>#2`, ... on the same media file.

>>> import io
>>> text = io.StringIO("Category&VideoID&Quality&StartTime&EndTime\\n"
...                    "Church bell&-a1B&good&2&7\\n"
...                    "Church bell&-a1B&good&0&3\\n"
...                    "Church bell&VWi2E&good&0&0\\n")
>>> frame, rejected = read_annotations(text, "Annotations.txt")
>>> frame
         label video_id clip_id quality  start_s  end_s
0  Church bell     -a1B    -a1B    good        2      7
1  Church bell     -a1B  -a1B#2    good        0      3
>>> [(r.line, r.reason) for r in rejected]
[(4, "need StartTime < EndTime, got 0, 0: 'Church bell&VWi2E&good&0&0'")]
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import TextIO

import pandas as pd

from avgate.datasets.base import DatasetFormat, NoOptions, register
from avgate.datasets.checks import (
    DatasetError,
    Records,
    Rejected,
    make_records,
    read_table,
    read_text,
    span,
)

ANNOTATIONS = "Annotations.txt"
GROUPS = "groups.csv"
SPLIT_FILES = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
HEADER_PREFIX = "Category&"


class AnnotationError(DatasetError):
    """An AVE annotation, group or split file that cannot be read; the message names the file."""


def read_annotations(stream: TextIO, name: str) -> tuple[pd.DataFrame, list[Rejected]]:
    """Parse AVE annotation lines into label, video_id, clip_id, quality, start_s, end_s, and
    the lines left out (line number and reason)."""
    rows, rejected = [], []
    for number, line in enumerate(stream, start=1):
        line = line.rstrip("\r\n")
        if number == 1:
            line = line.removeprefix("\ufeff")
        if not line.strip() or (number == 1 and line.startswith(HEADER_PREFIX)):
            continue
        try:
            rows.append(_fields(line))
        except ValueError as error:
            rejected.append(Rejected(name, number, f"{error}: {line!r}"))
    columns = ["label", "video_id", "quality", "start_s", "end_s"]
    frame = pd.DataFrame(rows, columns=columns).drop_duplicates(ignore_index=True)
    frame.insert(2, "clip_id", _clip_ids(frame["video_id"]))
    return frame, rejected


def _fields(line: str) -> tuple[str, str, str, int, int]:
    """Category, VideoID, Quality, StartTime, EndTime of one line; ValueError saying what is
    wrong."""
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid UTF-8 text; save the file as UTF-8") from None
    fields = line.split("&")
    if len(fields) != 5:
        raise ValueError(
            "expected 5 '&'-separated fields (Category&VideoID&Quality&StartTime&EndTime), "
            f"got {len(fields)}"
        )
    label, video_id, quality, start, end = fields
    if not label.strip() or not video_id.strip():
        raise ValueError("empty Category or VideoID")
    if "/" in video_id or "\0" in video_id:
        raise ValueError(f"VideoID {video_id!r} must be a plain file name (no '/' or NUL)")
    start_s, end_s = span(start, end, ("StartTime", "EndTime"))
    return label, video_id, quality, start_s, end_s


def _clip_ids(video_ids: pd.Series) -> list[str]:
    """`<VideoID>` for a video's first annotation, `<VideoID>#2`, `#3`, ... for the others."""
    seen: Counter[str] = Counter()
    ids = []
    for video_id in video_ids:
        seen[video_id] += 1
        ids.append(video_id if seen[video_id] == 1 else f"{video_id}#{seen[video_id]}")
    return ids


@register("ave")
class Ave(DatasetFormat):
    """clip_id, path, label, group, start_s, end_s[, split] of each usable annotation line."""

    layout = (
        f"{ANNOTATIONS} (Category&VideoID&Quality&StartTime&EndTime) and <VideoID>.mp4 beside "
        f"it; optional {GROUPS} (video_id,group) and {', '.join(SPLIT_FILES.values())}"
    )
    group_fix = f"add {GROUPS} (video_id,group) beside {ANNOTATIONS}"
    options_type = NoOptions

    def load(self, root: Path, options: NoOptions) -> Records:
        annotations = root / ANNOTATIONS
        if not annotations.is_file():
            raise AnnotationError(f"{annotations}: not found; an ave dataset needs {self.layout}")
        frame, rejected = _read(annotations)
        if frame.empty and rejected:
            shown = "; ".join(f"line {r.line}: {r.reason}" for r in rejected[:5])
            raise AnnotationError(
                f"{annotations}: none of its {len(rejected)} annotation lines can be used "
                f"({shown}); an ave dataset needs {self.layout}"
            )
        frame["path"] = [str(root / f"{video_id}.mp4") for video_id in frame["video_id"]]
        counts = Counter(frame["video_id"])
        warnings = [
            f"{annotations}: VideoID {video_id!r} is annotated {n} different ways; each annotation "
            f"is a clip of its own ({video_id!r}, {video_id + '#2'!r}, ...) on the same video"
            for video_id, n in sorted(counts.items())
            if n > 1
        ]
        if (root / GROUPS).exists():
            frame["group"] = _groups(root / GROUPS, frame["video_id"])
        else:
            frame["group"] = frame["video_id"]
            warnings.append(f"{root}: no {GROUPS}, so each video is its own group")
        splits = {
            split: root / name for split, name in SPLIT_FILES.items() if (root / name).exists()
        }
        if splits:
            frame["split"], unknown, left_out = _splits(root, splits, frame["video_id"])
            warnings += unknown
            rejected += left_out
        return make_records(frame, warnings, rejected)


def _read(path: Path) -> tuple[pd.DataFrame, list[Rejected]]:
    text = read_text(path, errors="surrogateescape")
    return read_annotations(io.StringIO(text), str(path))


def _groups(path: Path, video_ids: pd.Series) -> list[str]:
    mapping: dict[str, str] = {}
    for line, row in read_table(path, ["video_id", "group"]).rows:
        video_id, group = row["video_id"], row["group"]
        if not group.strip():
            raise AnnotationError(f"{path}:{line}: empty group for VideoID {video_id!r}; fill it")
        if mapping.setdefault(video_id, group) != group:
            raise AnnotationError(
                f"{path}:{line}: VideoID {video_id!r} already has group {mapping[video_id]!r}; "
                "give each video one group"
            )
    unmapped = sorted({v for v in video_ids if v not in mapping})
    if unmapped:
        raise AnnotationError(
            f"{path}: no group for VideoID(s) {unmapped[:5]} ({len(unmapped)} in all); "
            "add a row for each"
        )
    return [mapping[v] for v in video_ids]


def _splits(
    root: Path, files: dict[str, Path], video_ids: pd.Series
) -> tuple[list[str], list[str], list[Rejected]]:
    """Each video's split from the official split files, warnings for unannotated ones, and
    the split files' lines left out."""
    listed: dict[str, list[str]] = {}
    rejected = []
    for split, path in files.items():
        frame, left_out = _read(path)
        rejected += left_out
        for video_id in dict.fromkeys(frame["video_id"]):
            listed.setdefault(video_id, []).append(split)
    names = [path.name for path in files.values()]
    annotated = set(video_ids)
    missing = sorted(annotated - set(listed))
    if missing:
        raise AnnotationError(
            f"{root}: VideoID(s) {missing[:5]} ({len(missing)} in all) are in {ANNOTATIONS} "
            f"but in none of {names}; list each annotated video in exactly one split file"
        )
    repeated = {
        v: [SPLIT_FILES[s] for s in listed[v]] for v in sorted(annotated) if len(listed[v]) > 1
    }
    if repeated:
        shown = dict(list(repeated.items())[:5])
        raise AnnotationError(
            f"{root}: VideoID(s) in more than one split file: {shown} ({len(repeated)} in all); "
            "keep each video in exactly one"
        )
    warnings = []
    for split, path in files.items():
        unknown = [v for v, s in listed.items() if split in s and v not in annotated]
        if unknown:
            warnings.append(
                f"{path}: {len(unknown)} VideoID(s) not in {ANNOTATIONS} are ignored, "
                f"e.g. {unknown[:5]}"
            )
    return [listed[v][0] for v in video_ids], warnings, rejected
