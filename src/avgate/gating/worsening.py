"""Diagnostics a gate stage can hold a candidate to: how much worse than the baseline it may be.

Each entry of `DIAGNOSTICS` turns the per-seed metrics dicts (one per seed, baseline and
candidate: `evaluate`'s validation metrics plus the test scores a recorded look computes) into a
`Worsening`: the two seed-mean values and how much
worse the candidate is, oriented so that a positive number is worse. A non-inferiority margin
in `gates.yaml` (`non_inferiority: {ece: 0.02}`) bounds that number.

- `ece`, `adaptive_ece`, `nll`, `brier`: calibration on test before temperature scaling;
  worse = candidate - baseline.
- `class_recall`: each class's recall on test; worse = the largest recall loss of any class
  (baseline - candidate), so one class cannot be sacrificed for the mean.
- `modality_reliance`: the drop of the primary metric on validation when one modality is taken
  from another clip (ablations need the model, which a look does not run); worse = the largest
  increase of that drop over the modalities, so a candidate that leans
  harder on one modality (the camera, say) than the baseline did is caught.
- `fallback_used_frac`: the share of validation clips whose eventness was too flat to anchor and
  fell back to the uniform budget (`budget.fallback_std`); worse = candidate - baseline, so a
  margin of 0 requires that the fallback rate not rise.

>>> base = [{"calibration_test": {"before": {"ece": 0.04}}}]
>>> cand = [{"calibration_test": {"before": {"ece": 0.07}}}]
>>> w = worsening("ece", base, cand)
>>> round(w.worse, 2), w.detail
(0.03, 'ece on test (before calibration), seed mean: candidate 0.07 - baseline 0.04')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CALIBRATION = ("ece", "adaptive_ece", "nll", "brier")
ABLATION_SUFFIX = "_from_other_clip"


@dataclass(frozen=True)
class Worsening:
    """How much worse the candidate is on one diagnostic (positive = worse).

    >>> Worsening(0.04, 0.07, 0.03, "ece").worse > 0
    True
    """

    baseline: float
    candidate: float
    worse: float
    detail: str


def _seed_mean(per_seed: list[dict], read: Callable[[dict], float]) -> float:
    return float(np.mean([read(m) for m in per_seed]))


def _calibration(name: str) -> Callable[[list[dict], list[dict]], Worsening]:
    def compare(baseline: list[dict], candidate: list[dict]) -> Worsening:
        def read(m: dict) -> float:
            return m["calibration_test"]["before"][name]

        base, cand = _seed_mean(baseline, read), _seed_mean(candidate, read)
        detail = (
            f"{name} on test (before calibration), seed mean: "
            f"candidate {cand:.4g} - baseline {base:.4g}"
        )
        return Worsening(base, cand, cand - base, detail)

    return compare


def _largest_loss(
    baseline: dict[str, float], candidate: dict[str, float], what: str, higher_is_worse: bool
) -> Worsening:
    """The item (class or modality) where the candidate lost most against the baseline."""
    missing = sorted(set(baseline) ^ set(candidate))
    if missing:
        raise KeyError(f"{what}: baseline and candidate differ in {missing}")
    if not baseline:
        raise KeyError(f"{what}: nothing to compare")
    sign = 1.0 if higher_is_worse else -1.0
    losses = {key: sign * (candidate[key] - baseline[key]) + 0.0 for key in baseline}
    key = max(sorted(losses), key=losses.get)
    detail = (
        f"{what}, largest loss at {key!r}, seed mean: "
        f"candidate {candidate[key]:.4g} vs baseline {baseline[key]:.4g}"
    )
    return Worsening(baseline[key], candidate[key], losses[key], detail)


def _recalls(per_seed: list[dict]) -> dict[str, float]:
    classes = per_seed[0]["per_class_test"]
    return {
        c: _seed_mean(per_seed, lambda m, c=c: m["per_class_test"][c]["recall"]) for c in classes
    }


def _class_recall(baseline: list[dict], candidate: list[dict]) -> Worsening:
    return _largest_loss(_recalls(baseline), _recalls(candidate), "recall per class on test", False)


def _drops(per_seed: list[dict]) -> dict[str, float]:
    names = [k for k in per_seed[0].get("modality_ablation_val", {}) if k.endswith(ABLATION_SUFFIX)]
    return {
        name.removesuffix(ABLATION_SUFFIX): _seed_mean(
            per_seed, lambda m, name=name: m["modality_ablation_val"][name]["drop"]
        )
        for name in names
    }


def _modality_reliance(baseline: list[dict], candidate: list[dict]) -> Worsening:
    what = "primary-metric drop on validation with one modality from another clip"
    return _largest_loss(_drops(baseline), _drops(candidate), what, True)


def _fallback_used_frac(baseline: list[dict], candidate: list[dict]) -> Worsening:
    def read(m: dict) -> float:
        return m["budget"]["fallback_used_frac"]["val"]

    base, cand = _seed_mean(baseline, read), _seed_mean(candidate, read)
    detail = (
        "share of val clips too flat to anchor (budget fallback to uniform), seed mean: "
        f"candidate {cand:.4g} - baseline {base:.4g}"
    )
    return Worsening(base, cand, cand - base, detail)


DIAGNOSTICS: dict[str, Callable[[list[dict], list[dict]], Worsening]] = {
    **{name: _calibration(name) for name in CALIBRATION},
    "class_recall": _class_recall,
    "modality_reliance": _modality_reliance,
    "fallback_used_frac": _fallback_used_frac,
}


def worsening(name: str, baseline: list[dict], candidate: list[dict]) -> Worsening | None:
    """`name` compared over the per-seed metrics dicts, or None when they lack what it needs.

    >>> worsening("modality_reliance", [{}], [{}]) is None
    True
    """
    try:
        return DIAGNOSTICS[name](baseline, candidate)
    except KeyError:
        return None
