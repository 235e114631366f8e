"""Checks on the validation scores over seeds (metrics/scores.json, written by `train`): the
primary metric must not swing too much from seed to seed, and the probabilities must be
calibrated.

>>> SeedStd.phase, Calibration.phase
('reproducibility', 'learning')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avgate.declare import REQUIRED, bound, param
from avgate.go.base import CheckResult, Context, GoCheck, at_most, lookup, register_check
from avgate.layout.results import SCORES


@dataclass(frozen=True)
class SeedStdOptions:
    max_std: float = param(
        REQUIRED,
        "the largest sample standard deviation over seeds of the primary metric on validation",
        bound(">= 0"),
    )


@register_check("seed_std")
class SeedStd(GoCheck):
    """The sample standard deviation (ddof=1) over seeds of the primary metric on validation
    must stay within `max_std`. With one seed there is no spread to measure: not applicable."""

    phase = "reproducibility"
    options_type = SeedStdOptions
    example = {"max_std": 0.03}

    def evidence(self, context: Context) -> tuple[Path, ...]:
        return (SCORES,)

    def applies(self, context: Context) -> str | None:
        n_seeds = lookup(context.read(SCORES), SCORES, "n_seeds")
        if n_seeds < 2:
            return f"{SCORES}: {n_seeds} seed: no spread over seeds to measure (train.seeds)"
        return None

    def run(self, context: Context) -> CheckResult:
        scores = context.read(SCORES)
        metric = lookup(scores, SCORES, "primary_metric")
        std = lookup(scores, SCORES, "val", metric, "std")
        what = f"val {metric} sample std over {scores['n_seeds']} seeds"
        return at_most(std, self.options.max_std, what, self.evidence(context))


@dataclass(frozen=True)
class CalibrationOptions:
    max_ece: float = param(
        REQUIRED,
        "the largest expected calibration error on validation (before temperature scaling, "
        "mean over seeds)",
        bound("[0, 1]"),
    )


@register_check("calibration")
class Calibration(GoCheck):
    """The model's own probabilities must be calibrated: the expected calibration error on
    validation before any temperature scaling (the ECE `metrics/eval.json` shows), mean over
    seeds, at most `max_ece`."""

    phase = "learning"
    options_type = CalibrationOptions
    example = {"max_ece": 0.1}

    def evidence(self, context: Context) -> tuple[Path, ...]:
        return (SCORES,)

    def run(self, context: Context) -> CheckResult:
        scores = context.read(SCORES)
        ece = lookup(scores, SCORES, "calibration_val", "ece", "before", "mean")
        what = f"val ECE before temperature scaling, mean over {scores.get('n_seeds')} seeds"
        return at_most(ece, self.options.max_ece, what, self.evidence(context))
