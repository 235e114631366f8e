"""Buckets of the gate report: each second lands in the right bucket of every dimension, and the
deltas per bucket equal a direct pandas computation, worst first."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avgate.gating.buckets import DIMENSIONS, deltas_by_bucket, second_buckets

BG = "background"


def clip(name: str, labels: list[str], scores: list[float], high: list[int],
         fallback: bool = False) -> pd.DataFrame:  # fmt: skip
    n = len(labels)
    return pd.DataFrame({
        "clip_id": name, "t": range(n), "score": scores, "label": labels,
        "high": [t in high for t in range(n)], "fallback": fallback,
    })  # fmt: skip


@pytest.fixture
def seconds() -> pd.DataFrame:
    return pd.concat([
        clip("hit", [BG, "dog", "dog", BG], [0.0, 0.9, 0.8, 0.1], high=[1]),
        clip("miss", ["cat", BG, BG, BG], [0.5, 0.1, 0.9, 0.2], high=[2]),
        clip("flat", [BG] + ["dog"] * 7, [0.5] * 8, high=[], fallback=True),
        clip("quiet", [BG] * 3, [0.1, 0.3, 0.2], high=[]),
        clip("long", ["cat"] * 5 + [BG], [1, 2, 3, 4, 5, 0.0], high=[4]),
    ], ignore_index=True)  # fmt: skip


def test_each_clip_lands_in_its_buckets(seconds):
    found = second_buckets(seconds, seconds["label"].to_numpy(), BG)
    per_clip = found.assign(clip_id=seconds["clip_id"]).groupby("clip_id").first()
    assert per_clip["anchor"].to_dict() == {
        "hit": "hit", "miss": "miss", "flat": "fallback", "quiet": "no anchors", "long": "hit"
    }  # fmt: skip
    assert per_clip["event_length"].to_dict() == {
        "hit": "1-3 s", "miss": "1-3 s", "flat": "7+ s", "quiet": "none", "long": "4-6 s"
    }  # fmt: skip
    assert per_clip["class"].to_dict() == {
        "hit": "dog", "miss": "cat", "flat": "dog", "quiet": "(none)", "long": "cat"
    }  # fmt: skip
    spread = seconds.groupby("clip_id")["score"].agg(lambda s: np.std(s))
    confidence = per_clip["eventness_confidence"].str.split().str[0]
    assert confidence["flat"] == "low" and confidence["long"] == "high"
    assert spread["flat"] < spread["hit"] < spread["long"]
    assert len(found) == len(seconds) and list(found.columns) == list(DIMENSIONS)


def test_deltas_match_a_direct_groupby_and_come_worst_first(seconds):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2, (3, len(seconds)))
    cand = rng.integers(0, 2, (3, len(seconds)))
    found = second_buckets(seconds, seconds["label"].to_numpy(), BG)
    rows = deltas_by_bucket(base, cand, found)
    assert [r["delta"] for r in rows] == sorted(r["delta"] for r in rows)
    frame = found.assign(base=base.mean(axis=0), cand=cand.mean(axis=0))
    for row in rows:
        where = frame[frame[row["dimension"]] == row["bucket"]]
        assert row["seconds"] == len(where)
        assert row["baseline"] == pytest.approx(where["base"].mean())
        assert row["delta"] == pytest.approx(where["cand"].mean() - where["base"].mean())
    assert {r["dimension"] for r in rows} == set(DIMENSIONS)


def test_too_few_distinct_spreads_make_one_confidence_bucket():
    two = pd.concat([clip("a", [BG, "dog"], [0.0, 1.0], high=[1]),
                     clip("b", [BG, "dog"], [0.0, 1.0], high=[0])], ignore_index=True)  # fmt: skip
    found = second_buckets(two, two["label"].to_numpy(), BG)
    assert found["eventness_confidence"].nunique() == 1
    assert found["eventness_confidence"].iloc[0].startswith("all")
