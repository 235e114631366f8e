"""Records several stages share: usable clips with their split, fused embeddings, labels.

The embeddings of all encoders in `embed.encoders` are fused by concatenation, in the order the
mapping lists them; their indexes must agree row for row. For `task.kind: clip`, the seconds of
each clip are pooled into one row (mean, then max). The clips in play and the embeddings' folders
are in stages/clips.py, which the embed stage imports without this module.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from avgate import calibration, metrics
from avgate.config import Params
from avgate.errors import StageError
from avgate.layout.clips import embedding_dir
from avgate.scoring import logits_of

if TYPE_CHECKING:  # torch loads with the models: the gate, which reads only files, skips it
    from avgate.models.fused import Block

EVAL_SPLITS = ("val", "test")
WEIGHTS = "head.safetensors"
DESCRIPTION = "head.json"


def model_dir(seed: int) -> Path:
    """A seed's trained head: WEIGHTS (safetensors) and DESCRIPTION (JSON)."""
    return Path("models") / f"seed{seed}"


def live_dir(seed: int) -> Path:
    """A seed's dvclive training log."""
    return Path("dvclive/train") / f"seed{seed}"


def predictions_dir(seed: int) -> Path:
    """A seed's predictions ({val,test}.parquet; test without labels) and validation scores
    (metrics.json)."""
    return Path("predictions") / f"seed{seed}"


def predicted_labels(table: pd.DataFrame, threshold: dict | None) -> np.ndarray:
    """The class of each row of a predictions table (one `logit_<class>` column per class):
    the arg-max, or the tuned `threshold` of a binary task (`metrics.decide`)."""
    logits, classes = logits_of(table)
    if threshold is None:
        return np.asarray(classes)[logits.argmax(axis=1)]
    return metrics.decide(calibration.softmax(logits), classes, threshold)


@dataclass(frozen=True)
class Examples:
    """Model inputs of one split: features x, string labels, and the (clip_id[, t]) index."""

    x: np.ndarray
    labels: np.ndarray
    index: pd.DataFrame


def fused_embeddings(params: Params, split: str) -> tuple[np.ndarray, pd.DataFrame]:
    """Concatenate every encoder's embeddings of `split`; return features and (clip_id, t) index."""
    parts, index = [], None
    names = list(params.embed.encoders)
    for name in names:
        folder = embedding_dir(name)
        if not (folder / f"{split}.npy").exists():
            raise StageError(f"{folder / f'{split}.npy'}: missing; run `dvc repro embed@{name}`")
        this = pd.read_parquet(folder / f"{split}.index.parquet")
        if index is None:
            index = this
        elif not index.equals(this):
            raise StageError(
                f"{folder}: rows differ from {embedding_dir(names[0])}; "
                "re-run `dvc repro` so that every encoder embeds the same clips"
            )
        parts.append(np.load(folder / f"{split}.npy", mmap_mode="r"))
    return np.concatenate(parts, axis=1).astype(np.float32), index


def modality_columns(params: Params) -> dict[str, np.ndarray]:
    """Feature columns of each modality in the model's input (fused, and pooled for clip tasks).

    >>> # logmel (audio, 128) then frames (visual, 51): audio 0..127, visual 128..178
    """
    columns: dict[str, list[np.ndarray]] = {}
    offset = 0
    for name in params.embed.encoders:
        meta = json.loads((embedding_dir(name) / "meta.json").read_text())
        columns.setdefault(meta["modality"], []).append(np.arange(offset, offset + meta["dim"]))
        offset += meta["dim"]
    merged = {modality: np.concatenate(parts) for modality, parts in columns.items()}
    if params.task.kind == "clip":  # pooled features: the means, then the maxima
        merged = {m: np.concatenate([c, c + offset]) for m, c in merged.items()}
    return merged


def encoder_blocks(params: Params) -> list[Block]:
    """Each encoder's columns in the model input, with its modality and layer layout."""
    from avgate.models.fused import Block

    metas = [
        json.loads((embedding_dir(n) / "meta.json").read_text()) for n in params.embed.encoders
    ]
    total = sum(meta["dim"] for meta in metas)
    blocks, offset = [], 0
    for name, meta in zip(params.embed.encoders, metas, strict=True):
        spans = [(offset, offset + meta["dim"])]
        if params.task.kind == "clip":  # pooled features: the means, then the maxima
            spans.append((total + offset, total + offset + meta["dim"]))
        blocks.append(Block(name, meta["modality"], tuple(spans), meta.get("n_layers", 1)))
        offset += meta["dim"]
    return blocks


def pool_clips(x: np.ndarray, index: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip ids in index order, and the mean and the maximum of each clip's rows of `x`.

    Rows of one clip must be contiguous, as every embedding index writes them.
    """
    clip_ids, starts = np.unique(index["clip_id"].to_numpy(), return_index=True)
    order = np.argsort(starts)
    clip_ids, starts = clip_ids[order], starts[order]
    means = np.add.reduceat(x, starts, axis=0) / np.diff([*starts, len(x)])[:, None]
    return clip_ids, means, np.maximum.reduceat(x, starts, axis=0)


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


def features(params: Params, split: str) -> tuple[np.ndarray, pd.DataFrame]:
    """The model inputs of `split` and their index (clip_id, and t for event tasks), no labels."""
    x, index = fused_embeddings(params, split)
    if params.task.kind == "event":
        return x, index
    clip_ids, means, maxima = pool_clips(x, index)
    pooled = np.concatenate([means, maxima], axis=1)
    return pooled.astype(np.float32), pd.DataFrame({"clip_id": clip_ids})


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


def examples(params: Params, split: str) -> Examples:
    """Features and labels of `split` for the task kind in params."""
    x, index = features(params, split)
    return Examples(x, labels_of(params, index), index)
