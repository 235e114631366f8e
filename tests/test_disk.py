"""A full disk fails a big write with the path, the bytes needed and the bytes free: before the
write where `shutil.disk_usage` says so, at allocation (ENOSPC) where it raced, never with SIGBUS
from a memory map. The tmpfs tests mount a real 60 MB filesystem (root only)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from avgate import disk
from avgate.cli import main
from avgate.embedding_store import EmbeddingStore
from avgate.errors import StageError
from avgate.stages import ingest, split
from tests.conftest import write_params

Usage = namedtuple("Usage", "total used free")
DIM = 128  # logmel with the default 64 mels: mean and std


def reporting_free(monkeypatch, free: int) -> None:
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda path: Usage(10**12, 10**12 - free, free))


def test_a_shard_on_a_full_disk_fails_before_writing_naming_path_needed_and_free(
    tmp_path, monkeypatch
):
    reporting_free(monkeypatch, 1000)
    store = EmbeddingStore(tmp_path, {"encoder": "demo"}, dim=DIM, dtype="float32")
    with pytest.raises(disk.NoSpaceError) as caught, store.shard([("a", 10)]):
        pytest.fail("the block ran on a full disk")
    needed = disk.NPY_HEADER_BYTES + 10 * DIM * 4
    message = str(caught.value)
    assert message.startswith(f"{store.folder}: not enough free space for an embeddings store")
    assert f"needs 5.1 KiB ({needed:,} bytes), 1000 B (1,000 bytes) free" in message
    assert "embed.cache_dir" in message
    assert isinstance(caught.value, StageError)  # the CLI prints it as one line
    assert [p.name for p in store.folder.iterdir()] == [".lock"]


def test_enospc_at_allocation_fails_with_the_message_and_leaves_no_file(tmp_path, monkeypatch):
    reporting_free(monkeypatch, 10**9)  # the check passed, then another writer filled the disk

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(disk.os, "posix_fallocate", full)
    with pytest.raises(disk.NoSpaceError, match=r"^/.*: not enough free space for rows: needs"):
        disk.new_npy(tmp_path / "x.npy", "float32", (1000, 4), "rows")
    assert not (tmp_path / "x.npy").exists()


def test_filesystems_without_fallocate_still_get_the_array(tmp_path, monkeypatch):
    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(disk.os, "posix_fallocate", unsupported)
    array = disk.new_npy(tmp_path / "x.npy", "float16", (3, 2), "rows")
    array[:] = 1
    array.flush()
    assert np.load(tmp_path / "x.npy").tolist() == [[1, 1]] * 3


def test_only_a_full_disk_becomes_a_no_space_error(tmp_path):
    with (
        pytest.raises(disk.NoSpaceError, match="needs 2.0 KiB"),
        disk.no_space_errors(tmp_path, 2048, "a checkpoint"),
    ):
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(PermissionError), disk.no_space_errors(tmp_path, 2048, "a checkpoint"):
        raise PermissionError(errno.EACCES, "Permission denied")


def test_a_checkpoint_write_on_a_full_disk_names_it_and_keeps_the_previous_one(
    tmp_path, monkeypatch
):
    checkpoint = tmp_path / "head.pt"
    disk.write_bytes(checkpoint, b"epoch 1", "a training checkpoint")
    real_write = Path.write_bytes

    def fills_up(self, data):
        real_write(self, data[:3])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", fills_up)
    with pytest.raises(
        disk.NoSpaceError, match=f"^{tmp_path}: .* a training checkpoint: needs 7 B"
    ):
        disk.write_bytes(checkpoint, b"epoch 2", "a training checkpoint")
    assert checkpoint.read_bytes() == b"epoch 1"
    assert [p.name for p in tmp_path.iterdir()] == ["head.pt"]  # no .head.pt.tmp
    reporting_free(monkeypatch, 3)
    with pytest.raises(disk.NoSpaceError, match="needs 7 B .* 3 B .* free"):
        disk.write_bytes(checkpoint, b"epoch 2", "a training checkpoint")


def test_free_bytes_of_a_path_not_made_yet_is_its_parents(tmp_path):
    assert disk.free_bytes(tmp_path / "a/b/c.npy") == shutil.disk_usage(tmp_path).free


@pytest.fixture
def tmpfs(tmp_path):
    """A 60 MB tmpfs, or a skip saying why there is none."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=60m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def fill(folder, leave: int) -> None:
    """Allocate all but `leave` bytes of the filesystem holding `folder`."""
    with open(folder / "filler", "wb") as filler:
        os.posix_fallocate(filler.fileno(), 0, shutil.disk_usage(folder).free - leave)


def test_embed_with_its_cache_on_a_nearly_full_60mb_tmpfs_names_path_and_space(
    project, tmpfs, capsys
):
    fill(tmpfs, leave=64 * 1024)  # less than the small demo's 192 rows of 128 float32
    params = write_params(
        project,
        {"embed": {"encoders": {"logmel": "logmel"}, "workers": 0, "cache_dir": str(tmpfs)}},
    )
    ingest.run(params)
    split.run(params)
    capsys.readouterr()
    assert main(["embed", "--encoder", "logmel"]) == 1
    printed = capsys.readouterr().err.strip()
    print(printed)
    assert printed.count("\n") == 0
    assert printed.startswith(f"avgate embed: error: {tmpfs}/")  # the store's folder in it
    needed = disk.NPY_HEADER_BYTES + 192 * DIM * 4
    assert f"needs 96.1 KiB ({needed:,} bytes)" in printed
    assert "embed.cache_dir" in printed
    assert not list(tmpfs.rglob("*.tmp"))


def test_a_race_past_the_check_fails_at_allocation_on_a_real_tmpfs_not_with_sigbus(
    tmpfs, monkeypatch
):
    fill(tmpfs, leave=1024 * 1024)
    monkeypatch.setattr(disk, "ensure_free", lambda *args, **kwargs: None)
    with pytest.raises(disk.NoSpaceError, match="needs 4.0 MiB") as caught:
        disk.new_npy(tmpfs / "big.npy", "float32", (1024, 1024), "rows")
    assert "free" in str(caught.value)
    assert not (tmpfs / "big.npy").exists()
