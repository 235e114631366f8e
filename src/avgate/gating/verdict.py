"""One gate stage's decision: the criteria a candidate must meet against the baseline, and why.

`judge` compares the primary metric of the candidate and the baseline seed by seed (the same
seeds in the same order), with the delta oriented so that positive means better (candidate -
baseline when maximizing, baseline - candidate when minimizing). Each criterion of the stage is
one `Criterion` with its value, threshold and pass/fail; the stage passes only if all do. The
p-value is compared with the stage's alpha per look (Bonferroni over its declared looks). The
interval, when the stage sets `ci_low_min`, is a bootstrap over the test split's groups, then
clips within them (and seeds, with `resample_seeds`). The statistics (the test's name,
sidedness and pairing, the per-seed deltas, the correction, the number of test groups, what the
claim generalises over, the interval) travel with the verdict so the report can show every
number it used.

>>> from avgate.gating.spec import GateStage
>>> stage = GateStage("quick_test", "test", (0, 1, 2), "sign_flip", "greater", 0.25, 0.018,
...                   looks=2)
>>> v = judge(stage, "maximize", np.array([0.80, 0.81, 0.79]), np.array([0.83, 0.84, 0.81]))
>>> v.passed, [(c.name, c.passed) for c in v.criteria]
(True, [('min_delta', True), ('p_value', True)])
>>> round(v.statistics["mean_delta"], 4), v.statistics["test"]["p_value"]
(0.0267, 0.125)
>>> print(v.criteria[1].detail.split("): ", 1)[1])
p = 0.125 <= alpha 0.125 (Bonferroni over 2 looks: alpha 0.25/2)
>>> v.statistics["claim"]
'this training procedure on this test set'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from avgate import stats
from avgate.gating.diagnostics import Worsening
from avgate.gating.spec import GateStage

TESTS = {"paired_t": stats.paired_t, "wilcoxon": stats.wilcoxon_exact, "sign_flip": stats.sign_flip}
CI_CONFIDENCE = 0.95  # descriptive intervals; the ci_low bound uses `interval_confidence`
ALPHA_CORRECTION = "bonferroni"  # the only correction `gating.spec` accepts


@dataclass(frozen=True)
class Criterion:
    """One check of a stage, with the number it looked at and the bar it had to clear.

    >>> Criterion("min_delta", True, 0.03, 0.02, "mean delta 0.03 >= 0.02").passed
    True
    """

    name: str
    passed: bool
    value: float | None
    threshold: float | None
    detail: str


@dataclass(frozen=True)
class StageVerdict:
    """The decision of one stage: passed only if every criterion passed.

    >>> StageVerdict("full_test", False, (), {}).passed
    False
    """

    stage: str
    passed: bool
    criteria: tuple[Criterion, ...]
    statistics: dict


def judge(
    stage: GateStage,
    direction: str,
    baseline_scores: np.ndarray,
    candidate_scores: np.ndarray,
    per_sample: tuple[np.ndarray, np.ndarray] | None = None,
    clusters: np.ndarray | None = None,
    diagnostics: dict[str, Worsening | None] | None = None,
    n_resamples: int = 10000,
    seed: int = 0,
    *,
    groups: np.ndarray | None = None,
    min_groups: int = 2,
) -> StageVerdict:
    """Judge one stage from per-seed primary-metric scores, paired by `stage.seeds`.

    `per_sample` is (baseline, candidate), each (n_seeds, n_samples) of per-sample scores, used
    only when the stage sets `ci_low_min`; `groups` (n_samples,) names each sample's split group
    (speaker, channel, video) and `clusters` (n_samples,) its clip (each sample its own clip
    when omitted). The interval resamples groups, then clips within them, and seeds when the
    stage sets `resample_seeds`; with groups missing or fewer than `min_groups` (the spec's)
    the ci_low criterion fails and says why. `diagnostics` maps a name to the `Worsening` of a
    diagnostic such as ECE (`gating.diagnostics`). Scores of the wrong length mean the
    comparison is not paired by the stage's seeds, and raise ValueError.

    >>> from avgate.gating.spec import GateStage
    >>> stage = GateStage("t", "test", (0, 1, 2), "paired_t", "greater", 0.05, 0.0,
    ...                   non_inferiority={"ece": 0.01})
    >>> ece = Worsening(0.05, 0.08, 0.03, "ece: candidate 0.08 - baseline 0.05")
    >>> v = judge(stage, "minimize", np.array([0.3, 0.3, 0.3]), np.array([0.2, 0.21, 0.19]),
    ...           diagnostics={"ece": ece})
    >>> [(c.name, c.passed) for c in v.criteria]
    [('min_delta', True), ('p_value', True), ('non_inferiority:ece', False)]
    >>> v.statistics["alpha_correction"]["alpha_per_look"], v.statistics["n_groups"]
    (0.05, None)
    """
    deltas = seed_deltas(stage, direction, baseline_scores, candidate_scores)
    result = TESTS[stage.statistic](deltas, alternative=stage.alternative)
    mean_delta = float(deltas.mean())
    n_groups = None if groups is None else len(np.unique(np.asarray(groups)))
    statistics = {
        "test": result.as_dict(),
        "direction": direction,
        "delta": "candidate - baseline" if direction == "maximize" else "baseline - candidate",
        "seeds": list(stage.seeds),
        "deltas": deltas.tolist(),
        "mean_delta": mean_delta,
        "alpha_correction": alpha_correction(stage),
        "n_groups": n_groups,
        "claim": _seed_claim(n_groups),
    }
    criteria = [
        _at_least("min_delta", mean_delta, stage.min_delta, "mean delta"),
        _p_value(result, stage),
    ]
    if stage.ci_low_min is not None:
        sample = _SampleDesign(per_sample, groups, clusters, min_groups)
        criterion, interval = _ci_low(stage, direction, sample, n_resamples, seed)
        criteria.append(criterion)
        statistics["bootstrap"] = interval
        if interval is not None:
            statistics["claim"] = interval["claim"]
    criteria += [
        _non_inferior(name, margin, (diagnostics or {}).get(name))
        for name, margin in stage.non_inferiority.items()
    ]
    passed = all(c.passed for c in criteria)
    return StageVerdict(stage.name, passed, tuple(criteria), statistics)


def alpha_correction(stage: GateStage) -> dict:
    """How the stage's family alpha is split over its declared looks.

    >>> from avgate.gating.spec import GateStage
    >>> stage = GateStage("t", "test", (0, 1), "paired_t", "greater", 0.05, 0.0, looks=2)
    >>> alpha_correction(stage)["detail"]
    'Bonferroni over 2 looks: alpha 0.05/2'
    """
    return {
        "method": ALPHA_CORRECTION,
        "looks": stage.looks,
        "family_alpha": stage.alpha,
        "alpha_per_look": stage.alpha_per_look,
        "detail": f"Bonferroni over {stage.looks} looks: alpha {stage.alpha:g}/{stage.looks}",
    }


def seed_deltas(
    stage: GateStage, direction: str, baseline_scores: np.ndarray, candidate_scores: np.ndarray
) -> np.ndarray:
    """Per-seed deltas oriented so positive is better; refuses scores not paired by seed.

    >>> from avgate.gating.spec import GateStage
    >>> stage = GateStage("t", "test", (0, 1), "paired_t", "greater", 0.05, 0.0)
    >>> seed_deltas(stage, "minimize", np.array([0.5, 0.4]), np.array([0.25, 0.5])).tolist()
    [0.25, -0.09999999999999998]
    >>> seed_deltas(stage, "maximize", np.array([0.5]), np.array([0.25]))
    Traceback (most recent call last):
    ...
    ValueError: unpaired comparison: stage 't' has 2 seeds but got 1 baseline and 1 candidate scores
    """
    if direction not in ("maximize", "minimize"):
        raise ValueError(f'direction must be "maximize" or "minimize", got {direction!r}')
    base = np.asarray(baseline_scores, dtype=np.float64)
    cand = np.asarray(candidate_scores, dtype=np.float64)
    n = len(stage.seeds)
    if base.shape != (n,) or cand.shape != (n,):
        raise ValueError(
            f"unpaired comparison: stage {stage.name!r} has {n} seeds but got "
            f"{base.size} baseline and {cand.size} candidate scores"
        )
    return cand - base if direction == "maximize" else base - cand


def to_dict(verdict: StageVerdict) -> dict:
    """The verdict as plain JSON-ready values.

    >>> to_dict(StageVerdict("t", True, (Criterion("x", True, 1.0, 0.5, "ok"),), {}))["criteria"]
    [{'name': 'x', 'passed': True, 'value': 1.0, 'threshold': 0.5, 'detail': 'ok'}]
    """
    return {
        "stage": verdict.stage,
        "passed": verdict.passed,
        "criteria": [asdict(c) for c in verdict.criteria],
        "statistics": verdict.statistics,
    }


def _at_least(name: str, value: float, threshold: float, what: str) -> Criterion:
    passed = bool(value >= threshold)
    sign = ">=" if passed else "<"
    return Criterion(name, passed, value, threshold, f"{what} {value:.4g} {sign} {threshold:.4g}")


def _p_value(result: stats.TestResult, stage: GateStage) -> Criterion:
    alpha = stage.alpha_per_look
    passed = bool(result.p_value <= alpha)
    sign = "<=" if passed else ">"
    detail = (
        f"{result.test} ({result.alternative}, n={result.n}): "
        f"p = {result.p_value:.4g} {sign} alpha {alpha:.4g} "
        f"({alpha_correction(stage)['detail']})"
    )
    return Criterion("p_value", passed, result.p_value, alpha, detail)


def _seed_claim(n_groups: int | None) -> str:
    """What a test over seeds alone generalises over: new seeds, the same test samples."""
    if n_groups is None:
        return "this training procedure on this test set"
    return f"this training procedure on these {n_groups} test groups"


@dataclass(frozen=True)
class _SampleDesign:
    """Per-sample scores and their layout: groups, clips within them, the fewest groups allowed."""

    per_sample: tuple[np.ndarray, np.ndarray] | None
    groups: np.ndarray | None
    clusters: np.ndarray | None
    min_groups: int


def _ci_low(
    stage: GateStage, direction: str, sample: _SampleDesign, n_resamples: int, seed: int
) -> tuple[Criterion, dict | None]:
    """The group-bootstrap interval's lower end against `stage.ci_low_min`."""
    missing = _missing(sample, stage.split)
    if missing:
        return Criterion("ci_low", False, None, stage.ci_low_min, missing), None
    base, cand = (np.asarray(x, dtype=np.float64) for x in sample.per_sample)
    if base.shape != cand.shape or base.ndim != 2 or base.shape[0] != len(stage.seeds):
        raise ValueError(
            f"unpaired comparison: per-sample scores must both be (n_seeds={len(stage.seeds)}, "
            f"n_samples); got {base.shape} and {cand.shape}"
        )
    deltas = cand - base if direction == "maximize" else base - cand
    interval = stats.group_bootstrap(
        deltas,
        sample.groups,
        sample.clusters,
        resample_seeds=stage.resample_seeds,
        n_resamples=n_resamples,
        confidence=interval_confidence(stage),
        seed=seed,
    )
    what = (
        f"{interval['confidence']:.4g} group-bootstrap low ({interval['n_groups']} groups, "
        f"{interval['claim']})"
    )
    return _at_least("ci_low", interval["low"], stage.ci_low_min, what), interval


def interval_confidence(stage: GateStage) -> float:
    """The two-sided confidence whose lower end is a one-sided bound at the alpha per look.

    The ci_low criterion is a test too, so it spends the same Bonferroni share as the p-value.

    >>> from dataclasses import replace
    >>> from avgate.gating.spec import GateStage
    >>> stage = GateStage("t", "test", (0, 1), "paired_t", "greater", 0.05, 0.0, 0.0, looks=2)
    >>> interval_confidence(stage), interval_confidence(replace(stage, looks=1))
    (0.95, 0.9)
    """
    return round(1 - 2 * stage.alpha_per_look, 12)


def _missing(sample: _SampleDesign, split: str) -> str:
    """Why the interval cannot be computed, or "" when it can."""
    if sample.per_sample is None:
        return "per-sample scores missing: the bootstrap bound cannot be checked"
    if sample.groups is None:
        return f"{split} groups missing: the interval resamples groups and cannot be computed"
    n_groups = len(np.unique(np.asarray(sample.groups)))
    if n_groups < sample.min_groups:
        return (
            f"{n_groups} {split} groups, fewer than min_groups {sample.min_groups}: an interval "
            "over so few groups does not generalise to new groups"
        )
    return ""


def _non_inferior(name: str, margin: float, comparison: Worsening | None) -> Criterion:
    """The candidate may be worse than the baseline on diagnostic `name` by at most `margin`."""
    key = f"non_inferiority:{name}"
    if comparison is None:
        return Criterion(key, False, None, margin, f"diagnostic {name!r} missing")
    passed = bool(comparison.worse <= margin)
    sign = "<=" if passed else ">"
    detail = f"{comparison.detail}: worse by {comparison.worse:.4g} {sign} margin {margin:.4g}"
    return Criterion(key, passed, comparison.worse, margin, detail)
