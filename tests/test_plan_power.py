"""`avgate plan check`: noise components from validation, simulated stage power, the verdict."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from avgate import stats
from avgate.gating import power
from avgate.gating.simulate import World, correct, draw_split
from avgate.gating.spec import GateSpec, GateStage, parse_stage


def gate_stage(name: str, seeds, statistic: str, alpha: float, min_delta: float, **keys):
    """A stage as gates.yaml writes it: split test, one-sided, one look unless told."""
    return parse_stage(
        {"name": name, "split": "test", "seeds": list(seeds), "statistic": statistic,
         "alternative": "greater", "alpha": alpha, "looks": 1, "min_delta": min_delta, **keys}
    )  # fmt: skip


QUICK = gate_stage("quick_test", range(4), "sign_flip", 0.25, 0.018, looks=2)
FULL = gate_stage(
    "full_test", range(10), "paired_t", 0.05, 0.02, ci_low_min=0.0, looks=2, resample_seeds=True
)
SELECT = {"split": "val", "seeds": [0, 1, 2], "rule": "max_mean_delta"}
KNOWN = World(
    0.6, group_sd=0.08, clip_sd=0.05, seed_sd=0.02, model_by_group_sd=0.0,
    seed_by_group_sd=0.03, seed_by_clip_sd=0.04, clips_per_group=4, samples_per_clip=10,
)  # fmt: skip


def plan(*stages: GateStage, min_power: float | None = None) -> GateSpec:
    return GateSpec("acc", "maximize", "v1", "bonferroni", 8, SELECT, stages, "0" * 64, min_power)


def comps(world: World) -> dict:
    """The `components` keys the simulation reads, straight from a world."""
    fields = ("accuracy", "group_sd", "clip_sd", "seed_sd", "seed_by_group_sd")
    return {
        **{name: getattr(world, name) for name in fields},
        "seed_by_clip_sd": world.seed_by_clip_sd,
        "samples_per_clip": world.samples_per_clip,
    }


def val_table(world: World, n_seeds: int, n_groups: int, seed: int = 0) -> pd.DataFrame:
    """One run per seed of one model on a fresh validation split, one row per sample per seed."""
    rng = np.random.default_rng(seed)
    split = draw_split(rng, world, n_groups)
    y = correct(rng, split, world, 0.0, rng.normal(0, world.seed_sd, n_seeds))
    s, n = y.shape
    return pd.DataFrame(
        {
            "seed": np.repeat(np.arange(s), n),
            "group": np.tile(np.char.add("g", split.groups.astype(str)), s),
            "clip_id": np.tile(np.char.add("c", split.clips.astype(str)), s),
            "correct": y.ravel(),
        }
    )


def test_components_recover_known_noise():
    """30 seeds x 40 groups of 4 clips of 10 samples: each sd within about 2.5 of its SEs."""
    c = power.components(val_table(KNOWN, 30, 40))
    assert (c["n_seeds"], c["n_groups"], c["n_clips"]) == (30, 40, 160)
    assert (c["clips_per_group"], c["samples_per_clip"], c["samples_per_seed"]) == (4, 10, 1600)
    assert c["accuracy"] == pytest.approx(0.6, abs=0.04)
    assert c["seed_sd"] == pytest.approx(0.02, abs=0.01)
    assert c["group_sd"] == pytest.approx(0.08, abs=0.03)
    assert c["clip_sd"] == pytest.approx(0.05, abs=0.01)
    assert c["seed_by_group_sd"] == pytest.approx(0.03, abs=0.012)
    assert c["seed_by_clip_sd"] == pytest.approx(0.04, abs=0.022)
    assert c["seed_sd_observed"] > c["seed_sd"]  # per-seed means carry the lower levels too
    assert c["delta_seed_sd"] == pytest.approx(np.sqrt(2) * c["seed_sd"])
    assert c["model_by_group_sd"] == pytest.approx(np.sqrt(2) * c["seed_by_group_sd"])
    assert c["df"] == {"seed": 29, "seed_by_group": 29 * 39, "seed_by_clip": 29 * 40 * 3}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop(columns="group"), "lacks columns"),
        (lambda t: t.assign(correct=t["correct"] * 2), "scores in \\[0, 1\\]"),
        (lambda t: t[(t.seed == 0) | (t.clip_id != "c0")], "every seed must score every"),
        (lambda t: t.assign(group=np.where(t.index % 2, "g0", t.group)), "more than one group"),
        (lambda t: t[t.seed == 0], "at least 2 seeds"),
    ],
)
def test_components_refuse_a_table_they_cannot_decompose(change, message):
    table = val_table(KNOWN, 3, 4).reset_index(drop=True)
    with pytest.raises(ValueError, match=message):
        power.components(change(table))


def test_power_rises_with_groups_and_with_delta():
    c = comps(World(0.7, 0.05, 0.05, 0.01, 0.02, seed_by_group_sd=0.02, clips_per_group=3))
    spec = plan(FULL)
    at = dict(clips_per_group=3, replications=100, seed=1)
    few = power.stage_power(spec, FULL, c, 8, delta=0.04, **at)
    many = power.stage_power(spec, FULL, c, 64, delta=0.04, **at)
    larger = power.stage_power(spec, FULL, c, 8, delta=0.12, **at)
    assert many > few + 0.3 and larger > few + 0.3, (few, many, larger)


def test_no_noise_gives_power_one_above_min_delta():
    """Without seed, group or clip noise (sampling only, 3,200 samples), +0.1 always passes."""
    c = comps(World(0.5, 0.0, 0.0, 0.0, 0.0, clips_per_group=10))
    for stage in (QUICK, FULL):
        for whole in (False, True):
            got = power.stage_power(
                plan(stage), stage, c, 32, 10, 0.1, 50, seed=0, whole_stage=whole
            )
            assert got == 1.0, (stage.name, whole)


def test_fewer_groups_than_min_groups_cannot_pass_an_interval():
    c = comps(World(0.5, 0.0, 0.0, 0.0, 0.0))
    assert power.stage_power(plan(FULL), FULL, c, 6, 3, 0.3, 20, seed=0) == 0.0


def test_paired_t_power_matches_the_noncentral_t_when_only_seeds_vary():
    """Only seed noise (plus sampling): per-seed deltas are iid normal, the t-test's own power."""
    stage = gate_stage("t", range(5), "paired_t", 0.05, 0.0)
    world = World(0.5, 0.0, 0.0, seed_sd=0.03, model_by_group_sd=0.0, clips_per_group=25)
    n_samples, delta = 8 * 25 * 10, 0.04
    sampling = (0.25 - world.seed_sd**2) * 2 / n_samples  # E[q(1 - q)] of each model, / n
    sd = np.sqrt(world.delta_seed_sd**2 + sampling)
    expected = float(stats.t_test_power(5, delta / sd, alpha=0.05))
    got = power.stage_power(plan(stage), stage, comps(world), 8, 25, delta, 400, seed=3)
    assert 0.3 < expected < 0.7
    assert got == pytest.approx(expected, abs=0.07)


def test_needed_asks_fewer_seeds_for_a_larger_delta():
    c = comps(World(0.7, 0.05, 0.05, 0.02, 0.0, clips_per_group=3))
    stage = gate_stage("full_test", range(10), "paired_t", 0.05, 0.02, looks=2)
    small = power.needed(plan(stage), stage, c, 16, 3, delta=0.03, replications=60, seed=0)
    large = power.needed(plan(stage), stage, c, 16, 3, delta=0.06, replications=60, seed=0)
    assert small["seeds"] is not None and large["seeds"] is not None
    assert large["seeds"] < small["seeds"], (small, large)
    assert (small["seeds_at_groups"], small["groups_at_seeds"]) == (16, 10)


def test_needed_says_more_than_the_cap_and_respects_min_groups():
    """Seed noise alone cannot be bought down with groups; an interval needs min_groups."""
    noisy = comps(World(0.7, 0.0, 0.0, 0.2, 0.0))
    out = power.needed(plan(QUICK), QUICK, noisy, 8, 3, delta=0.02, replications=30)
    assert out["groups"] is None and out["groups_cap"] == 256
    assert out["seeds"] is None and out["seeds_cap"] == 20  # sign_flip takes at most 20
    easy = comps(World(0.5, 0.0, 0.0, 0.0, 0.0, clips_per_group=10))
    out = power.needed(plan(FULL), FULL, easy, 8, 10, delta=0.1, replications=20)
    assert out["groups"] == 8  # min_groups, not 2
    assert out["seeds"] == 3  # 2 seeds leave the t-test 1 degree of freedom


EASY = gate_stage("quick_test", range(4), "sign_flip", 0.25, 0.1, looks=2)  # sure to pass below
HARD = gate_stage(  # far from it with 8 test groups
    "full_test", range(10), "paired_t", 0.05, 0.005, ci_low_min=0.0, looks=2, resample_seeds=True
)


@pytest.mark.parametrize(
    ("stages", "min_power", "passed"),
    [
        ((EASY,), None, None),
        ((EASY,), 0.5, True),
        ((EASY,), 0.99, True),
        ((EASY, HARD), 0.5, False),
    ],
)
def test_check_verdict_both_ways(stages, min_power, passed):
    world = World(0.5, 0.0, 0.0, 0.0, 0.0, clips_per_group=3)
    table = val_table(world, 20, 30)  # enough to estimate the (absent) noise near 0
    report = power.check(plan(*stages, min_power=min_power), table, 8, 80, replications=20)
    assert report["passed"] is passed and report["min_power"] == min_power
    easy = report["stages"][0]
    assert easy["power"] == 1.0 and easy["meets_min_power"] is (min_power and True)
    if passed is None:
        assert "only reports" in report["verdict"]
    elif passed:
        assert report["verdict"].startswith("PASS")
    else:
        assert report["stages"][1]["power"] < 0.5 and not report["stages"][1]["meets_min_power"]
        assert report["verdict"].startswith("FAIL") and "full_test" in report["verdict"]
        assert "quick_test" not in report["verdict"]


def test_check_reports_tests_sidedness_assumptions_and_renders_short_lines():
    table = val_table(KNOWN, 3, 8)
    val_stage = replace(QUICK, name="val_check", split="val")
    report = power.check(plan(QUICK, FULL, val_stage), table, 8, 22, replications=20)
    assert [r["stage"] for r in report["stages"]] == ["quick_test", "full_test"]
    quick, full = report["stages"]
    assert (quick["test"], quick["sided"], quick["alternative"]) == (
        stats.STATISTICS["sign_flip"].title,
        "one-sided",
        "greater",
    )
    assert quick["also"] == []
    assert full["test"] == stats.STATISTICS["paired_t"].title
    assert ["group-bootstrap" in also for also in full["also"]] == [True]
    assert report["simulation"]["bootstrap_resamples"] == power.N_RESAMPLES
    assert any("sqrt(2)" in a for a in report["assumptions"])
    lines = power.render(report)
    assert max(len(line) for line in lines) <= 100
    text = "\n".join(lines)
    for words in ("exact sign-flip permutation, one-sided", "paired t-test, one-sided", "sqrt(2)"):
        assert words in text


def test_check_refuses_a_test_split_without_groups():
    with pytest.raises(ValueError, match="at least 2 groups"):
        power.check(plan(QUICK), val_table(KNOWN, 3, 4), test_groups=1, test_clips=5)
