"""Simulated worlds for checking a gate plan: per-sample 0/1 scores of baseline and candidate.

A world is a split of groups (speakers, channels, videos) of clips of samples (segments), each
sample with a probability of being right: the base accuracy plus a group effect and a clip
effect. A trained model adds, per seed, a seed effect (better or worse everywhere), a
seed-by-group and a seed-by-clip effect (that run suits some groups, and some clips, more),
and, shared by all its seeds, a model-by-group effect (that model suits some groups more).
Scores are Bernoulli draws of the probability clipped to [0.01, 0.99]. The sds are of ONE
model or run; the per-seed delta of two independent models carries sqrt(2) times each
(`World.delta_seed_sd`, `World.delta_model_by_group_sd`). The same `judge` as the gate decides
a stage.

>>> world = World(accuracy=0.7, group_sd=0.05, clip_sd=0.03, seed_sd=0.01,
...               model_by_group_sd=0.02)
>>> rng = np.random.default_rng(0)
>>> split = draw_split(rng, world, 8)
>>> base, cand = draw_pair(rng, world, split, n_seeds=4, delta=0.05)
>>> base.shape, cand.shape, len(np.unique(split.groups)), len(np.unique(split.clips))
((4, 240), (4, 240), 8, 24)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from avgate.gating.spec import GateSpec, GateStage
from avgate.gating.verdict import StageVerdict, judge
from avgate.gating.worsening import Worsening

P_CLIP = (0.01, 0.99)  # a sample's probability of being right stays inside this range


@dataclass(frozen=True)
class World:
    """The noise components of one world; each sd is of one model (or one run), not a delta.

    `clips_per_group` may be fractional (clips spread as evenly as possible over the groups).

    >>> w = World(0.7, 0.08, 0.05, 0.012, 0.05)
    >>> round(w.delta_seed_sd, 4), round(w.delta_model_by_group_sd, 4), w.samples_per_clip
    (0.017, 0.0707, 10)
    """

    accuracy: float  # base probability that a sample is right
    group_sd: float  # between-group sd of that probability
    clip_sd: float  # between-clip sd within a group
    seed_sd: float  # sd of one run's seed effect (the same shift on every sample)
    model_by_group_sd: float  # sd of one model's per-group effect, shared by its seeds
    seed_by_group_sd: float = 0.0  # sd of one run's per-group effect, fresh for every seed
    seed_by_clip_sd: float = 0.0  # sd of one run's per-clip effect, fresh for every seed
    clips_per_group: float = 3.0
    samples_per_clip: int = 10
    name: str = ""

    @property
    def delta_seed_sd(self) -> float:
        """Seed sd of a paired delta: two independent runs, sqrt(2) x one run's."""
        return math.sqrt(2) * self.seed_sd

    @property
    def delta_model_by_group_sd(self) -> float:
        """Model-by-group sd of a delta: two independent models, sqrt(2) x one model's."""
        return math.sqrt(2) * self.model_by_group_sd


@dataclass(frozen=True)
class Split:
    """One split's per-sample probability of being right, its group and its clip."""

    p: np.ndarray
    groups: np.ndarray
    clips: np.ndarray

    @property
    def n_groups(self) -> int:
        return int(self.groups.max()) + 1

    @property
    def n_clips(self) -> int:
        return int(self.clips.max()) + 1


def clip_counts(n_groups: int, clips_per_group: float) -> np.ndarray:
    """Clips in each group: round(n_groups x clips_per_group) in all, as even as possible.

    >>> clip_counts(8, 3).tolist(), clip_counts(4, 2.5).tolist()
    ([3, 3, 3, 3, 3, 3, 3, 3], [3, 3, 2, 2])
    """
    total = max(n_groups, round(n_groups * clips_per_group))
    return total // n_groups + (np.arange(n_groups) < total % n_groups).astype(np.int64)


def draw_split(rng: np.random.Generator, world: World, n_groups: int) -> Split:
    """A fresh split of `n_groups` groups with their group and clip difficulty."""
    per_group = clip_counts(n_groups, world.clips_per_group)
    n_clips = int(per_group.sum())
    groups = np.repeat(np.arange(n_groups), per_group * world.samples_per_clip)
    clips = np.repeat(np.arange(n_clips), world.samples_per_clip)
    p = (
        world.accuracy
        + rng.normal(0, world.group_sd, n_groups)[groups]
        + rng.normal(0, world.clip_sd, n_clips)[clips]
    )
    return Split(p, groups, clips)


def correct(
    rng: np.random.Generator, split: Split, world: World, shift: float, seed_effects: np.ndarray
) -> np.ndarray:
    """(n_seeds, n_samples) 0/1 scores of one model, one row per seed (`seed_effects`).

    `shift` is the model's true effect on every sample; the model-by-group effect is drawn
    once for the model, the seed-by-group and seed-by-clip effects once per seed (each only
    when its sd is not 0, so a world without them draws the same numbers as before they were).
    """
    n_seeds = len(seed_effects)
    q = split.p + shift + rng.normal(0, world.model_by_group_sd, split.n_groups)[split.groups]
    q = q + np.asarray(seed_effects, dtype=np.float64)[:, None]
    if world.seed_by_group_sd > 0:
        per_run = rng.normal(0, world.seed_by_group_sd, (n_seeds, split.n_groups))
        q = q + per_run[:, split.groups]
    if world.seed_by_clip_sd > 0:
        per_run = rng.normal(0, world.seed_by_clip_sd, (n_seeds, split.n_clips))
        q = q + per_run[:, split.clips]
    q = np.clip(q, *P_CLIP)
    return (rng.random(q.shape) < q).astype(np.float64)


def draw_pair(
    rng: np.random.Generator, world: World, split: Split, n_seeds: int, delta: float
) -> tuple[np.ndarray, np.ndarray]:
    """Baseline and candidate 0/1 scores, (n_seeds, n_samples) each; the candidate is `delta`
    better (in probability of being right) on every sample.
    """
    seeds = rng.normal(0, world.seed_sd, size=(2, n_seeds))
    base = correct(rng, split, world, 0.0, seeds[0])
    cand = correct(rng, split, world, delta, seeds[1])
    return base, cand


def shift_for(split: Split, delta: float) -> float:
    """The shift of every sample's probability that raises the split's mean score by `delta`.

    Probabilities are clipped to [0.01, 0.99], so near the ceiling a plain shift of `delta`
    gains less than `delta`; this solves mean(clip(p + shift)) - mean(clip(p)) = delta by
    bisection (seed and group effects, mean zero, are left out). A `delta` beyond the room
    left gets the largest shift (every sample at the clip).

    >>> split = Split(np.array([0.5, 0.98, 0.99]), np.zeros(3, int), np.arange(3))
    >>> round(shift_for(split, 0.02), 4), round(shift_for(split, -0.02), 4)
    (0.05, -0.02)
    """
    base = np.clip(split.p, *P_CLIP).mean()

    def gain(shift: float) -> float:
        return float(np.clip(split.p + shift, *P_CLIP).mean() - base)

    lo, hi = (0.0, 1.0) if delta >= 0 else (-1.0, 0.0)
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if gain(mid) < delta else (lo, mid)
    return (lo + hi) / 2


def judge_stage(
    rng: np.random.Generator,
    spec: GateSpec,
    stage: GateStage,
    split: Split,
    base: np.ndarray,
    cand: np.ndarray,
    n_resamples: int,
) -> StageVerdict:
    """`judge`'s verdict of `stage` on these scores, with the interval's seed drawn from `rng`.

    >>> from avgate.gating.spec import parse_stage
    >>> stage = parse_stage({"name": "t", "split": "test", "seeds": [0, 1, 2], "looks": 1,
    ...                      "statistic": "paired_t", "alternative": "greater", "alpha": 0.05,
    ...                      "min_delta": 0.0})
    >>> spec = GateSpec("acc", "maximize", "v1", "bonferroni", 2, {}, (stage,), "")
    >>> world = World(0.5, 0.0, 0.0, 0.0, 0.0)
    >>> rng = np.random.default_rng(0)
    >>> split = draw_split(rng, world, 8)
    >>> base, cand = draw_pair(rng, world, split, 3, delta=0.4)
    >>> judge_stage(rng, spec, stage, split, base, cand, n_resamples=500).passed
    True

    The non-inferiority margins are taken as met (no diagnostic worsens): only the primary
    metric's criteria decide. `direction` is the spec's, so for "minimize" a better candidate
    has lower scores.
    """
    return judge(
        stage,
        spec.direction,
        base.mean(axis=1),
        cand.mean(axis=1),
        (base, cand),
        split.clips,
        {
            name: Worsening(0.05, 0.05, 0.0, name)
            for c in stage.criteria
            for name in c.diagnostics()
        },
        n_resamples=n_resamples,
        seed=int(rng.integers(2**31)),
        groups=split.groups,
        min_groups=spec.min_groups,
    )
