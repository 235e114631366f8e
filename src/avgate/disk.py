"""Free space before big writes: a full disk fails with the path, the bytes needed and the bytes
free, never with SIGBUS from a memory map or a raw ENOSPC traceback.

Writes through a memory map (`numpy.memmap`) get their blocks from the filesystem only when a
page is written back; on a full disk that kills the process with SIGBUS. `new_npy` reserves the
file's blocks (`os.posix_fallocate`) before mapping it, so a full disk fails at once instead.

>>> human(1536), human(73 * 2**20)
('1.5 KiB', '73.0 MiB')
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from avgate.errors import StageError

NPY_HEADER_BYTES = 128  # numpy's .npy header for a 2-D array (padded to 64 bytes; 128 at most)
FREE_SPACE = "free space on that disk"
UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


class NoSpaceError(StageError):
    """Not enough free space for a write; the message names the path, needed and free bytes."""

    def __init__(self, path: str | Path, what: str, needed: int, free: int, hint: str) -> None:
        super().__init__(
            f"{path}: not enough free space for {what}: needs {amount(needed)}, "
            f"{amount(free)} free; {hint}"
        )
        self.path = Path(path)
        self.needed = needed
        self.free = free


def human(n_bytes: int) -> str:
    """A byte count in binary units, one decimal."""
    power = min((max(n_bytes, 1).bit_length() - 1) // 10, len(UNITS) - 1)
    return f"{n_bytes} B" if power == 0 else f"{n_bytes / 1024**power:.1f} {UNITS[power]}"


def amount(n_bytes: int) -> str:
    """'73.0 MiB (76,546,048 bytes)'."""
    return f"{human(n_bytes)} ({n_bytes:,} bytes)"


def free_bytes(path: str | Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding `path` (or, where
    `path` does not exist yet, its nearest existing parent)."""
    existing = Path(path).absolute()
    while not existing.exists():
        existing = existing.parent
    return shutil.disk_usage(existing).free


def ensure_free(path: str | Path, needed_bytes: int, what: str, hint: str = FREE_SPACE) -> None:
    """Raise NoSpaceError unless the filesystem holding `path` has `needed_bytes` free."""
    free = free_bytes(path)
    if free < needed_bytes:
        raise NoSpaceError(path, what, needed_bytes, free, hint)


@contextmanager
def no_space_errors(
    path: str | Path, needed_bytes: int, what: str, hint: str = FREE_SPACE
) -> Iterator[None]:
    """Turn ENOSPC (and EDQUOT, a full quota) raised in the block into NoSpaceError."""
    try:
        yield
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise NoSpaceError(path, what, needed_bytes, free_bytes(path), hint) from error


def write_bytes(
    path: str | Path, data: bytes | memoryview, what: str, hint: str = FREE_SPACE
) -> None:
    """Write `data` to `path` through `.<name>.tmp`, renamed into place, once the disk is known
    to hold it. A full disk raises NoSpaceError and leaves no temporary behind.

    For a checkpoint, serialise into memory first (`torch.save(state, io.BytesIO())`): the exact
    size is known before anything is written, and a disk that fills meanwhile fails this plain
    write with ENOSPC rather than torch's `unexpected pos`.
    """
    path = Path(path)
    temp = path.with_name(f".{path.name}.tmp")
    ensure_free(path.parent, len(data), what, hint)
    try:
        with no_space_errors(path.parent, len(data), what, hint):
            temp.write_bytes(data)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    os.replace(temp, path)


def _reserve(path: str | Path) -> None:
    """Allocate every block of the existing file `path`, so that writes through a memory map of
    it cannot run out of space. Filesystems without fallocate (EOPNOTSUPP) are left as they are:
    `ensure_free` checked them."""
    size = os.path.getsize(path)
    if size == 0:
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as error:
        if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
    finally:
        os.close(fd)


def npy_bytes(dtype: str, shape: tuple[int, ...]) -> int:
    """Size of a .npy file holding an array of `dtype` and `shape` (header included)."""
    return NPY_HEADER_BYTES + int(np.prod(shape)) * np.dtype(dtype).itemsize


def new_npy(
    path: str | Path, dtype: str, shape: tuple[int, ...], what: str, hint: str = FREE_SPACE
) -> np.memmap:
    """A new .npy file at `path`, its space checked and reserved, memory-mapped for writing.

    Raises NoSpaceError naming the file's folder (and leaves no file) when the disk cannot hold it.
    """
    folder, needed = Path(path).parent, npy_bytes(dtype, shape)
    ensure_free(folder, needed, what, hint)
    try:
        with no_space_errors(folder, needed, what, hint):
            open_memmap(path, mode="w+", dtype=dtype, shape=shape)  # the header, a sparse body
            _reserve(path)
    except NoSpaceError:
        Path(path).unlink(missing_ok=True)
        raise
    return open_memmap(path, mode="r+")
