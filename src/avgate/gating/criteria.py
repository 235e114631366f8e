"""Gate criteria: what a stage of `gates.yaml` checks, each one a registered plugin.

A criterion declares the stage keys it reads as a frozen dataclass of `avgate.declare.param`
fields (`options_type`, parsed and checked by `avgate.declare` with errors naming gates.yaml and
the key), relates them to the rest of the stage in `check`, and judges a look in `judge`, which
turns the look's `verdict.Evidence` into `verdict.Criterion` records (one, or one per item) and
any statistics the report should show. `spec.parse_stage` reads every registered criterion's
keys; `verdict.judge` runs the stage's criteria in registry order, and the stage passes only if
every record passes. Built in, in this order: `min_delta`, `p_value`, `ci_low` (keys `ci_low_min`
and `resample_seeds`) and `non_inferiority`. docs/extending.md says how to add one.

>>> list(CRITERIA)
['min_delta', 'p_value', 'ci_low', 'non_inferiority']
>>> CRITERIA["ci_low"].stage_keys()
('ci_low_min', 'resample_seeds')
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from avgate import stats
from avgate.declare import REQUIRED, bound, fail, param
from avgate.gating.verdict import Criterion, Evidence, Judged, alpha_correction
from avgate.gating.worsening import DIAGNOSTICS, Worsening

if TYPE_CHECKING:
    from avgate.gating.spec import GateStage

MAX_SEEDS_SUGGESTED = 1000  # how far the unreachable-alpha message looks for enough seeds


class GateCriterion(ABC):
    """One check of a gate stage: the keys it reads, how they are checked, how a look is judged.

    Class attributes: `name` (set by `register_criterion`; `judge`'s records carry it, or
    `<name>:<item>` when one record is made per item); `options_type`, the frozen dataclass of
    `param` fields whose names are the gates.yaml stage keys it reads (REQUIRED ones must be
    written in every stage); `example`, those keys as a stage would set them (the contract test
    parses it). `is_test`: a test at the stage's alpha per look, counted by `avgate plan check`'s
    power. `rests_on_groups`: needs the spec's `min_groups` test groups, refused before a look
    with fewer. `needs_per_sample`: reads per-sample scores (the primary metric must then be a
    mean over samples). `hashed_when_absent`: the spec hash carries its keys' defaults when a
    stage leaves them out (True only for the criteria that existed before this registry, so
    plans hashed then keep their hash; a new criterion leaves it False, and registering it
    changes no plan's hash).
    """

    name: ClassVar[str]
    options_type: ClassVar[type]
    example: ClassVar[dict[str, Any]]
    is_test: ClassVar[bool] = False
    rests_on_groups: ClassVar[bool] = False
    needs_per_sample: ClassVar[bool] = False
    hashed_when_absent: ClassVar[bool] = False

    def __init__(self, options: Any) -> None:
        self.options = options

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.options == self.options  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # options may hold a mapping

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options!r})"

    @classmethod
    def stage_keys(cls) -> tuple[str, ...]:
        """The gates.yaml stage keys this criterion reads."""
        return tuple(f.name for f in dataclasses.fields(cls.options_type))

    def applies(self) -> bool:
        """Whether a stage with these options is judged by this criterion (e.g. an interval
        only when its bound is set)."""
        return True

    def check(self, stage: GateStage, where: str, source: str) -> None:  # noqa: B027
        """Refuse, when the plan is read, options that cannot work with the rest of `stage`
        (errors name `source` and `where` + the key). Runs whether or not the criterion applies."""

    def diagnostics(self) -> tuple[str, ...]:
        """The diagnostics (`gating.diagnostics.DIAGNOSTICS`) a look must compare for it."""
        return ()

    def describe(self, stage: GateStage) -> str:
        """What it tests, in words, for `avgate plan check`'s report ("" to say nothing)."""
        return ""

    @abstractmethod
    def judge(self, stage: GateStage, evidence: Evidence) -> Judged:
        """The records of one look at `stage` (and statistics for the report)."""


CRITERIA: dict[str, type[GateCriterion]] = {}
Kind = TypeVar("Kind", bound=type[GateCriterion])


def register_criterion(name: str) -> Callable[[Kind], Kind]:
    """Class decorator: make a `GateCriterion` part of every stage that writes its keys; it sets
    the class's `name`. Keys must be new: two criteria never read the same key."""

    def add(cls: Kind) -> Kind:
        if not issubclass(cls, GateCriterion):
            raise TypeError(f"{cls.__name__} is not a GateCriterion")
        if not dataclasses.is_dataclass(getattr(cls, "options_type", None)):
            raise TypeError(f"{cls.__name__}.options_type must be a dataclass of its stage keys")
        if not isinstance(getattr(cls, "example", None), dict):
            raise TypeError(f"{cls.__name__}.example must be a mapping of its stage keys")
        if name in CRITERIA:
            raise ValueError(f"gate criterion {name!r} is registered twice")
        taken = {key: other for other, c in CRITERIA.items() for key in c.stage_keys()}
        shared = sorted(set(cls.stage_keys()) & set(taken))
        if shared:
            raise ValueError(
                f"gate criterion {name!r} reads key(s) {shared} that {taken[shared[0]]!r} reads"
            )
        cls.name = name
        CRITERIA[name] = cls
        return cls

    return add


def at_least(name: str, value: float, threshold: float, what: str) -> Criterion:
    """A record that passes when `value` >= `threshold`.

    >>> at_least("min_delta", 0.03, 0.02, "mean delta").detail
    'mean delta 0.03 >= 0.02'
    """
    passed = bool(value >= threshold)
    sign = ">=" if passed else "<"
    return Criterion(name, passed, value, threshold, f"{what} {value:.4g} {sign} {threshold:.4g}")


@dataclass(frozen=True)
class MinDeltaOptions:
    min_delta: float = param(
        REQUIRED, "the least mean per-seed delta (positive: the candidate is better) to pass"
    )


@register_criterion("min_delta")
class MinDelta(GateCriterion):
    """The mean per-seed delta must reach `min_delta`, the effect the plan cares about (also the
    effect `avgate plan check` computes power at)."""

    options_type = MinDeltaOptions
    example = {"min_delta": 0.02}

    def judge(self, stage: GateStage, evidence: Evidence) -> Judged:
        threshold = self.options.min_delta
        return Judged((at_least(self.name, evidence.mean_delta, threshold, "mean delta"),))


@dataclass(frozen=True)
class NoOptions:
    """The options of a criterion that reads no stage key of its own."""


@register_criterion("p_value")
class PValue(GateCriterion):
    """The stage's paired test (`statistic`, `alternative`) must give p <= alpha per look.

    A stage whose test can never get there with its seeds (an exact test's smallest p is above
    the alpha per look) is refused when the plan is read rather than left to fail every look.
    """

    options_type = NoOptions
    example: ClassVar[dict[str, Any]] = {}
    is_test = True

    def check(self, stage: GateStage, where: str, source: str) -> None:
        statistic = stats.STATISTICS[stage.statistic]
        n, per_look = len(stage.seeds), stage.alpha_per_look
        floor = statistic.min_p_value(n, stage.alternative)
        if floor <= per_look:
            return
        sided = "two-sided" if stage.alternative == "two-sided" else "one-sided"
        fixes = ["raise alpha", "lower looks"]
        enough = _fewest_seeds(statistic, stage.alternative, per_look, n)
        if enough is not None:
            fixes.insert(0, f"add seeds (at least {enough} for {per_look:g} per look)")
        others = [
            name
            for name, other in stats.STATISTICS.items()
            if not other.seeds_problem(n) and other.min_p_value(n, stage.alternative) <= per_look
        ]
        if others:
            fixes.append(f"use statistic: {' or '.join(others)}")
        fail(
            f"{where}.alpha",
            f"is out of reach: an exact {sided} test ({stage.statistic}) with {n} seeds cannot "
            f"go below p = {floor:g}, so alpha {stage.alpha:g} over {stage.looks} look(s) "
            f"(Bonferroni: {per_look:g} per look) can never pass; {', '.join(fixes)}",
            stage.alpha,
            source,
        )

    def judge(self, stage: GateStage, evidence: Evidence) -> Judged:
        result, alpha = evidence.test, stage.alpha_per_look
        passed = bool(result.p_value <= alpha)
        sign = "<=" if passed else ">"
        detail = (
            f"{result.test} ({result.alternative}, n={result.n}): "
            f"p = {result.p_value:.4g} {sign} alpha {alpha:.4g} "
            f"({alpha_correction(stage)['detail']})"
        )
        return Judged((Criterion(self.name, passed, result.p_value, alpha, detail),))


def _fewest_seeds(
    statistic: stats.PairedStatistic, alternative: str, per_look: float, n: int
) -> int | None:
    """The fewest seeds above `n` whose floor is within `per_look`, if the test takes that many."""
    for more in range(n + 1, MAX_SEEDS_SUGGESTED + 1):
        if statistic.seeds_problem(more):
            return None
        if statistic.min_p_value(more, alternative) <= per_look:
            return more
    return None


@dataclass(frozen=True)
class CiLowOptions:
    ci_low_min: float | None = param(
        None,
        "the least lower end of the group-bootstrap interval of the mean delta (null: none)",
    )
    resample_seeds: bool = param(
        False, "the interval resamples seeds too: the claim is the procedure, not these models"
    )


@register_criterion("ci_low")
class CiLow(GateCriterion):
    """The lower end of a bootstrap interval of the mean per-sample delta must reach
    `ci_low_min`. The interval resamples the test split's groups, then clips within them (and
    seeds, with `resample_seeds`), at the two-sided confidence whose lower end spends the alpha
    per look (`interval_confidence`); with groups missing or fewer than `min_groups` it fails
    and says why."""

    options_type = CiLowOptions
    example = {"ci_low_min": 0.0, "resample_seeds": True}
    is_test = True
    rests_on_groups = True
    needs_per_sample = True
    hashed_when_absent = True

    def applies(self) -> bool:
        return self.options.ci_low_min is not None

    def check(self, stage: GateStage, where: str, source: str) -> None:
        if self.applies() and stage.alpha_per_look >= 0.5:
            fail(
                f"{where}.alpha",
                f"must leave the interval some confidence: ci_low_min bounds a two-sided interval "
                f"at confidence 1 - 2 * alpha / looks, and alpha {stage.alpha:g} over "
                f"{stage.looks} look(s) leaves none; lower alpha",
                stage.alpha,
                source,
            )
        if self.options.resample_seeds and not self.applies():
            fail(
                f"{where}.resample_seeds",
                "needs ci_low_min: only the bootstrap interval resamples seeds, and this stage "
                "asks for none; set ci_low_min or remove resample_seeds",
                True,
                source,
            )

    def describe(self, stage: GateStage) -> str:
        over = "groups, clips and seeds" if self.options.resample_seeds else "groups and clips"
        return (
            f"{interval_confidence(stage):.4g} group-bootstrap lower end >= "
            f"{self.options.ci_low_min:g} (resampling {over})"
        )

    def judge(self, stage: GateStage, evidence: Evidence) -> Judged:
        threshold = self.options.ci_low_min
        missing = _missing(evidence, stage.split)
        if missing:
            return Judged(
                (Criterion(self.name, False, None, threshold, missing),), {"bootstrap": None}
            )
        base, cand = (np.asarray(x, dtype=np.float64) for x in evidence.per_sample)
        if base.shape != cand.shape or base.ndim != 2 or base.shape[0] != len(stage.seeds):
            raise ValueError(
                f"unpaired comparison: per-sample scores must both be (n_seeds={len(stage.seeds)}"
                f", n_samples); got {base.shape} and {cand.shape}"
            )
        deltas = cand - base if evidence.direction == "maximize" else base - cand
        interval = stats.group_bootstrap(
            deltas,
            evidence.groups,
            evidence.clusters,
            resample_seeds=self.options.resample_seeds,
            n_resamples=evidence.n_resamples,
            confidence=interval_confidence(stage),
            seed=evidence.seed,
        )
        what = (
            f"{interval['confidence']:.4g} group-bootstrap low ({interval['n_groups']} groups, "
            f"{interval['claim']})"
        )
        record = at_least(self.name, interval["low"], threshold, what)
        return Judged((record,), {"bootstrap": interval, "claim": interval["claim"]})


def interval_confidence(stage: GateStage) -> float:
    """The two-sided confidence whose lower end is a one-sided bound at the alpha per look.

    The ci_low criterion is a test too, so it spends the same Bonferroni share as the p-value.

    >>> from dataclasses import replace
    >>> from avgate.gating.spec import parse_stage
    >>> stage = parse_stage({"name": "t", "split": "test", "seeds": [0, 1], "alpha": 0.05,
    ...                      "statistic": "paired_t", "alternative": "greater", "looks": 2,
    ...                      "min_delta": 0.0, "ci_low_min": 0.0})
    >>> interval_confidence(stage), interval_confidence(replace(stage, looks=1))
    (0.95, 0.9)
    """
    return round(1 - 2 * stage.alpha_per_look, 12)


def _missing(evidence: Evidence, split: str) -> str:
    """Why the interval cannot be computed, or "" when it can."""
    if evidence.per_sample is None:
        return "per-sample scores missing: the bootstrap bound cannot be checked"
    if evidence.groups is None:
        return f"{split} groups missing: the interval resamples groups and cannot be computed"
    n_groups = len(np.unique(np.asarray(evidence.groups)))
    if n_groups < evidence.min_groups:
        return (
            f"{n_groups} {split} groups, fewer than min_groups {evidence.min_groups}: an interval "
            "over so few groups does not generalise to new groups"
        )
    return ""


@dataclass(frozen=True)
class NonInferiorityOptions:
    non_inferiority: dict[str, float] = param(
        {},
        "diagnostic -> the most the candidate may be worse than the baseline on it",
        bound(">= 0", each=True),
    )


@register_criterion("non_inferiority")
class NonInferiority(GateCriterion):
    """For each diagnostic named (`gating.diagnostics`: ECE, recall per class, ...), the
    candidate may be worse than the baseline by at most its margin; one record per diagnostic,
    failed when the diagnostic is missing."""

    options_type = NonInferiorityOptions
    example = {"non_inferiority": {"ece": 0.03, "class_recall": 0.15}}
    hashed_when_absent = True

    def applies(self) -> bool:
        return bool(self.options.non_inferiority)

    def check(self, stage: GateStage, where: str, source: str) -> None:
        unknown = sorted(set(self.options.non_inferiority) - set(DIAGNOSTICS))
        if unknown:
            fail(
                f"{where}.non_inferiority",
                f"must name diagnostics among {list(DIAGNOSTICS)}; unknown: {unknown}",
                self.options.non_inferiority,
                source,
            )

    def diagnostics(self) -> tuple[str, ...]:
        return tuple(self.options.non_inferiority)

    def judge(self, stage: GateStage, evidence: Evidence) -> Judged:
        return Judged(
            tuple(
                _non_inferior(f"{self.name}:{name}", margin, evidence.diagnostics.get(name))
                for name, margin in self.options.non_inferiority.items()
            )
        )


def _non_inferior(key: str, margin: float, comparison: Worsening | None) -> Criterion:
    """The candidate may be worse than the baseline on one diagnostic by at most `margin`."""
    if comparison is None:
        name = key.split(":", 1)[1]
        return Criterion(key, False, None, margin, f"diagnostic {name!r} missing")
    passed = bool(comparison.worse <= margin)
    sign = "<=" if passed else ">"
    detail = f"{comparison.detail}: worse by {comparison.worse:.4g} {sign} margin {margin:.4g}"
    return Criterion(key, passed, comparison.worse, margin, detail)


def is_test_record(stage: GateStage, record: Criterion) -> bool:
    """Whether a verdict's record comes from one of the stage's tests (`is_test`): its name, up
    to a `:`, is that criterion's."""
    tests = {c.name for c in stage.criteria if c.is_test}
    return record.name.split(":", 1)[0] in tests
