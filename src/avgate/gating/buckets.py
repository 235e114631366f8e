"""Where a candidate gains and where it loses: the paired change in per-second accuracy by bucket.

Each second of the compared split falls in one bucket of each dimension, all from its clip:

- `eventness_confidence`: the spread (standard deviation) of the clip's eventness scores, the
  quantity `budget.fallback_std` tests, in thirds over the split's clips (low, mid, high);
- `event_length`: the clip's event seconds (none, 1-3 s, 4-6 s, 7+ s);
- `class`: the clip's event class (`(none)` for a clip without one);
- `anchor`: whether the clip's high-resolution seconds hold an event second (hit, miss), or the
  clip fell back to uniform (fallback), or no second was anchored (no anchors: a uniform policy).

For every bucket: its seconds, the baseline's and the candidate's accuracy over them (seed mean),
and the delta, candidate - baseline. Rows come worst delta first, so the buckets where the
method hurts lead the table.

>>> allocation = pd.DataFrame({"clip_id": ["a", "a", "b", "b"], "t": [0, 1, 0, 1],
...                            "score": [0.0, 1.0, 0.5, 0.5], "high": [False, True, True, False],
...                            "fallback": [False, False, False, False]})
>>> labels = np.array(["background", "dog", "background", "background"])
>>> buckets = second_buckets(allocation, labels, "background")
>>> buckets["anchor"].tolist(), buckets["event_length"].tolist()
(['hit', 'hit', 'miss', 'miss'], ['1-3 s', '1-3 s', 'none', 'none'])
>>> rows = deltas_by_bucket(np.array([[1, 1, 1, 1]]), np.array([[1, 1, 0, 1]]), buckets)
>>> [(r["dimension"], r["bucket"], r["delta"]) for r in rows[:2]]
[('event_length', 'none', -0.5), ('class', '(none)', -0.5)]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DIMENSIONS = ("eventness_confidence", "event_length", "class", "anchor")
NO_EVENT = "(none)"
LENGTHS = ((0, 0, "none"), (1, 3, "1-3 s"), (4, 6, "4-6 s"), (7, None, "7+ s"))


def second_buckets(allocation: pd.DataFrame, labels: np.ndarray, background: str) -> pd.DataFrame:
    """One row per row of `allocation` (clip_id, t, score, high, fallback) with its bucket in
    each of DIMENSIONS; `labels` is each second's label."""
    seconds = allocation[["clip_id", "high", "fallback"]].assign(
        score=allocation["score"].to_numpy(dtype=float),
        event=np.asarray(labels) != background,
        label=np.asarray(labels),
    )
    clips = seconds.groupby("clip_id", sort=False).agg(
        spread=("score", lambda s: float(np.std(s))),
        events=("event", "sum"),
        anchored=("high", "any"),
        fallback=("fallback", "first"),
    )
    clips["hit"] = seconds[seconds["high"]].groupby("clip_id")["event"].any()
    clips["class"] = seconds[seconds["event"]].groupby("clip_id")["label"].first()
    per_clip = pd.DataFrame(
        {
            "eventness_confidence": _thirds(clips["spread"]),
            "event_length": [_length(int(n)) for n in clips["events"]],
            "class": clips["class"].fillna(NO_EVENT),
            "anchor": [
                _anchor(bool(f), bool(a), bool(h) if pd.notna(h) else False)
                for f, a, h in zip(clips["fallback"], clips["anchored"], clips["hit"], strict=True)
            ],
        },
        index=clips.index,
    )
    return per_clip.loc[allocation["clip_id"].to_numpy()].reset_index(drop=True)


def _thirds(spread: pd.Series) -> list[str]:
    """low / mid / high by the spread's terciles over the clips, with each third's range."""
    if spread.nunique() < 3:
        return [f"all ({spread.min():.3g}-{spread.max():.3g})"] * len(spread)
    edges = np.quantile(spread, [1 / 3, 2 / 3])
    names = (
        f"low (< {edges[0]:.3g})",
        f"mid ({edges[0]:.3g}-{edges[1]:.3g})",
        f"high (> {edges[1]:.3g})",
    )
    return [names[int(np.searchsorted(edges, value, side="right"))] for value in spread]


def _length(events: int) -> str:
    for low, high, name in LENGTHS:
        if events >= low and (high is None or events <= high):
            return name
    raise ValueError(f"negative event length {events}")


def _anchor(fallback: bool, anchored: bool, hit: bool) -> str:
    if fallback:
        return "fallback"
    if not anchored:
        return "no anchors"
    return "hit" if hit else "miss"


def deltas_by_bucket(
    baseline_correct: np.ndarray, candidate_correct: np.ndarray, buckets: pd.DataFrame
) -> list[dict]:
    """Per bucket of every dimension: seconds, baseline and candidate accuracy (mean over seeds
    and seconds) and their delta, worst delta first. `*_correct` are (seeds, seconds) of 0/1,
    paired row for row with `buckets`."""
    base = np.asarray(baseline_correct, dtype=float).mean(axis=0)
    cand = np.asarray(candidate_correct, dtype=float).mean(axis=0)
    rows = []
    for dimension in DIMENSIONS:
        for bucket, where in buckets.groupby(dimension, sort=True).indices.items():
            b, c = float(base[where].mean()), float(cand[where].mean())
            rows.append({"dimension": dimension, "bucket": str(bucket), "seconds": len(where),
                         "baseline": b, "candidate": c, "delta": c - b})  # fmt: skip
    order = {name: i for i, name in enumerate(DIMENSIONS)}
    return sorted(rows, key=lambda r: (r["delta"], order[r["dimension"]], r["bucket"]))
