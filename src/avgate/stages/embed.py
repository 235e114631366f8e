"""`embed@<encoder>`: one float32 array per split, rows = (clip, second), aligned with an index.

Clips are decoded and embedded in DataLoader worker processes and written, in index order, into
a preallocated `.npy` memmap, so memory stays flat whatever the corpus size.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from numpy.lib.format import open_memmap
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from avgate import media
from avgate.config import Params
from avgate.encoders import Encoder, build
from avgate.files import atomic_dir, write_json, write_parquet
from avgate.stages.inputs import SPLITS, embedding_dir, usable_clips
from avgate.stages.profile import recorded


class ClipEmbeddings(Dataset):
    """Map-style dataset: item i is the (n_seconds, dim) embedding of clip i."""

    def __init__(self, clips: pd.DataFrame, encoder: Encoder) -> None:
        self.paths = list(clips["path"])
        self.seconds = [media.seconds_in(d) for d in clips["duration_s"]]
        self.encoder = encoder

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.encoder.embed_seconds(self.paths[i], self.seconds[i])


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)


def embed_split(clips: pd.DataFrame, encoder: Encoder, out: Path, workers: int) -> pd.DataFrame:
    """Embed `clips` into `out` (.npy); return the index (clip_id, t) of its rows."""
    dataset = ClipEmbeddings(clips, encoder)
    rows = np.cumsum([0, *dataset.seconds])
    array = open_memmap(out, mode="w+", dtype=np.float32, shape=(int(rows[-1]), encoder.dim))
    loader = DataLoader(dataset, batch_size=None, num_workers=workers, worker_init_fn=_one_thread)
    bar = tqdm(loader, total=len(dataset), desc=f"embed {encoder.name} {out.stem}", unit="clip")
    for i, features in enumerate(bar):
        array[rows[i] : rows[i + 1]] = np.asarray(features)
    array.flush()
    del array
    return pd.DataFrame(
        {
            "clip_id": np.repeat(clips["clip_id"].to_numpy(), dataset.seconds),
            "t": np.concatenate([np.arange(n) for n in dataset.seconds]),
        }
    )


def run(params: Params, encoder_name: str) -> dict:
    """Embed every split with one encoder into data/embeddings/<encoder>/.

    `meta.json` there holds only what decides the arrays (encoder identity, dims, row counts), so
    identical embeddings hash identically; wall time and throughput go to
    data/profiles/embed/<encoder>.json.
    """
    encoder = build(encoder_name, params.embed)
    clips = usable_clips(params)
    meta = {
        **encoder.identity(),
        "modality": encoder.modality,
        "dim": encoder.dim,
        "dtype": "float32",
        "rows": {},
    }
    with (
        recorded(f"embed/{encoder_name}") as profile,
        atomic_dir(embedding_dir(encoder_name)) as tmp,
    ):
        profile.update(encoder=encoder_name, workers=params.embed.workers, splits={})
        for split in SPLITS:
            part = clips[clips["split"] == split]
            t0 = time.perf_counter()
            index = embed_split(part, encoder, tmp / f"{split}.npy", params.embed.workers)
            write_parquet(index, tmp / f"{split}.index.parquet")
            seconds = time.perf_counter() - t0
            meta["rows"][split] = len(index)
            profile["splits"][split] = {
                "clips": len(part),
                "seconds": round(seconds, 3),
                "clips_per_s": round(len(part) / seconds, 2) if seconds else None,
            }
        write_json(tmp / "meta.json", meta)
    return meta
