"""`audit`: leakage and confound checks that need embeddings.

- near-duplicate clips across splits: cosine similarity of standardised clip-mean embeddings at
  or above `audit.near_duplicate_cosine` (re-encoded or re-cut copies that hashes cannot see).
  Standardising (over all clips) matters: raw log-mel means share one spectral envelope, which
  puts unrelated demo clips at cosine 0.988;
- the recording group predicted from the clip embeddings by a cross-validated linear classifier:
  accuracy far above chance means the embeddings carry the channel, so a model can learn it.

Both are reported, not enforced: `metrics/audit.json` says what was found.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from avgate import audit
from avgate.config import Params
from avgate.files import write_json
from avgate.layout.arrays import pool_clips, side_by_side
from avgate.layout.clips import SPLITS, embedding_dir, usable_clips
from avgate.profiles import recorded

REPORT = Path("metrics/audit.json")


def clip_embeddings(params: Params) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per split: clip ids and their mean fused embedding (every encoder of `embed.encoders`),
    standardised over all clips."""
    out = {}
    dirs = {name: embedding_dir(name) for name in params.embed.encoders}
    for split in SPLITS:
        x, index = side_by_side(dirs, split)
        clip_ids, means, _ = pool_clips(x, index)
        out[split] = (clip_ids, means)
    every = np.concatenate([means for _, means in out.values()])
    centre, scale = every.mean(axis=0), every.std(axis=0)
    scale[scale == 0] = 1.0
    return {split: (ids, (means - centre) / scale) for split, (ids, means) in out.items()}


def run(params: Params) -> dict:
    """Write metrics/audit.json: near-duplicates across splits and group predictability."""
    with recorded("audit"):
        return _audit(params)


def _audit(params: Params) -> dict:
    clips = usable_clips(params).set_index("clip_id")
    per_split = clip_embeddings(params)
    threshold = params.audit.near_duplicate_cosine
    near = {}
    for a, b in combinations(SPLITS, 2):
        (ids_a, x_a), (ids_b, x_b) = per_split[a], per_split[b]
        pairs = audit.near_duplicates(x_a, ids_a, x_b, ids_b, threshold=threshold)
        near[f"{a}|{b}"] = {
            "pairs": len(pairs),
            "examples": pairs.head(params.audit.max_pairs_listed).to_dict("records"),
        }
    ids = np.concatenate([per_split[s][0] for s in SPLITS])
    x = np.concatenate([per_split[s][1] for s in SPLITS])
    groups = clips.loc[ids, "group"].to_numpy()
    labels = clips.loc[ids, "label"].to_numpy()
    summary = {
        "encoders": params.embed.encoders,
        "near_duplicates": {
            "test": "cosine similarity of standardised clip-mean embeddings across splits",
            "threshold": threshold,
            **near,
        },
        "group_from_embedding": audit.group_predictability(
            x, groups, labels, seed=params.split.seed
        ),
        "label_group_cramers_v": audit.cramers_v(pd.Series(labels), pd.Series(groups)),
    }
    write_json(REPORT, summary)
    return summary
