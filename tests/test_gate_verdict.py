"""Stage verdicts: each criterion on hand-made numbers, pairing, direction, and the protocol's
false-promotion rate and power in simulation."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from avgate.gating.criteria import interval_confidence
from avgate.gating.spec import GateStage, parse_stage
from avgate.gating.verdict import judge, to_dict
from avgate.gating.worsening import Worsening


def gate_stage(
    name: str, seeds, statistic: str, alpha: float, min_delta: float, **keys
) -> GateStage:
    """A test stage as gates.yaml would write it (one look unless `looks` is given)."""
    return parse_stage(
        {"name": name, "split": "test", "seeds": list(seeds), "statistic": statistic,
         "alternative": "greater", "alpha": alpha, "looks": 1, "min_delta": min_delta, **keys}
    )  # fmt: skip


QUICK = gate_stage("quick_test", range(3), "sign_flip", 0.2, 0.018, non_inferiority={"ece": 0.01})
FULL = gate_stage("full_test", range(10), "paired_t", 0.05, 0.02)
BASE3 = np.array([0.80, 0.82, 0.78])


def ece(baseline: float, candidate: float) -> dict[str, Worsening]:
    return {"ece": Worsening(baseline, candidate, candidate - baseline, "ece")}


def outcome(verdict) -> dict[str, bool]:
    return {c.name: c.passed for c in verdict.criteria}


def test_all_criteria_pass():
    v = judge(QUICK, "maximize", BASE3, BASE3 + [0.02, 0.03, 0.025], diagnostics=ece(0.05, 0.055))
    assert v.passed
    assert outcome(v) == {"min_delta": True, "p_value": True, "non_inferiority:ece": True}
    assert v.statistics["test"]["test"] == "exact sign-flip permutation"
    assert v.statistics["test"]["alternative"] == "greater"
    assert "paired by seed" in v.statistics["test"]["pairing"]
    assert v.statistics["mean_delta"] == pytest.approx(0.025)
    assert v.statistics["deltas"] == pytest.approx([0.02, 0.03, 0.025])


def test_min_delta_fails_alone():
    v = judge(QUICK, "maximize", BASE3, BASE3 + 0.01, diagnostics=ece(0.05, 0.05))
    assert not v.passed
    assert outcome(v) == {"min_delta": False, "p_value": True, "non_inferiority:ece": True}
    crit = v.criteria[0]
    assert crit.value == pytest.approx(0.01) and crit.threshold == 0.018
    assert "<" in crit.detail


def test_p_value_fails_alone():
    v = judge(QUICK, "maximize", BASE3, BASE3 + [0.10, 0.10, -0.01], diagnostics=ece(0, 0))
    assert outcome(v) == {"min_delta": True, "p_value": False, "non_inferiority:ece": True}
    assert v.criteria[1].value == 0.25 and v.criteria[1].threshold == 0.2


def test_non_inferiority_fails_and_missing_diagnostic_fails():
    scores = BASE3 + 0.03
    worse = judge(QUICK, "maximize", BASE3, scores, diagnostics=ece(0.05, 0.07))
    assert outcome(worse)["non_inferiority:ece"] is False
    assert worse.criteria[2].value == pytest.approx(0.02) and not worse.passed
    missing = judge(QUICK, "maximize", BASE3, scores)
    assert outcome(missing)["non_inferiority:ece"] is False
    assert "missing" in missing.criteria[2].detail and missing.criteria[2].value is None


CI = gate_stage("ci", range(2), "paired_t", 0.05, 0.0, ci_low_min=0.0, looks=2)
CLIPS = np.repeat(np.arange(10), 4)  # 10 clips of 4 samples
GROUPS = np.repeat(np.arange(5), 8)  # 5 groups of 2 clips


def per_sample(shift: float = 0.1, noise: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.4, 0.6, size=(2, 40))
    return base, base + shift + rng.normal(0, noise, size=base.shape)


def judge_ci(stage=CI, scores=None, clusters=CLIPS, groups=GROUPS, min_groups=5):
    return judge(
        stage,
        "maximize",
        [0.5, 0.5],
        [0.6, 0.62],
        per_sample() if scores is None else scores,
        clusters,
        n_resamples=500,
        groups=groups,
        min_groups=min_groups,
    )


def test_ci_low_criterion_resamples_groups_then_clips():
    better = judge_ci()
    assert outcome(better)["ci_low"] and better.statistics["bootstrap"]["low"] > 0
    assert json.loads(json.dumps(to_dict(better))) == to_dict(better)
    interval = better.statistics["bootstrap"]
    assert (interval["n_groups"], interval["n_clusters"], interval["n_seeds"]) == (5, 10, 2)
    assert interval["confidence"] == 0.95  # one-sided 0.025: alpha 0.05 over 2 looks
    assert interval["method"] == "expanded percentile over 5 groups"
    assert better.statistics["n_groups"] == 5
    assert better.statistics["claim"] == "these 2 trained models on new groups"
    assert "(5 groups, these 2 trained models on new groups)" in better.criteria[2].detail
    unsure = judge_ci(scores=per_sample(shift=0.0, noise=0.2))
    assert outcome(unsure)["ci_low"] is False and not unsure.passed


def test_ci_low_with_seeds_resampled_claims_the_training_procedure():
    seeds_too = gate_stage("ci", range(2), "paired_t", 0.05, 0.0, ci_low_min=0.0, looks=2,
                      resample_seeds=True)  # fmt: skip
    two_way = judge_ci(stage=seeds_too)
    assert two_way.statistics["claim"] == "this training procedure on new groups"
    assert "two-way over seeds and groups" in two_way.statistics["bootstrap"]["resampled"]


def test_interval_confidence_follows_the_alpha_per_look():
    one_look = judge_ci(stage=replace(CI, looks=1))
    assert one_look.statistics["bootstrap"]["confidence"] == 0.9
    assert interval_confidence(replace(CI, alpha=0.1, looks=4)) == 0.95


@pytest.mark.parametrize(
    ("kwargs", "detail"),
    [
        ({"scores": ()}, "per-sample scores missing"),
        ({"groups": None}, "test groups missing"),
        ({"min_groups": 6}, "5 test groups, fewer than min_groups 6"),
    ],
)
def test_ci_low_fails_without_enough_groups(kwargs, detail):
    if kwargs.get("scores") == ():
        verdict = judge(CI, "maximize", [0.5, 0.5], [0.6, 0.62], groups=GROUPS)
    else:
        verdict = judge_ci(**kwargs)
    assert outcome(verdict)["ci_low"] is False and not verdict.passed
    assert detail in verdict.criteria[2].detail and verdict.criteria[2].value is None
    assert verdict.statistics["bootstrap"] is None


def test_ci_low_refuses_unpaired_per_sample_scores():
    base, cand = per_sample()
    with pytest.raises(ValueError, match="unpaired comparison"):
        judge_ci(scores=(base, cand[:1]))


def test_p_value_is_tested_at_alpha_per_look():
    deltas = [0.02, 0.03, 0.025]
    once = judge(QUICK, "maximize", BASE3, BASE3 + deltas, diagnostics=ece(0, 0))
    twice = judge(replace(QUICK, looks=2), "maximize", BASE3, BASE3 + deltas, diagnostics=ece(0, 0))
    assert outcome(once)["p_value"] and not outcome(twice)["p_value"]
    p_value = twice.criteria[1]
    assert p_value.value == 0.125 and p_value.threshold == pytest.approx(0.1)
    assert "p = 0.125 > alpha 0.1 (Bonferroni over 2 looks: alpha 0.2/2)" in p_value.detail
    assert twice.statistics["alpha_correction"] == {
        "method": "bonferroni",
        "looks": 2,
        "family_alpha": 0.2,
        "alpha_per_look": 0.1,
        "detail": "Bonferroni over 2 looks: alpha 0.2/2",
    }


def test_without_an_interval_the_claim_is_about_this_test_set():
    plain = judge(QUICK, "maximize", BASE3, BASE3 + 0.03, diagnostics=ece(0, 0))
    assert plain.statistics["claim"] == "this training procedure on this test set"
    assert plain.statistics["n_groups"] is None
    grouped = judge(QUICK, "maximize", BASE3, BASE3 + 0.03, diagnostics=ece(0, 0), groups=GROUPS)
    assert grouped.statistics["claim"] == "this training procedure on these 5 test groups"
    assert grouped.statistics["n_groups"] == 5


@pytest.mark.parametrize(
    ("baseline", "candidate"),
    [(BASE3, BASE3[:2] + 0.1), (BASE3[:2], BASE3[:2]), (np.zeros(4), np.zeros(4))],
)
def test_unpaired_scores_abort(baseline, candidate):
    with pytest.raises(ValueError, match="unpaired comparison"):
        judge(QUICK, "maximize", baseline, candidate)


def test_minimize_direction_flips_the_delta():
    error = np.array([0.30, 0.28, 0.32])
    better = judge(QUICK, "minimize", error, error - 0.03, diagnostics=ece(0.1, 0.1))
    assert better.passed and better.statistics["mean_delta"] == pytest.approx(0.03)
    assert better.statistics["delta"] == "baseline - candidate"
    worse = judge(QUICK, "minimize", error, error + 0.03, diagnostics=ece(0.1, 0.1))
    assert outcome(worse)["min_delta"] is False and outcome(worse)["p_value"] is False


def test_to_dict_is_json_ready():
    v = judge(QUICK, "maximize", BASE3, BASE3 + 0.03, diagnostics=ece(0.05, 0.05))
    d = to_dict(v)
    assert json.loads(json.dumps(d)) == d
    assert d["stage"] == "quick_test" and d["passed"] is True
    assert [c["name"] for c in d["criteria"]] == ["min_delta", "p_value", "non_inferiority:ece"]


def promoted(rng: np.random.Generator, true_delta: float) -> bool:
    """One candidate through both stages; seeds 0-2 of the full test are those of the quick one.

    Per seed, the baseline is 0.80 + a seed effect (sd 0.02) shared by the candidate, which adds
    the true delta and its own noise (sd 0.015): the comparison is paired by seed.
    """
    baseline = 0.80 + rng.normal(0, 0.02, size=10)
    candidate = baseline + true_delta + rng.normal(0, 0.015, size=10)
    calibration = ece(0.05, 0.05 + rng.normal(0, 0.002))
    quick = judge(QUICK, "maximize", baseline[:3], candidate[:3], diagnostics=calibration)
    return quick.passed and judge(FULL, "maximize", baseline, candidate).passed


@pytest.mark.parametrize(("true_delta", "low", "high"), [(0.0, 0.0, 0.05), (0.05, 0.80, 1.0)])
def test_protocol_promotion_rates(true_delta, low, high):
    rng = np.random.default_rng(20240501)
    rate = np.mean([promoted(rng, true_delta) for _ in range(200)])
    assert low <= rate <= high, f"promotion rate {rate} at true delta {true_delta}"


def test_a_candidate_identical_to_the_baseline_fails_without_crashing():
    wilcoxon = gate_stage("t", range(5), "wilcoxon", 0.1, 0.0)
    scores = np.array([0.8, 0.81, 0.79, 0.8, 0.82])
    verdict = judge(wilcoxon, "maximize", scores, scores.copy())
    assert not verdict.passed
    assert verdict.statistics["test"]["p_value"] == 1.0


@pytest.mark.parametrize(("stage", "n_seeds", "alpha"), [(QUICK, 3, 0.2), (FULL, 10, 0.05)])
def test_each_stage_alone_passes_a_null_candidate_at_most_alpha(stage, n_seeds, alpha):
    rng = np.random.default_rng(7)
    passed = []
    for _ in range(400):
        baseline = 0.80 + rng.normal(0, 0.02, size=n_seeds)
        candidate = baseline + rng.normal(0, 0.015, size=n_seeds)
        passed.append(
            judge(stage, "maximize", baseline, candidate, diagnostics=ece(0.05, 0.05)).passed
        )
    assert np.mean(passed) <= alpha + 0.03, f"{stage.name}: null pass rate {np.mean(passed)}"
