"""`embed@<name>`: one array per split, rows = (clip, second), aligned with an index.

`<name>` is an encoder listed in `embed.encoders` (name: kind); `encoders.registry.build` makes it
from its kind and the options in `embed.<name>`, importing only that kind's module.

Each clip is embedded once per encoder configuration: the embeddings store
(`embed.cache_dir`, keyed by the clip's sha256 and the encoder's identity) keeps every clip
ever embedded, so after adding or changing clips a re-run embeds only those and copies the rest.
Clips are decoded in DataLoader worker processes; encoders with a model (`batched`) embed in the
main process on `embed.device`, in batches of about `embed.batch_seconds` seconds of media. A
light transform (`logmel`) runs there too when the main process has a core or a GPU of its own,
so decoding and transforming overlap; otherwise the workers transform what they decode.

Under `torchrun --nproc_per_node=N avgate embed --encoder X` each rank embeds its share of the
missing clips into a shard of its own; rank 0 then writes the split arrays in index order, so
the result equals the single-process run's.

Faults name their cause: a disk without room for a shard or the arrays fails before writing
(the path, the bytes needed and free), a NaN or Inf in an embedding fails naming the clip, a
visual encoder on audio-only clips names a clip and the fix, and the workers exit when the main
process dies.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from avgate import disk, media, numerics
from avgate.config import Params
from avgate.embedding_store import EmbeddingStore, Key
from avgate.encoders.base import Encoder
from avgate.encoders.registry import build
from avgate.errors import StageError
from avgate.files import atomic_dir, write_json, write_parquet
from avgate.layout.clips import SPLITS, embedding_dir, usable_clips
from avgate.parallel import die_with_parent
from avgate.profiles import recorded

LOAD_CHUNK = 16  # clips per worker message: one message per clip costs more than a short decode
MAIN_KEEPS_UP_WITH = 2  # workers whose decoded audio one CPU core log-mels as fast (bench/embed)


def in_main(encoder: Encoder, workers: int) -> bool:
    """True where the encoder's `embed` runs in the main process (on `device`) on loaded clips:
    always for a model; for a `light` transform, on a GPU, or on a CPU core the workers leave
    free as long as it keeps up with them (up to MAIN_KEEPS_UP_WITH workers; with more, each
    worker transforms what it decodes).
    """
    if not encoder.batched:
        return False
    if not light_on_cpu(encoder):
        return True
    return workers < usable_cores() and workers <= MAIN_KEEPS_UP_WITH


def light_on_cpu(encoder: Encoder) -> bool:
    """A light transform (no model) computed on the CPU."""
    return encoder.light and encoder.device.type == "cpu"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0))


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with `count` torch threads in this process."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Failed:
    """A MediaError raised in a worker, carried to the main process to be raised there as one
    line (DataLoader would wrap it in a RuntimeError with the worker's traceback)."""

    path: str
    reason: str


class ClipChunks(Dataset):
    """Item c: [(i, rows)] for the clips of chunk c, where rows are the clip's embedding, or the
    clip as `encoder.load` decodes it when `main` (the encoder runs in the main process).

    Otherwise a worker embeds a whole chunk at once, so a light batched encoder batches there.
    """

    def __init__(self, paths: list[str], seconds: list[int], encoder: Encoder, main: bool) -> None:
        self.paths = paths
        self.seconds = seconds
        self.encoder = encoder
        self.main = main
        self.chunks = [
            range(i, min(i + LOAD_CHUNK, len(paths))) for i in range(0, len(paths), LOAD_CHUNK)
        ]

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, c: int) -> list[tuple[int, np.ndarray]] | Failed:
        try:
            return self._chunk(self.chunks[c])
        except media.MediaError as error:
            return Failed(str(error.path), error.reason)

    def _chunk(self, members: range) -> list[tuple[int, np.ndarray]]:
        encoder = self.encoder
        if not encoder.batched:
            return [(i, encoder.embed_seconds(self.paths[i], self.seconds[i])) for i in members]
        loaded = [encoder.load(self.paths[i], self.seconds[i]) for i in members]
        return list(zip(members, loaded if self.main else encoder.embed(loaded), strict=True))


def _init_worker(parent: int, _: int) -> None:
    """A DataLoader worker: one torch thread; it exits when the main process dies."""
    die_with_parent(parent)
    torch.set_num_threads(1)


def _as_is(chunk: list[tuple[int, np.ndarray]]) -> list[tuple[int, np.ndarray]]:
    """Keep a chunk's arrays as they are: DataLoader's default turns each into a tensor in its own
    shared-memory segment, which costs more than a short clip's decode and transform."""
    return chunk


def _batches(
    loader: DataLoader, seconds: list[int], batch_seconds: int
) -> Iterator[list[tuple[int, np.ndarray]]]:
    """Consecutive loaded clips grouped until they hold at least `batch_seconds` seconds."""
    batch, total = [], 0
    for chunk in loader:
        if isinstance(chunk, Failed):
            raise media.MediaError(chunk.path, chunk.reason)
        for item in chunk:
            batch.append(item)
            total += seconds[item[0]]
            if total >= batch_seconds:
                yield batch
                batch, total = [], 0
    if batch:
        yield batch


def embed_clips(
    paths: list[str],
    seconds: list[int],
    encoder: Encoder,
    write: Callable[[int, np.ndarray], None],
    workers: int,
    batch_seconds: int,
    desc: str,
) -> None:
    """Embed every clip, calling `write(i, rows)` with clip i's (seconds, dim) rows."""
    main = in_main(encoder, workers)
    threads = torch.get_num_threads()
    if not main:
        batch_seconds = 1  # the workers embedded: pass each clip on as it comes
    elif light_on_cpu(encoder):
        batch_seconds = LOAD_CHUNK  # larger batches gain a light CPU transform nothing
        threads = 1  # the workers are busy decoding: more threads would spin against them
    dataset = ClipChunks(paths, seconds, encoder, main)
    ahead = {"prefetch_factor": prefetch(seconds, batch_seconds, workers)} if workers else {}
    loader = DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        worker_init_fn=functools.partial(_init_worker, os.getpid()),
        collate_fn=_as_is,
        **ahead,
    )
    with tqdm(total=len(paths), desc=desc, unit="clip") as bar, torch_threads(threads):
        for batch in _batches(loader, seconds, batch_seconds):
            rows = encoder.embed([x for _, x in batch]) if main else [x for _, x in batch]
            for (i, _), clip_rows in zip(batch, rows, strict=True):
                write(i, np.asarray(clip_rows))
            bar.update(len(batch))


def prefetch(seconds: list[int], batch_seconds: int, workers: int) -> int:
    """Chunks each worker may load ahead: enough for the workers to go on decoding a whole batch
    while the main process embeds the last one (with torch's default of 2, a worker waits).

    >>> prefetch([1] * 160, 64, 1)  # 16-s chunks, 4 to a batch
    5
    """
    chunk_seconds = max(1.0, sum(seconds) / max(1, math.ceil(len(seconds) / LOAD_CHUNK)))
    per_batch = math.ceil(batch_seconds / chunk_seconds)
    return max(2, math.ceil((per_batch + 1) / workers))


def _rank() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


def clip_keys(clips: pd.DataFrame) -> list[Key]:
    """(content sha256, whole seconds) of each clip: what its embedding depends on."""
    return [
        (sha, media.seconds_in(d))
        for sha, d in zip(clips["sha256"], clips["duration_s"], strict=True)
    ]


def fill_store(
    store: EmbeddingStore,
    clips: pd.DataFrame,
    encoder: Encoder,
    params: Params,
    rank: int,
    world: int,
) -> int:
    """Embed this rank's share of the clips the store lacks; return how many all ranks embed.

    A clip whose embedding holds NaN or Inf fails the run with a StageError naming it.
    """
    keys = clip_keys(clips)
    missing = store.missing(keys)
    mine = missing[rank::world]
    if mine:
        paths, names = {}, {}
        for key, path, name in zip(keys, clips["path"], clip_names(clips), strict=True):
            paths.setdefault(key, path)
            names.setdefault(key, name)
        with store.shard(mine) as write:

            def checked(i: int, rows: np.ndarray) -> None:
                write(i, finite(rows, store.dtype, names[mine[i]], encoder.name))

            embed_clips(
                [paths[key] for key in mine],
                [s for _, s in mine],
                encoder,
                checked,
                params.embed.workers,
                params.embed.batch_seconds,
                f"embed {encoder.name} rank {rank}/{world}",
            )
    return len(missing)


def clip_names(clips: pd.DataFrame) -> list[str]:
    """'<path> (clip <clip_id>)' for each clip, as errors name it."""
    return [f"{p} (clip {c})" for p, c in zip(clips["path"], clips["clip_id"], strict=True)]


def nonfinite(rows: np.ndarray) -> str:
    """'' when every value is finite, else how many are NaN and infinite, and in which seconds.

    >>> nonfinite(np.array([[0.0, np.nan], [np.inf, np.nan]]))
    '2 NaN and 1 infinite values (seconds 0, 1)'
    """
    bad = ~np.isfinite(rows)
    if not bad.any():
        return ""
    nan = int(np.isnan(rows).sum())
    seconds = np.flatnonzero(bad.reshape(len(rows), -1).any(axis=1))
    return (
        f"{nan} NaN and {int(bad.sum()) - nan} infinite values "
        f"(seconds {', '.join(map(str, seconds[:10]))}{', ...' if len(seconds) > 10 else ''})"
    )


def finite(rows: np.ndarray, dtype: str, clip: str, encoder: str) -> np.ndarray:
    """`rows` as stored (`dtype`); a StageError naming `clip` when any of them is NaN or Inf."""
    with np.errstate(over="ignore"):  # an overflow is reported below, naming the clip
        stored = rows.astype(dtype, copy=False)
    problem = nonfinite(stored)
    if not problem:
        return stored
    cause = (
        f"values beyond {dtype}'s range: set embed.dtype to float32"
        if not nonfinite(rows)
        else "check the file's samples (embed stores no NaN or Inf)"
    )
    raise StageError(f"{clip}: the {encoder} embedding holds {problem}; {cause}")


def require_video(clips: pd.DataFrame, encoder: Encoder) -> None:
    """A MediaError naming an audio-only clip when `encoder` reads video frames."""
    if encoder.modality != "visual":
        return
    audio_only = clips.loc[~clips["has_video"].astype(bool), "path"]
    if len(audio_only):
        raise media.MediaError(
            audio_only.iloc[0],
            f"no video stream ({len(audio_only)} of {len(clips)} clips have none), and the "
            f"{encoder.name} encoder reads video frames: use an audio encoder, or leave "
            f"{encoder.name} out of embed.encoders",
        )


def split_bytes(store: EmbeddingStore, clips: pd.DataFrame) -> int:
    """Bytes of the arrays `write_split` writes for every split of `clips`."""
    rows = sum(seconds for _, seconds in clip_keys(clips))
    return (
        disk.npy_bytes(store.dtype, (rows, store.dim)) + (len(SPLITS) - 1) * disk.NPY_HEADER_BYTES
    )


def write_split(store: EmbeddingStore, clips: pd.DataFrame, out: Path) -> pd.DataFrame:
    """Copy the split's rows from the store into `out` (.npy) in clip order; return the index."""
    keys = clip_keys(clips)
    seconds = [s for _, s in keys]
    starts = np.cumsum([0, *seconds])
    shape = (int(starts[-1]), store.dim)
    array = disk.new_npy(out, store.dtype, shape, f"the {out.stem} embeddings")
    for i, (key, name) in enumerate(zip(keys, clip_names(clips), strict=True)):
        rows = store.rows(*key)
        if problem := nonfinite(rows):
            raise StageError(
                f"{name}: the embeddings store {store.folder} holds {problem} for it (written "
                "before embed checked): delete that folder and re-run"
            )
        array[starts[i] : starts[i + 1]] = rows
    array.flush()
    del array
    return pd.DataFrame(
        {
            "clip_id": np.repeat(clips["clip_id"].to_numpy(), seconds),
            "t": np.concatenate([np.arange(n) for n in seconds]) if seconds else [],
        }
    )


def run(params: Params, encoder_name: str) -> dict | None:
    """Embed every split with the encoder `encoder_name` of `embed.encoders` into
    data/embeddings/<encoder_name>/ (rank 0 writes).

    `meta.json` there holds only what decides the arrays (encoder identity, dims, dtype, row
    counts), so identical embeddings hash identically; wall time, clips embedded and reused go
    to data/profiles/embed/<encoder>.json.
    """
    rank, world = _rank()
    if world > 1:
        torch.distributed.init_process_group("gloo")
    try:
        return _run(params, encoder_name, rank, world)
    finally:
        if world > 1:
            torch.distributed.destroy_process_group()


def _run(params: Params, encoder_name: str, rank: int, world: int) -> dict | None:
    numerics.pin_torch()
    encoder = build(encoder_name, params.embed)
    clips = usable_clips(params)
    require_video(clips, encoder)
    dtype = params.embed.dtype
    identity = encoder.identity() | {"cpu_kernels": numerics.PINNED}
    store = EmbeddingStore(params.embed.cache_dir, identity, encoder.dim, dtype)
    t0 = time.perf_counter()
    embedded = fill_store(store, clips, encoder, params, rank, world)
    _barrier(world)
    if rank != 0:
        return None
    meta = {
        **identity,
        "modality": encoder.modality,
        "dim": encoder.dim,
        "n_layers": encoder.n_layers,
        "layer_dim": encoder.layer_dim,
        "dtype": dtype,
        "rows": {},
    }
    out, needed = embedding_dir(encoder_name), split_bytes(store, clips)
    what = f"the {encoder_name} embedding arrays"
    with (
        recorded(f"embed/{encoder_name}") as profile,
        atomic_dir(out) as tmp,  # removes what a killed run left there first
        disk.no_space_errors(out, needed, what),
    ):
        disk.ensure_free(out, needed, what)
        for split in SPLITS:
            index = write_split(store, clips[clips["split"] == split], tmp / f"{split}.npy")
            write_parquet(index, tmp / f"{split}.index.parquet")
            meta["rows"][split] = len(index)
        write_json(tmp / "meta.json", meta)
        seconds = time.perf_counter() - t0
        unique = len(set(clip_keys(clips)))
        profile.update(
            encoder=encoder_name,
            workers=params.embed.workers,
            processes=world,
            device=str(encoder.device),
            clips=len(clips),
            embedded=embedded,
            reused=unique - embedded,
            seconds=round(seconds, 3),
            embedded_clips_per_s=round(embedded / seconds, 2) if seconds else None,
            store=str(store.folder),
        )
    return meta
