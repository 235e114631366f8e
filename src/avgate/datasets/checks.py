"""What every dataset format returns, the parsing rules they share, and the checks records pass.

A format's `load` builds one row per clip and hands it to `make_records`; `check_records` then
refuses what no later stage could use honestly. Nothing here writes a file.

>>> frame = pd.DataFrame({"clip_id": ["b", "a"], "path": ["r/b.wav", "r/a.wav"],
...                       "label": ["dog", "cat"], "group": ["g1", "g2"]})
>>> make_records(frame, []).frame
  clip_id     path label group
0       a  r/a.wav   cat    g2
1       b  r/b.wav   dog    g1
>>> relative_path("clips/../x.wav")
Traceback (most recent call last):
...
ValueError: 'clips/../x.wav' contains '..'; paths must stay inside the dataset root
"""

from __future__ import annotations

import csv
import io
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pandas as pd

COLUMNS = ("clip_id", "path", "label", "group")
OPTIONAL_COLUMNS = ("start_s", "end_s", "fold", "split")
INT_COLUMNS = ("start_s", "end_s", "fold")
SPLITS = ("train", "val", "test")
MAX_NUMBER = 2**31 - 1


class DatasetError(ValueError):
    """A dataset that cannot be read as records; the message names the file and the fix."""


@dataclass(frozen=True)
class Rejected:
    """A source line left out: the file, its line number and why."""

    file: str
    line: int
    reason: str


@dataclass(frozen=True)
class Records:
    """One row per clip, sorted by clip_id, and what the ingest report must show: warnings and
    the source lines left out (`rejected`)."""

    frame: pd.DataFrame
    warnings: list[str]
    rejected: list[Rejected] = field(default_factory=list)


@dataclass(frozen=True)
class Table:
    """A CSV file's header and its rows, each with the line it starts on."""

    columns: list[str]
    rows: list[tuple[int, dict[str, str]]]


def make_records(
    frame: pd.DataFrame, warnings: list[str], rejected: Sequence[Rejected] = ()
) -> Records:
    """The contract's columns in order (optional ones where present), sorted by clip_id."""
    columns = [*COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in frame)]
    ints = {c: "int64" for c in INT_COLUMNS if c in frame}
    frame = frame[columns].astype(ints).sort_values("clip_id", kind="stable", ignore_index=True)
    return Records(frame, list(warnings), list(rejected))


def relative_path(text: str) -> PurePosixPath:
    """`text` as a path inside the dataset root; ValueError for empty, absolute or `..` paths."""
    if "\0" in text:
        raise ValueError(f"{text!r} contains a NUL character; fix the path")
    path = PurePosixPath(text)
    if not path.parts:
        raise ValueError("empty path; give every row a file path relative to the dataset root")
    if path.is_absolute():
        raise ValueError(f"{text!r} is absolute; write paths relative to the dataset root")
    if ".." in path.parts:
        raise ValueError(f"{text!r} contains '..'; paths must stay inside the dataset root")
    return path


def clip_id_of(relative: PurePosixPath) -> str:
    """The clip id of a file: its path relative to the root, without the suffix.

    >>> clip_id_of(PurePosixPath("recordings/3_jackson_12.wav"))
    'recordings/3_jackson_12'
    """
    return posixpath.splitext(relative.as_posix())[0]


def whole_number(text: str, what: str) -> int:
    """`text` as an int in [0, MAX_NUMBER]; ValueError saying what is wrong otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{what} must be a whole number, got {text!r}") from None
    if not 0 <= value <= MAX_NUMBER:
        raise ValueError(f"{what} must lie in [0, {MAX_NUMBER}], got {value}")
    return value


def span(start: str, end: str, names: tuple[str, str] = ("start", "end")) -> tuple[int, int]:
    """An event span [start, end) in whole seconds with start < end; ValueError otherwise.

    >>> span("2", "7")
    (2, 7)
    """
    start_s, end_s = whole_number(start, names[0]), whole_number(end, names[1])
    if start_s >= end_s:
        raise ValueError(f"need {names[0]} < {names[1]}, got {start_s}, {end_s}")
    return start_s, end_s


def read_text(path: Path, errors: str = "strict") -> str:
    """A UTF-8 text file (a leading BOM dropped); DatasetError naming the line of a bad byte.

    With `errors="surrogateescape"` bad bytes become lone surrogates instead, for a caller that
    leaves out the lines holding them.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"{path}: cannot be read ({error.strerror})") from None
    try:
        return data.decode("utf-8-sig", errors=errors)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DatasetError(
            f"{path}:{line}: not UTF-8 text (byte {data[error.start]:#04x}); save the file as UTF-8"
        ) from None


def read_table(path: Path, required: Sequence[str]) -> Table:
    """A UTF-8 CSV whose header names every `required` column; one cell per column in each row.

    Blank lines are skipped; column names are stripped of surrounding spaces.
    """
    reader = csv.reader(io.StringIO(read_text(path), newline=""), strict=True)
    try:
        columns = [name.strip() for name in next(reader, [])]
        missing = [name for name in required if name not in columns]
        if missing:
            raise DatasetError(
                f"{path}: missing column(s) {missing}; the header line must name {list(required)}"
            )
        repeated = sorted({name for name in columns if columns.count(name) > 1})
        if repeated:
            raise DatasetError(f"{path}: column(s) {repeated} appear twice; keep one of each")
        rows = []
        line = reader.line_num + 1
        for cells in reader:
            if cells:
                if len(cells) != len(columns):
                    raise DatasetError(
                        f"{path}:{line}: expected {len(columns)} fields ({','.join(columns)}), "
                        f"got {len(cells)}; check commas and quoting"
                    )
                rows.append((line, dict(zip(columns, cells, strict=True))))
            line = reader.line_num + 1
    except csv.Error as error:
        raise DatasetError(f"{path}:{reader.line_num}: {error}; check the quoting") from None
    return Table(columns, rows)


def require_utf8(path: str) -> None:
    """Refuse a file name that is not UTF-8 (Linux hands it over with surrogate escapes)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise DatasetError(
            f"{ascii(path)}: file name is not valid UTF-8; rename it using UTF-8 characters"
        ) from None


def escape_reason(path: str, root: Path) -> str | None:
    """Why `path` leaves `root` ('..', outside it, or a symlink resolving outside), else None."""
    try:
        relative = Path(path).relative_to(root)
    except ValueError:
        return "not under the root"
    if ".." in relative.parts:
        return "'..' in the path"
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        return f"a symlink resolving to {real}"
    return None


def check_records(records: Records, root: Path, layout: str) -> None:
    """Refuse zero clips, non-UTF-8 names, paths leaving `root`, missing labels or groups, and
    duplicate clip ids. Files that do not exist pass: ingest reports them one by one.
    """
    frame = records.frame
    if frame.empty:
        raise DatasetError(f"{root}: no clips found; expected {layout}")
    for path in frame["path"]:
        require_utf8(path)
        reason = escape_reason(path, root)
        if reason:
            raise DatasetError(
                f"{path}: leaves the dataset root {root} ({reason}); "
                "keep every file inside the root (copy it in rather than linking)"
            )
    for column in ("label", "group"):
        empty = [p for p, v in zip(frame["path"], frame[column], strict=True) if not _filled(v)]
        if empty:
            raise DatasetError(
                f"{len(empty)} clip(s) have no {column}, e.g. {empty[:5]}; "
                f"give every file a {column}"
            )
    repeated = frame[frame["clip_id"].duplicated(keep=False)]
    if not repeated.empty:
        by_id = repeated.groupby("clip_id", sort=True)["path"].agg(list)
        shown = "; ".join(f"{clip_id!r}: {paths}" for clip_id, paths in by_id.head(5).items())
        raise DatasetError(
            f"{len(by_id)} clip id(s) belong to more than one file ({shown}); a clip id is the "
            "path without its suffix, so rename or remove one file of each"
        )


def _filled(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())
