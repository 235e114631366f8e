"""Datasets that avgate can read (one `DatasetFormat` per source layout) or build (the demo).

`data.format` names a format (`formats()`); `load_records(name, root, **options)` checks
the options (the keys of the params.yaml section `data.<name>`), runs the format, and applies
the checks every dataset must pass; it never writes under the dataset root. Built in:

- `ave`: AVE annotations (`Annotations.txt`), `<VideoID>.mp4`, optional groups and split files;
- `esc50`: `meta/esc50.csv` and `audio/`, grouped by source recording, with folds;
- `fsdd`: `recordings/{digit}_{speaker}_{index}.wav`, grouped by speaker;
- `folder`: `<label>/<file>`, grouped by `data.folder.group_pattern`;
- `csv`: a manifest (`data.csv.manifest`) with `path,label` and optional columns.

A new format is one module here named after it: an options dataclass of `avgate.declare.param`
fields and a `DatasetFormat` subclass decorated with `@register("<name>")`; `format_named`
imports it by that name (docs/extending.md). tests/test_format_contract.py checks it the day it
is registered.

>>> formats()
['ave', 'csv', 'esc50', 'folder', 'fsdd']
>>> records = load_records("fsdd", Path("data/raw/fsdd"))  # doctest: +SKIP
>>> records.frame.columns.tolist(), records.warnings  # doctest: +SKIP
(['clip_id', 'path', 'label', 'group'], [])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avgate.datasets.base import FORMATS, DatasetFormat, NoOptions, register
from avgate.datasets.checks import COLUMNS, DatasetError, Records, Rejected, check_records
from avgate.datasets.registry import (
    check_sections,
    format_named,
    formats,
    options_of,
    options_table_markdown,
)

__all__ = [
    "FORMATS",
    "DatasetError",
    "DatasetFormat",
    "NoOptions",
    "Records",
    "Rejected",
    "check_sections",
    "format_named",
    "formats",
    "load_records",
    "options_of",
    "options_table_markdown",
    "register",
]


def load_records(fmt: str, root: Path, /, **options: Any) -> Records:
    """Records of the dataset at `root` in the registered format `fmt`, read with `options` (the
    keys of its section `data.<fmt>`; unset ones take their defaults), checked.

    ConfigError names `data.format` or `data.<fmt>.<key>`; DatasetError names the file.
    """
    cls = format_named(fmt)
    checked = options_of(fmt, options)
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder; a {fmt} dataset needs {cls.layout}")
    records = cls().load(root, checked)
    missing = [c for c in COLUMNS if not isinstance(records, Records) or c not in records.frame]
    if missing:
        raise TypeError(
            f"dataset format {fmt!r}: load must return checks.make_records(...) of a frame with "
            f"the columns {list(COLUMNS)}; missing {missing}"
        )
    check_records(records, root, cls.layout)
    return records
