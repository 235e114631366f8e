"""Atomic writes: a killed stage never leaves a half-written file for a later stage to read.

Every writer goes through a temporary sibling that is renamed into place only once complete.

>>> from pathlib import Path; import tempfile
>>> target = Path(tempfile.mkdtemp()) / "report.json"
>>> write_json(target, {"ok": 1})
>>> target.read_text().strip().splitlines()[0]
'{'
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory next to `path`; it replaces `path` when the block succeeds.

    Temporary folders of `path` that a killed run left behind are removed first: one writer
    owns `path` at a time (a DVC stage owns its outputs).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in [*path.parent.glob(f".{path.name}.*.tmp"), path.with_name(f".{path.name}.old")]:
        shutil.rmtree(stale, ignore_errors=True)  # .old: killed between the two renames
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | Path, data: Any) -> None:
    """Write `data` as indented JSON, atomically.

    JSON has no NaN or Infinity: a non-finite number is a ValueError naming the file and the
    keys that hold one, and nothing is written.
    """
    try:
        text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False)
    except ValueError:
        bad = ", ".join(non_finite_keys(data))
        if not bad:
            raise
        raise ValueError(f"{path}: not written: JSON cannot hold NaN or Infinity: {bad}") from None
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")


def non_finite_keys(data: Any, where: str = "") -> list[str]:
    """Where `data` holds a NaN or infinite float, each as `key.sub[index]=value`.

    >>> non_finite_keys({"loss": float("inf"), "runs": [{"f1": 0.5}, {"f1": float("nan")}]})
    ['loss=inf', 'runs[1].f1=nan']
    """
    if isinstance(data, float):
        return [] if math.isfinite(data) else [f"{where or '(value)'}={data}"]
    if isinstance(data, dict):
        items = [(f"{where}.{k}" if where else str(k), v) for k, v in data.items()]
    elif isinstance(data, list | tuple):
        items = [(f"{where}[{i}]", v) for i, v in enumerate(data)]
    else:
        return []
    return [found for key, value in items for found in non_finite_keys(value, key)]


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a DataFrame as parquet without its index, atomically."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a DataFrame as CSV without its index, atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: str | Path) -> Any:
    """Read a JSON file, naming the file and the stage that makes it when it is missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run `dvc repro` to produce it")
    return json.loads(path.read_text())
