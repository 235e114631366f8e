"""`folder`: one folder per label, `<root>/<label>/<file>` for media (.wav, .flac, .mp4, ...).

The group comes from the option `group_pattern` (`data.folder.group_pattern`), a regex searched
in each file name: its named group `group`, else its first capture group. Without a pattern each
file is its own group (and a warning says so). clip_id is the path without suffix,
`<label>/<stem>`; files in deeper folders keep the top folder as label. Other files (README,
CSVs) are ignored.

>>> group_of(re.compile(r"^([a-z]+)_"), "alice_003.wav")
'alice'
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from avgate.datasets.base import DatasetFormat, register
from avgate.datasets.checks import (
    DatasetError,
    Records,
    clip_id_of,
    escape_reason,
    make_records,
    require_utf8,
)
from avgate.declare import GROUP_REGEX, param

MEDIA_SUFFIXES = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".mp4", ".mkv", ".webm", ".mov"}
)


@dataclass(frozen=True)
class FolderOptions:
    group_pattern: str = param(
        "",
        "regex searched in each file name: its group `group`, else its first group, is the "
        "recording group (empty: each file its own group)",
        GROUP_REGEX,
    )


@register("folder")
class Folder(DatasetFormat):
    """clip_id (`<label>/<stem>`), path, label (the top folder), group of each media file."""

    layout = "<label>/<file> with a media suffix (" + ", ".join(sorted(MEDIA_SUFFIXES)) + ")"
    group_fix = (
        "set data.folder.group_pattern to a regex whose first group finds the speaker or "
        "recording in each file name"
    )
    options_type = FolderOptions

    def load(self, root: Path, options: FolderOptions) -> Records:
        pattern = re.compile(options.group_pattern) if options.group_pattern else None
        rows = []
        for relative in media_files(root):
            path = root / relative
            if len(relative.parts) == 1:
                raise DatasetError(
                    f"{path}: media file outside a label folder; move it into <root>/<label>/"
                )
            clip_id = clip_id_of(relative)
            group = clip_id
            if pattern:
                group = group_of(pattern, relative.name)
                if not group:
                    raise DatasetError(
                        f"{path}: data.folder.group_pattern {pattern.pattern!r} finds no group "
                        f"in {relative.name!r}; fix the pattern or rename the file"
                    )
            rows.append((clip_id, str(path), relative.parts[0], group))
        frame = pd.DataFrame(rows, columns=["clip_id", "path", "label", "group"])
        if pattern:
            return make_records(frame, [])
        warning = (
            f"{root}: no group_pattern, so each file is its own group; set "
            "data.folder.group_pattern (e.g. '^([^_]+)_' for speaker_take.wav) so a split keeps "
            "a speaker's files together"
        )
        return make_records(frame, [warning])


def group_of(pattern: re.Pattern[str], name: str) -> str | None:
    """The group `pattern` finds in a file name, or None where it does not match."""
    match = pattern.search(name)
    if match is None:
        return None
    return match.group(pattern.groupindex.get("group", 1))


def media_files(root: Path) -> list[PurePosixPath]:
    """Media files under `root`, relative to it, sorted.

    Symlinked folders are not walked: one leading outside the root is an error, one inside it
    would only list files a second time.
    """
    found = []
    for folder, dirs, files in os.walk(root, onerror=_unreadable):
        for name in dirs:
            path = os.path.join(folder, name)
            if os.path.islink(path) and (reason := escape_reason(path, root)):
                raise DatasetError(
                    f"{path}: folder leaves the dataset root {root} ({reason}); "
                    "copy its files in rather than linking"
                )
        for name in files:
            if os.path.splitext(name)[1].lower() in MEDIA_SUFFIXES:
                require_utf8(os.path.join(folder, name))
                found.append(PurePosixPath(Path(folder, name).relative_to(root)))
    return sorted(found)


def _unreadable(error: OSError) -> None:
    raise DatasetError(f"{error.filename}: cannot be listed ({error.strerror})")
