"""ESC-50: `meta/esc50.csv` (filename, fold, target, category, esc10, src_file, take), audio in
`audio/<filename>`.

Label is the category, group the source recording (`src_file`: ESC-50 cuts several clips from
one freesound recording), fold the official cross-validation fold.

>>> Esc50().load(Path("ESC-50-master"), NoOptions()).frame.columns.tolist()  # doctest: +SKIP
['clip_id', 'path', 'label', 'group', 'fold']
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from avgate.datasets.base import DatasetFormat, NoOptions, register
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


@register("esc50")
class Esc50(DatasetFormat):
    """clip_id, path, label (category), group (src_file), fold of each row of the metadata."""

    layout = f"{META} ({','.join(META_COLUMNS)}) and {AUDIO}/<filename>"
    group_fix = f"make src_file in {META} name each clip's source recording"
    options_type = NoOptions

    def load(self, root: Path, options: NoOptions) -> Records:
        meta = root / META
        if not meta.is_file():
            raise DatasetError(f"{meta}: not found; an esc50 dataset needs {self.layout}")
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
