"""The shipped plan (`gates.yaml`) in simulation: false promotion and power where they fail today.

Each replication draws a fresh world: a validation split and a test split of 8 groups (recording
channels) with 3 clips of 10 one-second segments each, random group and clip difficulty, and
per-segment correctness drawn for every model and seed. Every model carries a seed effect (a
trained model is better or worse everywhere, validation and test alike) and a model-by-group
effect (it suits some channels more than others). K = 16 candidates, all equal to the baseline in
truth, are ranked on validation by their mean per-seed delta (`selection.rule`); the winner's
test scores go through `judge` for every stage in order, stopping at the first failure. With
"every look spent", a rejected winner is followed by the next on the validation ranking until a
stage's declared looks run out. Power is the promotion rate when every candidate is +0.05 better.

The world generator and the stage check are `avgate.gating.simulate`'s, the same ones `avgate
plan check` uses. Three noise regimes keep the seed-to-seed sd of the test deltas near 0.044:
sampling noise dominant (accuracy 0.7), seed effects dominant (accuracy 0.9), model-by-group
effects dominant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from avgate.gating.simulate import Split, World, correct, draw_split, judge_stage
from avgate.gating.spec import GateSpec, load_spec

GATES = Path(__file__).resolve().parents[1] / "gates.yaml"
K = 16
GROUPS = 8  # test and validation groups, each of 3 clips of 10 segments (the World's default)
N_RESAMPLES = 2000
NULL_REPS = 1000
POWER_REPS = 200
MANY_GROUPS = 32  # power is printed at this many test groups too
BOUND = 0.05

WORLDS = (
    World(0.70, 0.08, 0.05, seed_sd=0.012, model_by_group_sd=0.05, name="sampling noise"),
    World(0.90, 0.04, 0.03, seed_sd=0.028, model_by_group_sd=0.05, name="seed effects"),
    World(0.70, 0.08, 0.05, seed_sd=0.016, model_by_group_sd=0.08, name="model-by-group"),
)


def ranking(
    rng: np.random.Generator, spec: GateSpec, world: World, shift: float, seeds: np.ndarray
) -> np.ndarray:
    """Candidates in order of their mean per-seed validation delta, best first."""
    val = draw_split(rng, world, GROUPS)
    chosen = list(spec.selection["seeds"])
    base = correct(rng, val, world, 0.0, seeds[0, chosen]).mean(axis=1)
    means = [
        (correct(rng, val, world, shift, seeds[k, chosen]).mean(axis=1) - base).mean()
        for k in range(1, K + 1)
    ]
    return np.argsort(means)[::-1] + 1


def passes(
    rng: np.random.Generator, spec: GateSpec, test: Split, base: np.ndarray, cand: np.ndarray
) -> tuple[bool, list[str]]:
    """Whether one candidate passes every stage, and the stages it looked at."""
    looked = []
    for stage in spec.stages:
        looked.append(stage.name)
        rows = list(stage.seeds)
        if not judge_stage(rng, spec, stage, test, base[rows], cand[rows], N_RESAMPLES).passed:
            return False, looked
    return True, looked


def promoted(
    rng: np.random.Generator,
    spec: GateSpec,
    world: World,
    shift: float,
    every_look: bool,
    n_groups: int = GROUPS,
) -> bool:
    """One replication: selection on validation, then the plan on a fresh test split."""
    n_seeds = 1 + max(max(s.seeds) for s in spec.stages)
    seeds = rng.normal(0, world.seed_sd, size=(K + 1, n_seeds))  # row 0: the baseline
    order = ranking(rng, spec, world, shift, seeds)
    test = draw_split(rng, world, n_groups)
    base = correct(rng, test, world, 0.0, seeds[0])
    left = {stage.name: stage.looks if every_look else 1 for stage in spec.stages}
    for k in order:
        cand = correct(rng, test, world, shift, seeds[k])
        passed, looked = passes(rng, spec, test, base, cand)
        if passed:
            return True
        for name in looked:
            left[name] -= 1
        if min(left.values()) == 0:
            return False
    return False


def rate(spec: GateSpec, world: World, shift: float, reps: int, seed: int, **kw) -> float:
    rng = np.random.default_rng(seed)
    return float(np.mean([promoted(rng, spec, world, shift, **kw) for _ in range(reps)]))


def upper_bound(rate_: float, reps: int, level: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper confidence bound of a binomial rate."""
    hits = round(rate_ * reps)
    return 1.0 if hits == reps else float(sps.beta.ppf(level, hits + 1, reps - hits))


@pytest.fixture(scope="module")
def spec() -> GateSpec:
    return load_spec(GATES)


def test_the_worlds_have_the_stated_seed_noise():
    """The seed-to-seed sd of the per-seed test deltas is about 0.044 in every regime."""
    rng = np.random.default_rng(0)
    for world in WORLDS:
        variances = []
        for _ in range(200):
            test = draw_split(rng, world, GROUPS)
            effects = rng.normal(0, world.seed_sd, size=(2, 10))
            deltas = [correct(rng, test, world, 0.0, e).mean(axis=1) for e in effects]
            variances.append(np.var(deltas[1] - deltas[0], ddof=1))
        sd = float(np.sqrt(np.mean(variances)))
        assert 0.040 <= sd <= 0.048, f"{world.name}: seed sd of deltas {sd:.4f}"


@pytest.mark.parametrize("world", WORLDS, ids=[w.name for w in WORLDS])
def test_shipped_plan_false_promotion_and_power(spec, world, capsys):
    """At most 5% false promotion (95% upper bound), with one look and with every look spent."""
    one_look = rate(spec, world, 0.0, NULL_REPS, 1, every_look=False)
    every_look = rate(spec, world, 0.0, NULL_REPS, 2, every_look=True)
    power = rate(spec, world, 0.05, POWER_REPS, 3, every_look=False)
    many = rate(spec, world, 0.05, POWER_REPS // 2, 4, every_look=False, n_groups=MANY_GROUPS)
    with capsys.disabled():
        print(
            f"\n{world.name}: false promotion {one_look:.3f} (one look, 95% upper "
            f"{upper_bound(one_look, NULL_REPS):.3f}), {every_look:.3f} (every look spent, "
            f"upper {upper_bound(every_look, NULL_REPS):.3f}); power at +0.05 {power:.2f} with "
            f"{GROUPS} test groups, {many:.2f} with {MANY_GROUPS} ({NULL_REPS} null "
            f"replications; power from {POWER_REPS}, and {POWER_REPS // 2} at {MANY_GROUPS})"
        )
    assert upper_bound(one_look, NULL_REPS) <= BOUND, f"{world.name}: one look {one_look}"
    assert upper_bound(every_look, NULL_REPS) <= BOUND, f"{world.name}: every look {every_look}"
    assert power > BOUND, f"{world.name}: power at +0.05 {power} is no better than chance"
