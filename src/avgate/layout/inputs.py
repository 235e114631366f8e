"""Records several stages share: usable clips with their split, fused embeddings, labels.

The model's input blocks (`input_dirs`) are the encoders of `embed.encoders`, fused by
concatenation in the order the mapping lists them; with a `budget.policy` on, the three visual
encoders the budget names are one block instead, the budget stage's rows (each second at the
resolution the policy gave it). Their indexes must agree row for row. For `task.kind: clip`, the
seconds of each clip are pooled into one row (mean, then max); for event tasks with
`train.clip_context`, each second's row is followed by its clip's maximum. The clips in play and
the embeddings' folders are in layout/clips.py, which the embed stage imports without this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from avgate import calibration, metrics
from avgate.config import Params
from avgate.layout.arrays import clip_starts, pool_clips, side_by_side
from avgate.layout.clips import BUDGETED, embedding_dir
from avgate.layout.labels import labels_of
from avgate.scoring import logits_of

if TYPE_CHECKING:  # torch loads with the models: the gate, which reads only files, skips it
    from avgate.models.fused import Block

EVAL_SPLITS = ("val", "test")
BUDGET_BLOCK = "visual@budget"  # its name among the input blocks (not a valid encoder name)
WEIGHTS = "head.safetensors"


def live_dir(seed: int) -> Path:
    """A seed's dvclive training log."""
    return Path("dvclive/train") / f"seed{seed}"


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


def input_dirs(params: Params) -> dict[str, Path]:
    """The folder of each input block, in column order: every encoder of `embed.encoders`, with
    budget.low, .uniform and .high replaced by BUDGETED where the first of them stood when
    `budget.policy` is on.

    >>> input_dirs(Params.from_dict({}))
    {'logmel': PosixPath('data/embeddings/logmel'), 'frames': PosixPath('data/embeddings/frames')}
    """
    budgeted = set(params.budget.encoders()) if params.budget.policy != "none" else set()
    dirs = {}
    for name in params.embed.encoders:
        if name not in budgeted:
            dirs[name] = embedding_dir(name)
        elif BUDGET_BLOCK not in dirs:
            dirs[BUDGET_BLOCK] = BUDGETED
    return dirs


def fused_embeddings(params: Params, split: str) -> tuple[np.ndarray, pd.DataFrame]:
    """The model's input blocks of `split` side by side, and their (clip_id, t) index."""
    return side_by_side(input_dirs(params), split)


def doubled(params: Params) -> bool:
    """Whether every input column appears twice: pooled clip features (means, then maxima), or
    seconds with their clip's maximum (`train.clip_context`)."""
    return params.task.kind == "clip" or params.train.clip_context


def _metas(params: Params) -> dict[str, dict]:
    return {
        name: json.loads((folder / "meta.json").read_text())
        for name, folder in input_dirs(params).items()
    }


def modality_columns(params: Params) -> dict[str, np.ndarray]:
    """Feature columns of each modality in the model's input (fused, and doubled where
    `doubled`).

    >>> # logmel (audio, 128) then frames (visual, 59): audio 0..127, visual 128..186
    """
    columns: dict[str, list[np.ndarray]] = {}
    offset = 0
    for meta in _metas(params).values():
        columns.setdefault(meta["modality"], []).append(np.arange(offset, offset + meta["dim"]))
        offset += meta["dim"]
    merged = {modality: np.concatenate(parts) for modality, parts in columns.items()}
    if doubled(params):
        merged = {m: np.concatenate([c, c + offset]) for m, c in merged.items()}
    return merged


def encoder_blocks(params: Params) -> list[Block]:
    """Each input block's columns in the model input, with its modality and layer layout."""
    from avgate.models.fused import Block

    metas = _metas(params)
    total = sum(meta["dim"] for meta in metas.values())
    blocks, offset = [], 0
    for name, meta in metas.items():
        spans = [(offset, offset + meta["dim"])]
        if doubled(params):
            spans.append((total + offset, total + offset + meta["dim"]))
        blocks.append(Block(name, meta["modality"], tuple(spans), meta.get("n_layers", 1)))
        offset += meta["dim"]
    return blocks


def with_clip_maxima(x: np.ndarray, index: pd.DataFrame) -> np.ndarray:
    """Each row of `x` followed by the maximum of its clip's rows.

    >>> index = pd.DataFrame({"clip_id": ["a", "a", "b"], "t": [0, 1, 0]})
    >>> with_clip_maxima(np.array([[1.0], [3.0], [2.0]]), index).tolist()
    [[1.0, 3.0], [3.0, 3.0], [2.0, 2.0]]
    """
    _, starts = clip_starts(index)
    maxima = np.maximum.reduceat(x, starts, axis=0)
    lengths = np.diff([*starts, len(x)])
    return np.concatenate([x, np.repeat(maxima, lengths, axis=0)], axis=1)


def features(params: Params, split: str) -> tuple[np.ndarray, pd.DataFrame]:
    """The model inputs of `split` and their index (clip_id, and t for event tasks), no labels."""
    x, index = fused_embeddings(params, split)
    if params.task.kind == "event":
        return (with_clip_maxima(x, index) if params.train.clip_context else x), index
    clip_ids, means, maxima = pool_clips(x, index)
    pooled = np.concatenate([means, maxima], axis=1)
    return pooled.astype(np.float32), pd.DataFrame({"clip_id": clip_ids})


def examples(params: Params, split: str) -> Examples:
    """Features and labels of `split` for the task kind in params."""
    x, index = features(params, split)
    return Examples(x, labels_of(params, index), index)
