"""One folder per label: `<root>/<label>/<file>` for media files (.wav, .flac, .mp4, ...).

The group comes from `group_pattern`, a regex searched in each file name: its named group
`group`, else its first capture group. Without a pattern each file is its own group (and a
warning says so). clip_id is the path without suffix, `<label>/<stem>`; files in deeper folders
keep the top folder as label. Other files (README, CSVs) are ignored.

>>> group_of(compile_pattern(r"^([a-z]+)_"), "alice_003.wav")
'alice'
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

import pandas as pd

from avgate.datasets.checks import (
    DatasetError,
    Records,
    clip_id_of,
    escape_reason,
    make_records,
    require_utf8,
)

MEDIA_SUFFIXES = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".mp4", ".mkv", ".webm", ".mov"}
)
LAYOUT = "<label>/<file> with a media suffix (" + ", ".join(sorted(MEDIA_SUFFIXES)) + ")"


def load(root: Path, group_pattern: str | None = None) -> Records:
    """Records of a folder-per-label dataset: clip_id (`<label>/<stem>`), path, label, group."""
    pattern = compile_pattern(group_pattern) if group_pattern else None
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
                    f"{path}: group_pattern {pattern.pattern!r} finds no group in "
                    f"{relative.name!r}; fix the pattern or rename the file"
                )
        rows.append((clip_id, str(path), relative.parts[0], group))
    frame = pd.DataFrame(rows, columns=["clip_id", "path", "label", "group"])
    if pattern:
        return make_records(frame, [])
    warning = (
        f"{root}: no group_pattern, so each file is its own group; set data.group_pattern "
        "(e.g. '^([^_]+)_' for speaker_take.wav) so a split keeps a speaker's files together"
    )
    return make_records(frame, [warning])


def compile_pattern(group_pattern: str) -> re.Pattern[str]:
    """The group regex; DatasetError if it does not compile or captures nothing."""
    try:
        pattern = re.compile(group_pattern)
    except re.error as error:
        raise DatasetError(
            f"group_pattern {group_pattern!r} is not a valid regex: {error}"
        ) from None
    if pattern.groups == 0:
        raise DatasetError(
            f"group_pattern {group_pattern!r} has no capture group; wrap the group part in (...)"
        )
    return pattern


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
