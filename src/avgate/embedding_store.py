"""A content-addressed store of per-second embeddings, so each clip is embedded once per encoder.

Rows are keyed by (the clip file's sha256, its number of seconds) inside a folder named by the
hash of the encoder's identity, dims and dtype: change the encoder's weights, layer or resolution
and it is a new folder; change a clip's bytes and it is a new key. The store is a few big files,
never one file per clip: each run that embeds something adds one shard, `<name>.npy` (rows) plus
`<name>.index.parquet` (sha256, seconds, first row). A shard counts only once its index exists,
and the index is written last by rename, so a killed run leaves nothing half-read. Each writer
holds a lock (flock) on its shard's rows until the shard is complete; the next writer removes
the files of shards whose writer is gone, at once, however recent.

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

import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from avgate import disk

Key = tuple[str, int]
DTYPES = ("float32", "float16")
LOCK = ".lock"  # held while a writer creates its shard's files, or removes a killed writer's
HINT = "free space there, or set embed.cache_dir to a folder on a larger disk"


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

    @contextmanager
    def shard(self, keys: list[Key]) -> Iterator[Callable[[int, np.ndarray], None]]:
        """Write one new shard holding `keys`: yields `write(i, rows)` for the i-th key.

        The shard becomes visible only when the block ends without error; otherwise its files
        are removed. Its space is reserved first: a disk too small fails with NoSpaceError.
        """
        files = ShardFiles(self.folder, f"shard-{uuid.uuid4().hex[:12]}")
        starts = np.cumsum([0, *(seconds for _, seconds in keys)])
        shape = (int(starts[-1]), self.dim)
        size = disk.npy_bytes(self.dtype, shape)
        what = f"an embeddings store shard of {len(keys)} clips"
        written = np.zeros(len(keys), dtype=bool)
        with self._claimed(files):
            array = disk.new_npy(files.rows_temp, self.dtype, shape, what, HINT)

            def write(i: int, rows: np.ndarray) -> None:
                if rows.shape != (keys[i][1], self.dim):
                    expected = (keys[i][1], self.dim)
                    raise ValueError(
                        f"rows for key {i} have shape {rows.shape}, expected {expected}"
                    )
                array[starts[i] : starts[i + 1]] = rows
                written[i] = True

            yield write
            if not written.all():
                missing = int((~written).sum())
                raise RuntimeError(f"{files.rows.stem}: {missing} clips were not written")
            table = pd.DataFrame({"sha256": [k[0] for k in keys],
                                  "seconds": [k[1] for k in keys], "row": starts[:-1]})  # fmt: skip
            with disk.no_space_errors(files.rows_temp, size, what, HINT):
                array.flush()
                files.commit(table)
        self._where = None

    @contextmanager
    def _claimed(self, files: ShardFiles) -> Iterator[None]:
        """Create the shard's rows temporary, locked by this process until the block ends, and
        remove the shard's files then unless it was committed. First, under the folder's lock,
        remove what killed writers left (a live writer's files are locked)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for stale in leftovers(self.folder):
                stale.remove()
            owner = os.open(files.rows_temp, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o644)
            fcntl.flock(owner, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if not files.index.exists():
                files.remove()
            os.close(owner)


class ShardFiles:
    """The files of shard `name`: its rows and index, and their temporaries while written."""

    def __init__(self, folder: Path, name: str) -> None:
        self.rows = folder / f"{name}.npy"
        self.index = folder / f"{name}.index.parquet"
        self.rows_temp = folder / f".{name}.npy.tmp"
        self.index_temp = folder / f".{name}.index.parquet.tmp"

    def writer_alive(self) -> bool:
        """True while the process writing the shard holds the lock on its rows."""
        rows = self.rows_temp if self.rows_temp.exists() else self.rows
        try:
            fd = os.open(rows, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # releases the lock where this took it
        return False

    def commit(self, table: pd.DataFrame) -> None:
        """Write the index and rename the rows, then the index, into place: the shard counts
        from that last rename on."""
        table.to_parquet(self.index_temp, index=False)
        os.replace(self.rows_temp, self.rows)
        os.replace(self.index_temp, self.index)

    def remove(self) -> None:
        """Delete everything of the shard but a complete shard's rows."""
        for path in (self.rows_temp, self.index_temp):
            path.unlink(missing_ok=True)
        if not self.index.exists():
            self.rows.unlink(missing_ok=True)


def leftovers(folder: Path) -> list[ShardFiles]:
    """Shards whose writer was killed: temporaries, or rows without an index, and no live
    writer holding their lock."""
    names = {p.name[1:].split(".")[0] for p in folder.glob(".shard-*.tmp")}
    names |= {p.stem for p in folder.glob("shard-*.npy")
              if not p.with_name(f"{p.stem}.index.parquet").exists()}  # fmt: skip
    shards = [ShardFiles(folder, name) for name in sorted(names)]
    return [shard for shard in shards if not shard.writer_alive()]
