"""Diagnostics beyond one score: modality reliance, probability clustering, per-group scores and
samples that every seed gets wrong. Plain arrays and DataFrames in, JSON-ready values out.

>>> import numpy as np
>>> probability_clusters(np.array([[0.9, 0.1], [0.9, 0.1], [0.2, 0.8]]))["share_in_clusters"]
0.6666666666666666
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

ABLATIONS = ("muted", "from_other_clip")


def ablate(x: np.ndarray, columns: np.ndarray, how: str, fill: np.ndarray,
           clip_ids: np.ndarray) -> np.ndarray:  # fmt: skip
    """A copy of `x` with one modality's `columns` ablated.

    - `muted`: replaced by `fill` (the training mean: the modality carries no information);
    - `from_other_clip`: taken from another clip, rolling the clips by one so that every clip
      gets an unrelated clip's features, second by second (shorter clips repeat their last row).
    """
    out = np.array(x, copy=True)
    if how == "muted":
        out[:, columns] = fill[columns]
        return out
    if how != "from_other_clip":
        raise ValueError(f"unknown ablation {how!r}; known: {list(ABLATIONS)}")
    order = pd.unique(clip_ids)
    if len(order) < 2:
        return out
    rows = {clip: np.flatnonzero(clip_ids == clip) for clip in order}
    for clip, donor in zip(order, np.roll(order, -1), strict=True):
        target, source = rows[clip], rows[donor]
        take = source[np.minimum(np.arange(len(target)), len(source) - 1)]
        out[np.ix_(target, columns)] = x[np.ix_(take, columns)]
    return out


def modality_reliance(
    predict: Callable[[np.ndarray], np.ndarray],
    score: Callable[[np.ndarray], float],
    x: np.ndarray,
    modalities: dict[str, np.ndarray],
    fill: np.ndarray,
    clip_ids: np.ndarray,
) -> dict:
    """The primary metric with each modality ablated each way, and its drop from the full model.

    `predict` maps features to probabilities, `score` maps probabilities to the primary metric,
    `modalities` maps a modality name to its feature columns. Only meaningful with two or more
    modalities: with one, nothing is returned.
    """
    full = score(predict(x)) if len(modalities) >= 2 else None
    if full is None:  # one modality, or a primary metric undefined on this split
        return {}
    result: dict = {"full": full}
    for modality, columns in modalities.items():
        for how in ABLATIONS:
            value = score(predict(ablate(x, columns, how, fill, clip_ids)))
            drop = None if value is None else full - value
            result[f"{modality}_{how}"] = {"score": value, "drop": drop}
    return result


def probability_clusters(probs: np.ndarray, decimals: int = 6) -> dict:
    """How many predictions share an identical probability vector (rounded to `decimals`).

    Many rows with one vector suggest a model keyed to the recording rather than the content.
    """
    if not len(probs):
        return {"share_in_clusters": 0.0, "largest_cluster": 0, "distinct_vectors": 0}
    _, counts = np.unique(np.round(probs, decimals), axis=0, return_counts=True)
    return {
        "share_in_clusters": float(counts[counts > 1].sum() / len(probs)),
        "largest_cluster": int(counts.max()),
        "distinct_vectors": int(len(counts)),
    }


def group_scores(
    frame: pd.DataFrame, metric: Callable[[np.ndarray, np.ndarray], float], worst: int = 5
) -> dict:
    """The metric per group (columns group, label, predicted), worst groups first."""
    scores = {
        str(group): float(metric(part["label"].to_numpy(), part["predicted"].to_numpy()))
        for group, part in frame.groupby("group", sort=True)
    }
    ranked = sorted(scores.items(), key=lambda item: item[1])
    return {"per_group": scores, "worst": [{"group": g, "score": s} for g, s in ranked[:worst]]}


def wrong_in_every_seed(tables: list[pd.DataFrame], keys: list[str]) -> pd.DataFrame:
    """Rows (by `keys`) that every seed predicts wrongly; columns keys, label, predictions."""
    merged = None
    for i, table in enumerate(tables):
        part = table[[*keys, "label", "predicted"]].rename(columns={"predicted": f"seed_{i}"})
        merged = part if merged is None else merged.merge(part, on=[*keys, "label"])
    if merged is None:
        return pd.DataFrame(columns=[*keys, "label"])
    seeds = [c for c in merged.columns if c.startswith("seed_")]
    wrong = np.logical_and.reduce([merged[c] != merged["label"] for c in seeds])
    return merged[wrong].reset_index(drop=True)
