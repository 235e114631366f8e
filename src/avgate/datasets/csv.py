"""`csv`: a user's manifest, `<root>/<data.csv.manifest>`, with columns `path,label` and optional
`group`, `split`, `start`, `end`.

Paths are relative to the root; clip_id is the path without its suffix. `split` takes the
predefined split (train, val or test); `start` and `end` give an event span in whole seconds
(`start_s`, `end_s`). Without a `group` column each file is its own group (and a warning says
so); other columns are ignored, with a warning naming them.

This module is `avgate.datasets.csv`; it shadows nothing: imports are absolute, so `import csv`
anywhere (checks.py included) is the standard library's.

>>> _clip_row(Path("data"), {"path": "clips/a.wav", "label": "dog"}, "manifest.csv:2")
{'clip_id': 'clips/a', 'path': 'data/clips/a.wav', 'label': 'dog', 'group': 'clips/a'}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from avgate.datasets.base import DatasetFormat, register
from avgate.datasets.checks import (
    SPLITS,
    DatasetError,
    Records,
    clip_id_of,
    make_records,
    read_table,
    relative_path,
    span,
)
from avgate.declare import Rule, param

REQUIRED = ("path", "label")
OPTIONAL = ("group", "split", "start", "end")


def _inside_root(text: str) -> bool:
    try:
        relative_path(text)
    except ValueError:
        return False
    return True


INSIDE_ROOT = Rule(
    "a relative path without `..`",
    "be a path relative to data/raw/<name> without '..'",
    _inside_root,
)


@dataclass(frozen=True)
class CsvOptions:
    manifest: str = param(
        "manifest.csv", "the manifest, a path relative to `data/raw/<name>`", INSIDE_ROOT
    )


@register("csv")
class Csv(DatasetFormat):
    """clip_id, path, label, group[, split, start_s, end_s] of each manifest row."""

    layout = (
        "a manifest CSV (data.csv.manifest) with columns path,label[,group,split,start,end], "
        "paths relative to the dataset root"
    )
    group_fix = "add a group column (speaker, source recording) to the manifest (data.csv.manifest)"
    options_type = CsvOptions

    def load(self, root: Path, options: CsvOptions) -> Records:
        path = root / options.manifest
        if not path.is_file():
            raise DatasetError(f"{path}: not found; a csv dataset needs {self.layout}")
        table = read_table(path, REQUIRED)
        if ("start" in table.columns) != ("end" in table.columns):
            raise DatasetError(
                f"{path}: has only one of the columns start, end; give both or neither"
            )
        rows = [_clip_row(root, cells, f"{path}:{line}") for line, cells in table.rows]
        columns = ["clip_id", "path", "label", "group"]
        if "split" in table.columns:
            columns.append("split")
        if "start" in table.columns:
            columns += ["start_s", "end_s"]
        warnings = []
        if "group" not in table.columns:
            warnings.append(
                f"{path}: no group column, so each file is its own group; add one (speaker, "
                "source recording, ...) so a split keeps related files together"
            )
        unused = [c for c in table.columns if c not in REQUIRED + OPTIONAL]
        if unused:
            warnings.append(f"{path}: column(s) {unused} are not used")
        return make_records(pd.DataFrame(rows, columns=columns), warnings)


def _clip_row(root: Path, cells: dict[str, str], where: str) -> dict:
    """One manifest row as a record; DatasetError naming `where` for a bad cell."""
    try:
        relative = relative_path(cells["path"])
    except ValueError as error:
        raise DatasetError(f"{where}: {error}") from None
    clip_id = clip_id_of(relative)
    row = {"clip_id": clip_id, "path": str(root / relative), "label": cells["label"]}
    row["group"] = cells.get("group", clip_id)
    for column in ("label", "group"):
        if not row[column].strip():
            raise DatasetError(f"{where}: empty {column} for {cells['path']!r}; fill it")
    if "split" in cells:
        if cells["split"] not in SPLITS:
            raise DatasetError(
                f"{where}: split {cells['split']!r} is not one of {list(SPLITS)}; fix the cell"
            )
        row["split"] = cells["split"]
    if "start" in cells:
        try:
            row["start_s"], row["end_s"] = span(cells["start"], cells["end"])
        except ValueError as error:
            raise DatasetError(f"{where}: {error}") from None
    return row
