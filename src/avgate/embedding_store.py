"""A content-addressed store of per-second embeddings, so each clip is embedded once per encoder.

Rows are keyed by (the clip file's sha256, its number of seconds) inside a folder named by the
hash of the encoder's identity, dims and dtype: change the encoder's weights, layer or resolution
and it is a new folder; change a clip's bytes and it is a new key. The store is a few big files,
never one file per clip: each run that embeds something adds one shard, `<name>.npy` (rows) plus
`<name>.index.parquet` (sha256, seconds, first row). A shard counts only once its index exists,
and the index is written last by rename, so a killed run leaves nothing half-read.

>>> import tempfile
>>> store = EmbeddingStore(tempfile.mkdtemp(), {"encoder": "demo"}, dim=2, dtype="float32")
>>> store.missing([("a", 2), ("b", 1), ("a", 2)])
[('a', 2), ('b', 1)]
>>> with store.shard([("a", 2)]) as write:
...     write(0, np.ones((2, 2), dtype=np.float32))
>>> store.missing([("a", 2), ("b", 1)])
[('b', 1)]
>>> store.rows("a", 2).tolist()
[[1.0, 1.0], [1.0, 1.0]]
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap

Key = tuple[str, int]
STALE_AFTER_S = 3600
DTYPES = ("float32", "float16")


class EmbeddingStore:
    """Embeddings of one encoder configuration under `root/<identity hash>/`."""

    def __init__(self, root: str | Path, identity: dict, dim: int, dtype: str) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        described = json.dumps({"identity": identity, "dim": dim, "dtype": dtype}, sort_keys=True)
        self.folder = Path(root) / hashlib.sha256(described.encode()).hexdigest()[:20]
        self.dim = dim
        self.dtype = dtype
        self._where: dict[Key, tuple[str, int]] | None = None
        self._arrays: dict[str, np.ndarray] = {}

    def _index(self) -> dict[Key, tuple[str, int]]:
        if self._where is None:
            self._where = {}
            for path in sorted(self.folder.glob("*.index.parquet")):
                shard = path.name.removesuffix(".index.parquet")
                table = pd.read_parquet(path)
                for sha, seconds, row in table[["sha256", "seconds", "row"]].itertuples(False):
                    self._where.setdefault((sha, int(seconds)), (shard, int(row)))
        return self._where

    def missing(self, keys: list[Key]) -> list[Key]:
        """The keys not in the store yet, each once, in first-seen order."""
        found = self._index()
        return list(dict.fromkeys(k for k in keys if k not in found))

    def rows(self, sha256: str, seconds: int) -> np.ndarray:
        """The (seconds, dim) rows stored for one clip."""
        shard, row = self._index()[(sha256, seconds)]
        if shard not in self._arrays:
            self._arrays[shard] = np.load(self.folder / f"{shard}.npy", mmap_mode="r")
        return self._arrays[shard][row : row + seconds]

    def _remove_stale_temporaries(self) -> None:
        """Temporary shard files of killed runs (untouched for an hour; a live rank's are not)."""
        cutoff = time.time() - STALE_AFTER_S
        for temp in self.folder.glob(".shard-*.tmp"):
            if temp.stat().st_mtime < cutoff:
                temp.unlink(missing_ok=True)

    @contextmanager
    def shard(self, keys: list[Key]) -> Iterator[Callable[[int, np.ndarray], None]]:
        """Write one new shard holding `keys`: yields `write(i, rows)` for the i-th key.

        The shard becomes visible only when the block ends without error.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temporaries()
        name = f"shard-{uuid.uuid4().hex[:12]}"
        starts = np.cumsum([0, *(seconds for _, seconds in keys)])
        array_path = self.folder / f"{name}.npy"
        temp = self.folder / f".{name}.npy.tmp"
        array = open_memmap(temp, mode="w+", dtype=self.dtype, shape=(int(starts[-1]), self.dim))
        written = np.zeros(len(keys), dtype=bool)

        def write(i: int, rows: np.ndarray) -> None:
            if rows.shape != (keys[i][1], self.dim):
                expected = (keys[i][1], self.dim)
                raise ValueError(f"rows for key {i} have shape {rows.shape}, expected {expected}")
            array[starts[i] : starts[i + 1]] = rows
            written[i] = True

        try:
            yield write
            if not written.all():
                raise RuntimeError(f"shard {name}: {int((~written).sum())} clips were not written")
            array.flush()
            os.replace(temp, array_path)
            table = pd.DataFrame(
                {
                    "sha256": [k[0] for k in keys],
                    "seconds": [k[1] for k in keys],
                    "row": starts[:-1],
                }
            )
            index_temp = self.folder / f".{name}.index.parquet.tmp"
            table.to_parquet(index_temp, index=False)
            os.replace(index_temp, self.folder / f"{name}.index.parquet")
        finally:
            temp.unlink(missing_ok=True)
        self._where = None
