"""`embed@<encoder>`: one array per split, rows = (clip, second), aligned with an index.

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
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from numpy.lib.format import open_memmap
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from avgate import media, numerics
from avgate.config import Params
from avgate.embedding_store import EmbeddingStore, Key
from avgate.encoders import Encoder, build
from avgate.files import atomic_dir, write_json, write_parquet
from avgate.stages.inputs import SPLITS, embedding_dir, usable_clips
from avgate.stages.profile import recorded

LOAD_CHUNK = 16  # clips per worker message: one message per clip costs more than a short decode
MAIN_KEEPS_UP_WITH = 2  # workers whose decoded audio one CPU core log-mels as fast (bench/embed)


def in_main(encoder: Encoder, workers: int) -> bool:
    """True where the encoder's `embed` runs in the main process (on `device`) on loaded clips:
    always for a model; for a `light` transform, on a GPU, or on a CPU core the workers leave
    free as long as it keeps up with them (up to MAIN_KEEPS_UP_WITH workers; with more, each
    worker transforms what it decodes).
    """
    if not getattr(encoder, "batched", False):
        return False
    if not light_on_cpu(encoder):
        return True
    return workers < usable_cores() and workers <= MAIN_KEEPS_UP_WITH


def light_on_cpu(encoder: Encoder) -> bool:
    """A light transform (no model) computed on the CPU."""
    return getattr(encoder, "light", False) and encoder.device.type == "cpu"


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

    def __getitem__(self, c: int) -> list[tuple[int, np.ndarray]]:
        members, encoder = self.chunks[c], self.encoder
        if not getattr(encoder, "batched", False):
            return [(i, encoder.embed_seconds(self.paths[i], self.seconds[i])) for i in members]
        loaded = [encoder.load(self.paths[i], self.seconds[i]) for i in members]
        return list(zip(members, loaded if self.main else encoder.embed(loaded), strict=True))


def _one_thread(_: int) -> None:
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
        worker_init_fn=_one_thread,
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
    """Embed this rank's share of the clips the store lacks; return how many all ranks embed."""
    keys = clip_keys(clips)
    missing = store.missing(keys)
    mine = missing[rank::world]
    if mine:
        first_path = {}
        for key, path in zip(keys, clips["path"], strict=True):
            first_path.setdefault(key, path)
        with store.shard(mine) as write:
            embed_clips(
                [first_path[key] for key in mine],
                [s for _, s in mine],
                encoder,
                write,
                params.embed.workers,
                params.embed.batch_seconds,
                f"embed {encoder.name} rank {rank}/{world}",
            )
    return len(missing)


def write_split(store: EmbeddingStore, clips: pd.DataFrame, out: Path) -> pd.DataFrame:
    """Copy the split's rows from the store into `out` (.npy) in clip order; return the index."""
    keys = clip_keys(clips)
    seconds = [s for _, s in keys]
    starts = np.cumsum([0, *seconds])
    array = open_memmap(out, mode="w+", dtype=store.dtype, shape=(int(starts[-1]), store.dim))
    for i, key in enumerate(keys):
        array[starts[i] : starts[i + 1]] = store.rows(*key)
    array.flush()
    del array
    return pd.DataFrame(
        {
            "clip_id": np.repeat(clips["clip_id"].to_numpy(), seconds),
            "t": np.concatenate([np.arange(n) for n in seconds]) if seconds else [],
        }
    )


def run(params: Params, encoder_name: str) -> dict | None:
    """Embed every split with one encoder into data/embeddings/<encoder>/ (rank 0 writes).

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
        "dtype": dtype,
        "rows": {},
    }
    for key in ("n_layers", "layer_dim"):
        if hasattr(encoder, key):
            meta[key] = getattr(encoder, key)
    with (
        recorded(f"embed/{encoder_name}") as profile,
        atomic_dir(embedding_dir(encoder_name)) as tmp,
    ):
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
            device=str(getattr(encoder, "device", "cpu")),
            clips=len(clips),
            embedded=embedded,
            reused=unique - embedded,
            seconds=round(seconds, 3),
            embedded_clips_per_s=round(embedded / seconds, 2) if seconds else None,
            store=str(store.folder),
        )
    return meta
