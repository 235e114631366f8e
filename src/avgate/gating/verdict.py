"""One gate stage's decision: the criteria a candidate must meet against the baseline, and why.

`judge` compares the primary metric of the candidate and the baseline seed by seed (the same
seeds in the same order), with the delta oriented so that positive means better (candidate -
baseline when the metric is maximized, baseline - candidate when minimized). It runs the stage's
paired test (`avgate.stats.STATISTICS`), then each of the stage's criteria
(`gating.criteria`, in registry order) on that `Evidence`; each criterion gives one `Criterion`
record (or one per item) with its value, threshold and pass/fail, and the stage passes only if
all do. The statistics (the test's name, sidedness and pairing, the per-seed deltas, the
correction, the number of test groups, what the claim generalises over, the interval) travel
with the verdict so the report can show every number it used.

>>> from avgate.gating.spec import parse_stage
>>> stage = parse_stage({"name": "quick_test", "split": "test", "seeds": [0, 1, 2],
...                      "statistic": "sign_flip", "alternative": "greater", "alpha": 0.25,
...                      "looks": 2, "min_delta": 0.018})
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

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from avgate import stats
from avgate.gating.worsening import Worsening

if TYPE_CHECKING:
    from avgate.gating.spec import GateStage

CI_CONFIDENCE = 0.95  # descriptive intervals; the ci_low bound uses `criteria.interval_confidence`
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


@dataclass(frozen=True)
class Evidence:
    """What one look gives each criterion: the oriented per-seed `deltas` and the stage's paired
    `test` of them; `per_sample` (baseline, candidate), each (n_seeds, n_samples) per-sample
    scores, with each sample's split group (`groups`) and clip (`clusters`), when the look has
    them; the spec's `min_groups`; `diagnostics` by name (`gating.diagnostics`); the bootstrap's
    resamples and seed."""

    direction: str
    deltas: np.ndarray
    test: stats.TestResult
    per_sample: tuple[np.ndarray, np.ndarray] | None = None
    groups: np.ndarray | None = None
    clusters: np.ndarray | None = None
    min_groups: int = 2
    diagnostics: dict[str, Worsening | None] = field(default_factory=dict)
    n_resamples: int = 10000
    seed: int = 0

    @property
    def mean_delta(self) -> float:
        return float(self.deltas.mean())


@dataclass(frozen=True)
class Judged:
    """A criterion's records of one look, and statistics it adds to the verdict's."""

    criteria: tuple[Criterion, ...]
    statistics: dict = field(default_factory=dict)


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

    `per_sample` is (baseline, candidate), each (n_seeds, n_samples) of per-sample scores, read
    by criteria that need them (`ci_low`); `groups` (n_samples,) names each sample's split group
    (speaker, channel, video) and `clusters` (n_samples,) its clip (each sample its own clip
    when omitted); `min_groups` is the spec's. `diagnostics` maps a name to the `Worsening` of a
    diagnostic such as ECE (`gating.diagnostics`). Scores of the wrong length mean the
    comparison is not paired by the stage's seeds, and raise ValueError.

    >>> from avgate.gating.spec import parse_stage
    >>> stage = parse_stage({"name": "t", "split": "test", "seeds": [0, 1, 2], "looks": 1,
    ...                      "statistic": "paired_t", "alternative": "greater", "alpha": 0.05,
    ...                      "min_delta": 0.0, "non_inferiority": {"ece": 0.01}})
    >>> ece = Worsening(0.05, 0.08, 0.03, "ece: candidate 0.08 - baseline 0.05")
    >>> v = judge(stage, "minimize", np.array([0.3, 0.3, 0.3]), np.array([0.2, 0.21, 0.19]),
    ...           diagnostics={"ece": ece})
    >>> [(c.name, c.passed) for c in v.criteria]
    [('min_delta', True), ('p_value', True), ('non_inferiority:ece', False)]
    >>> v.statistics["alpha_correction"]["alpha_per_look"], v.statistics["n_groups"]
    (0.05, None)
    """
    deltas = seed_deltas(stage, direction, baseline_scores, candidate_scores)
    result = stats.STATISTICS[stage.statistic].test(deltas, alternative=stage.alternative)
    n_groups = None if groups is None else len(np.unique(np.asarray(groups)))
    statistics = {
        "test": result.as_dict(),
        "direction": direction,
        "delta": "candidate - baseline" if direction == "maximize" else "baseline - candidate",
        "seeds": list(stage.seeds),
        "deltas": deltas.tolist(),
        "mean_delta": float(deltas.mean()),
        "alpha_correction": alpha_correction(stage),
        "n_groups": n_groups,
        "claim": _seed_claim(n_groups),
    }
    evidence = Evidence(
        direction, deltas, result, per_sample, groups, clusters, min_groups,
        diagnostics or {}, n_resamples, seed,
    )  # fmt: skip
    records: list[Criterion] = []
    for criterion in stage.criteria:
        judged = criterion.judge(stage, evidence)
        records += judged.criteria
        statistics |= judged.statistics
    passed = all(c.passed for c in records)
    return StageVerdict(stage.name, passed, tuple(records), statistics)


def alpha_correction(stage: GateStage) -> dict:
    """How the stage's family alpha is split over its declared looks.

    >>> from avgate.gating.spec import parse_stage
    >>> stage = parse_stage({"name": "t", "split": "test", "seeds": [0, 1], "looks": 2,
    ...                      "statistic": "paired_t", "alternative": "greater", "alpha": 0.05,
    ...                      "min_delta": 0.0})
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

    >>> from avgate.gating.spec import parse_stage
    >>> stage = parse_stage({"name": "t", "split": "test", "seeds": [0, 1], "looks": 1,
    ...                      "statistic": "paired_t", "alternative": "greater", "alpha": 0.05,
    ...                      "min_delta": 0.0})
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


def _seed_claim(n_groups: int | None) -> str:
    """What a test over seeds alone generalises over: new seeds, the same test samples."""
    if n_groups is None:
        return "this training procedure on this test set"
    return f"this training procedure on these {n_groups} test groups"
