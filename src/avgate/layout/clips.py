"""The clips in play and where each encoder's arrays live: what the embed stage reads, kept apart
from stages/inputs.py (which loads the training side) so that `embed@<name>` depends on no code
of the heads, metrics or scoring.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from avgate.config import Params

SPLITS = ("train", "val", "test")
EMBEDDINGS = Path("data/embeddings")
BUDGETED = Path("data/budget/visual")  # the budget stage's visual rows, an embeddings folder
ALLOCATION = Path("data/budget/allocation.parquet")  # its resolution of every second


def eventness_scores(method: str) -> Path:
    """Where the eventness stage writes the scores of `method` (one folder per method, so that
    the scores of every method tried stay side by side)."""
    return Path("data/eventness") / method / "scores.parquet"


def embedding_dir(encoder: str) -> Path:
    """Where the embeddings of the encoder named `encoder` in `embed.encoders` live."""
    return EMBEDDINGS / encoder


def usable_clips(params: Params) -> pd.DataFrame:
    """Manifest rows with status ok, joined with their split, ordered by clip_id."""
    manifest = pd.read_parquet(params.data.interim_dir / "manifest.parquet")
    splits = pd.read_parquet(params.data.splits_dir / "splits.parquet")
    clips = manifest[manifest["status"] == "ok"].merge(splits, on="clip_id", how="inner")
    return clips.sort_values("clip_id").reset_index(drop=True)
