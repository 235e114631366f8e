"""Datasets that avgate can read (one adapter per source format) or build (the demo).

`load_records` picks the adapter by name, runs it, and applies the checks every dataset must
pass; it never writes under the dataset root.

>>> records = load_records("fsdd", Path("data/raw/fsdd"))  # doctest: +SKIP
>>> records.frame.columns.tolist(), records.warnings  # doctest: +SKIP
(['clip_id', 'path', 'label', 'group'], [])
"""

from __future__ import annotations

from pathlib import Path

from avgate.datasets import ave, csv_manifest, esc50, folder, fsdd
from avgate.datasets.checks import DatasetError, Records, Rejected, check_records

__all__ = ["FORMATS", "DatasetError", "Records", "Rejected", "load_records"]

_ADAPTERS = {"ave": ave, "esc50": esc50, "fsdd": fsdd, "folder": folder, "csv": csv_manifest}
FORMATS = tuple(_ADAPTERS)


def load_records(
    fmt: str, root: Path, group_pattern: str | None = None, manifest: str = "manifest.csv"
) -> Records:
    """Records of the dataset at `root` in format `fmt` (one of FORMATS), checked.

    `group_pattern` applies to the folder format, `manifest` to the csv format.
    """
    if fmt not in _ADAPTERS:
        raise DatasetError(f"unknown dataset format {fmt!r}; choose one of {list(FORMATS)}")
    adapter = _ADAPTERS[fmt]
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder; a {fmt} dataset needs {adapter.LAYOUT}")
    options = {"folder": {"group_pattern": group_pattern}, "csv": {"manifest": manifest}}
    records = adapter.load(root, **options.get(fmt, {}))
    check_records(records, root, adapter.LAYOUT)
    if group_pattern and fmt != "folder":
        ignored = f"group_pattern {group_pattern!r} is ignored: it applies to the folder format"
        return Records(records.frame, [*records.warnings, ignored], records.rejected)
    return records
