"""Labels of the rows a stage reads: per second from `segments.parquet`, per clip from the
manifest, read from the work tree or, through `read`, at a git revision.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from avgate.config import Params
from avgate.errors import StageError

Reader = Callable[[Path], pd.DataFrame]


def second_labels(
    params: Params, index: pd.DataFrame, read: Reader = pd.read_parquet
) -> np.ndarray:
    """The `segments.parquet` label of each (clip_id, t) row of `index`; `read` opens a parquet
    file of the project (from the work tree by default, or at a git revision)."""
    path = params.data.interim_dir / "segments.parquet"
    labelled = index[["clip_id", "t"]].merge(read(path), on=["clip_id", "t"], how="left")
    missing = labelled["label"].isna()
    if missing.any():
        first = labelled[missing].iloc[0]
        raise StageError(
            f"{path}: no label for clip {first.clip_id!r} second {first.t} "
            f"({int(missing.sum())} rows); re-run ingest"
        )
    return labelled["label"].to_numpy()


def labels_of(params: Params, index: pd.DataFrame, read: Reader = pd.read_parquet) -> np.ndarray:
    """The label of each row of `index`: per second for event tasks, per clip otherwise."""
    if params.task.kind == "event":
        return second_labels(params, index, read)
    return clip_column(params, index["clip_id"].to_numpy(), "label", read)


def clip_column(
    params: Params, clip_ids: np.ndarray, column: str, read: Reader = pd.read_parquet
) -> np.ndarray:
    """The manifest's `column` (label, group, ...) of each clip in `clip_ids`."""
    manifest = read(params.data.interim_dir / "manifest.parquet")
    return manifest.set_index("clip_id").loc[clip_ids, column].to_numpy()
