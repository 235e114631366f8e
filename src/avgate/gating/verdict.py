"""One gate stage's decision: the criteria a candidate must meet against the baseline, and why.

`judge` compares the primary metric of the candidate and the baseline seed by seed (the same
seeds in the same order), with the delta oriented so that positive means better (candidate -
baseline when maximizing, baseline - candidate when minimizing). Each criterion of the stage is
one `Criterion` with its value, threshold and pass/fail; the stage passes only if all do. The
statistics (the test's name, sidedness and pairing, the per-seed deltas, the bootstrap interval
when one was asked for) travel with the verdict so the report can show every number it used.

>>> from avgate.gating.spec import GateStage
>>> stage = GateStage("quick_test", "test", (0, 1, 2), "sign_flip", "greater", 0.2, 0.018)
>>> v = judge(stage, "maximize", np.array([0.80, 0.81, 0.79]), np.array([0.83, 0.84, 0.81]))
>>> v.passed, [(c.name, c.passed) for c in v.criteria]
(True, [('min_delta', True), ('p_value', True)])
>>> round(v.statistics["mean_delta"], 4), v.statistics["test"]["p_value"]
(0.0267, 0.125)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from avgate import stats
from avgate.gating.diagnostics import Worsening
from avgate.gating.spec import GateStage

TESTS = {"paired_t": stats.paired_t, "wilcoxon": stats.wilcoxon_exact, "sign_flip": stats.sign_flip}
CI_CONFIDENCE = 0.95


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
) -> StageVerdict:
    """Judge one stage from per-seed primary-metric scores, paired by `stage.seeds`.

    `per_sample` is (baseline, candidate), each (n_seeds, n_samples) of per-sample scores, used
    only when the stage sets `ci_low_min`; `clusters` (n_samples,) groups correlated samples
    (each sample is its own cluster when omitted). `diagnostics` maps a name to the
    `Worsening` of a diagnostic such as ECE (`gating.diagnostics`). Scores of the wrong length
    mean the comparison is not paired by the stage's seeds, and raise ValueError.

    >>> from avgate.gating.spec import GateStage
    >>> stage = GateStage("t", "test", (0, 1, 2), "paired_t", "greater", 0.05, 0.0,
    ...                   non_inferiority={"ece": 0.01})
    >>> ece = Worsening(0.05, 0.08, 0.03, "ece: candidate 0.08 - baseline 0.05")
    >>> v = judge(stage, "minimize", np.array([0.3, 0.3, 0.3]), np.array([0.2, 0.21, 0.19]),
    ...           diagnostics={"ece": ece})
    >>> [(c.name, c.passed) for c in v.criteria]
    [('min_delta', True), ('p_value', True), ('non_inferiority:ece', False)]
    """
    deltas = seed_deltas(stage, direction, baseline_scores, candidate_scores)
    result = TESTS[stage.statistic](deltas, alternative=stage.alternative)
    mean_delta = float(deltas.mean())
    statistics = {
        "test": result.as_dict(),
        "direction": direction,
        "delta": "candidate - baseline" if direction == "maximize" else "baseline - candidate",
        "seeds": list(stage.seeds),
        "deltas": deltas.tolist(),
        "mean_delta": mean_delta,
    }
    criteria = [
        _at_least("min_delta", mean_delta, stage.min_delta, "mean delta"),
        _p_value(result, stage.alpha),
    ]
    if stage.ci_low_min is not None:
        criterion, interval = _ci_low(
            stage, direction, per_sample, clusters, n_resamples=n_resamples, seed=seed
        )
        criteria.append(criterion)
        statistics["bootstrap"] = interval
    criteria += [
        _non_inferior(name, margin, (diagnostics or {}).get(name))
        for name, margin in stage.non_inferiority.items()
    ]
    passed = all(c.passed for c in criteria)
    return StageVerdict(stage.name, passed, tuple(criteria), statistics)


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


def _p_value(result: stats.TestResult, alpha: float) -> Criterion:
    passed = bool(result.p_value <= alpha)
    sign = "<=" if passed else ">"
    detail = (
        f"{result.test} ({result.alternative}, n={result.n}): "
        f"p = {result.p_value:.4g} {sign} alpha {alpha:.4g}"
    )
    return Criterion("p_value", passed, result.p_value, alpha, detail)


def _ci_low(
    stage: GateStage,
    direction: str,
    per_sample: tuple[np.ndarray, np.ndarray] | None,
    clusters: np.ndarray | None,
    n_resamples: int,
    seed: int,
) -> tuple[Criterion, dict | None]:
    """The cluster-bootstrap interval's lower end against `stage.ci_low_min`."""
    if per_sample is None:
        detail = "per-sample scores missing: the bootstrap bound cannot be checked"
        return Criterion("ci_low", False, None, stage.ci_low_min, detail), None
    base, cand = (np.asarray(x, dtype=np.float64) for x in per_sample)
    if base.shape != cand.shape or base.ndim != 2 or base.shape[0] != len(stage.seeds):
        raise ValueError(
            f"unpaired comparison: per-sample scores must both be (n_seeds={len(stage.seeds)}, "
            f"n_samples); got {base.shape} and {cand.shape}"
        )
    deltas = cand - base if direction == "maximize" else base - cand
    groups = np.arange(deltas.shape[1]) if clusters is None else clusters
    interval = stats.cluster_bootstrap(
        deltas, groups, n_resamples=n_resamples, confidence=CI_CONFIDENCE, seed=seed
    )
    criterion = _at_least(
        "ci_low", interval["low"], stage.ci_low_min, f"{CI_CONFIDENCE:.0%} cluster-bootstrap low"
    )
    return criterion, interval


def _non_inferior(name: str, margin: float, comparison: Worsening | None) -> Criterion:
    """The candidate may be worse than the baseline on diagnostic `name` by at most `margin`."""
    key = f"non_inferiority:{name}"
    if comparison is None:
        return Criterion(key, False, None, margin, f"diagnostic {name!r} missing")
    passed = bool(comparison.worse <= margin)
    sign = "<=" if passed else ">"
    detail = f"{comparison.detail}: worse by {comparison.worse:.4g} {sign} margin {margin:.4g}"
    return Criterion(key, passed, comparison.worse, margin, detail)
