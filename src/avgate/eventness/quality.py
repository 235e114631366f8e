"""How well eventness scores find the event seconds, against per-second labels.

- `auc`: ROC AUC of the scores for event seconds (label != background) against background
  seconds, over all rows: the chance that a random event second outscores a random background
  second (ties count half). None when the rows hold only one of the two.
- `top1_hit_rate`: the share of clips whose highest-scored second is an event second.
- `topk_hit_rate`: the share of clips whose k highest-scored seconds include at least one event
  second, with k the clip's own number of event seconds.

Both hit rates count only clips with at least one event second (`clips`: how many); among tied
scores the earlier second ranks first, as `avgate.budget` anchors them. A rate over no clips is
None.

>>> labels = np.array(["bg", "dog", "bg", "bg", "car"])
>>> quality(np.array([0.1, 0.9, 0.5, 0.7, 0.2]), labels, np.array(list("aabbb")),
...         np.array([0, 1, 0, 1, 2]), background="bg")
{'auc': 0.6666666666666667, 'top1_hit_rate': 0.5, 'topk_hit_rate': 0.5, 'clips': 2}
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from avgate.eventness.data import BACKGROUND, clip_rows


def quality(
    scores: np.ndarray,
    labels: np.ndarray,
    clip_ids: np.ndarray,
    seconds: np.ndarray,
    background: str = BACKGROUND,
) -> dict:
    """`auc`, `top1_hit_rate`, `topk_hit_rate` and `clips` of the module docstring."""
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all():
        raise ValueError("eventness scores hold NaN or Inf")
    events = np.asarray(labels) != background
    auc = float(roc_auc_score(events, scores)) if 0 < events.sum() < len(events) else None
    top1, topk = [], []
    for rows in clip_rows(clip_ids, seconds):
        count = int(events[rows].sum())
        if count:
            ranked = events[rows[np.argsort(-scores[rows], kind="stable")]]
            top1.append(ranked[0])
            topk.append(ranked[:count].any())
    return {"auc": auc, "top1_hit_rate": _share(top1), "topk_hit_rate": _share(topk),
            "clips": len(top1)}  # fmt: skip


def _share(hits: list[bool]) -> float | None:
    return float(np.mean(hits)) if hits else None
