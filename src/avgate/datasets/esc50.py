"""ESC-50: `meta/esc50.csv` (filename, fold, target, category, esc10, src_file, take), audio in
`audio/<filename>`.

Label is the category, group the source recording (`src_file`: ESC-50 cuts several clips from
one freesound recording), fold the official cross-validation fold.

>>> load(Path("ESC-50-master")).frame.columns.tolist()  # doctest: +SKIP
['clip_id', 'path', 'label', 'group', 'fold']
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from avgate.datasets.checks import (
    DatasetError,
    Records,
    clip_id_of,
    make_records,
    read_table,
    relative_path,
    whole_number,
)

META = "meta/esc50.csv"
AUDIO = "audio"
META_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
LAYOUT = f"{META} ({','.join(META_COLUMNS)}) and {AUDIO}/<filename>"


def load(root: Path) -> Records:
    """Records of an ESC-50-format dataset: clip_id, path, label, group, fold."""
    meta = root / META
    if not meta.is_file():
        raise DatasetError(f"{meta}: not found; an ESC-50-format dataset needs {LAYOUT}")
    rows = []
    for line, row in read_table(meta, META_COLUMNS).rows:
        try:
            relative = relative_path(row["filename"])
            fold = whole_number(row["fold"], "fold")
        except ValueError as error:
            raise DatasetError(f"{meta}:{line}: {error}") from None
        path = str(root / AUDIO / relative)
        rows.append((clip_id_of(relative), path, row["category"], row["src_file"], fold))
    frame = pd.DataFrame(rows, columns=["clip_id", "path", "label", "group", "fold"])
    return make_records(frame, [])
