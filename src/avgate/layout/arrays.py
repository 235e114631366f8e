"""Embeddings folders read side by side: row-aligned arrays of several encoders of one split, and
the pooling of each clip's rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from avgate.errors import StageError
from avgate.layout.clips import BUDGETED


def side_by_side(dirs: dict[str, Path], split: str) -> tuple[np.ndarray, pd.DataFrame]:
    """The `split` arrays of the embeddings folders `dirs` (name: folder) concatenated column-wise
    in that order, as float32, and their common (clip_id, t) index; StageError when a folder
    lacks the split or its rows differ from the first folder's."""
    parts, index, first = [], None, None
    for name, folder in dirs.items():
        if not (folder / f"{split}.npy").exists():
            stage = "budget" if folder == BUDGETED else f"embed@{name}"
            raise StageError(f"{folder / f'{split}.npy'}: missing; run `dvc repro {stage}`")
        this = pd.read_parquet(folder / f"{split}.index.parquet")
        if index is None:
            index, first = this, folder
        elif not index.equals(this):
            raise StageError(
                f"{folder}: rows differ from {first}; "
                "re-run `dvc repro` so that every encoder embeds the same clips"
            )
        parts.append(np.load(folder / f"{split}.npy", mmap_mode="r"))
    return np.concatenate(parts, axis=1).astype(np.float32), index


def clip_starts(index: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Clip ids in index order and the row where each clip's rows begin.

    Rows of one clip must be contiguous, as every embedding index writes them.
    """
    clip_ids, starts = np.unique(index["clip_id"].to_numpy(), return_index=True)
    order = np.argsort(starts)
    return clip_ids[order], starts[order]


def pool_clips(x: np.ndarray, index: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip ids in index order, and the mean and the maximum of each clip's rows of `x`."""
    clip_ids, starts = clip_starts(index)
    means = np.add.reduceat(x, starts, axis=0) / np.diff([*starts, len(x)])[:, None]
    return clip_ids, means, np.maximum.reduceat(x, starts, axis=0)
