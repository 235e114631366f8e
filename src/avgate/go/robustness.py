"""Checks on how an audio-visual head uses its audio, item by item and under stress, read from
the `probe` stage's files (reports/probe/{items,stress,policies}.json, written by
`avgate.probes.items`, `.stress` and `.policies`, whose docstrings define every figure). A LoRA
run or a model without both an audio and a visual input has none of these: the probes say so
and the checks do not apply.

>>> AudioDependence.phase, IrrelevanceStress.phase, GateParity.phase, GatingPolicy.phase
('robustness', 'robustness', 'safety', 'efficiency')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avgate.declare import REQUIRED, bound, one_of, param
from avgate.go.base import (
    CheckResult,
    Context,
    ProbeCheck,
    at_least,
    at_most,
    below,
    lookup,
    probe_result,
    register_check,
)
from avgate.layout.results import probe_path

ITEMS, STRESS, POLICIES = "items", "stress", "policies"  # the probes' names (avgate.probes)
REFERENCES = ("other_seeds", "other_clip")  # probes.items.REFERENCES
STRESSES = ("noise", "from_other_clip")  # probes.stress.STRESSES
HEURISTICS = ("confidence", "entropy")  # probes.policies.HEURISTICS


def _seeds_shown(per_seed: dict, *keys: str) -> str:
    """'0.1, 0.2' from each seed's value at `keys` (None shown as n/a)."""
    values = []
    for summary in per_seed.values():
        for key in keys:
            summary = summary[key]
        values.append("n/a" if summary is None else f"{summary:.4g}")
    return ", ".join(values)


def _undefined(what: str, why: str, threshold: float, rule: str, path: Path) -> CheckResult:
    """A failed result for a statistic the evidence leaves undefined (`what` may end in the
    colon the passing detail puts before its value).

    >>> _undefined("share:", "no items", 0.8, ">=", Path("items.json")).detail
    'UNDEFINED: share: no items'
    """
    detail = f"UNDEFINED: {what.rstrip(':')}: {why}"
    return CheckResult(None, threshold, False, detail, (str(path),), rule)


@dataclass(frozen=True)
class AudioDependenceOptions:
    min_dependent_drop: float = param(
        REQUIRED,
        "the least share of audio-dependent validation items that go wrong when the audio is "
        "muted, measured on a model other than the one that found them (mean over seeds)",
        bound("[0, 1]"),
    )
    max_free_drop: float = param(
        REQUIRED,
        "the largest share of modality-free validation items (right with both modalities "
        "muted) that go wrong when only the audio is muted (mean over seeds)",
        bound("[0, 1]"),
    )
    reference: str = param(
        "other_seeds",
        "where the drop of audio-dependent items is measured: other_seeds (items found on one "
        "seed's model, the drop on every other seed's) or other_clip (items wrong with another "
        "clip's audio, the drop with the audio muted, same model)",
        one_of(*REFERENCES),
    )


@register_check("audio_dependence")
class AudioDependence(ProbeCheck):
    """Leave one modality out, by item: items that need the audio must go wrong without it
    (at least `min_dependent_drop`), items that need no modality must not (at most
    `max_free_drop`). Both must hold; the result shows the one that fails (the dependent drop
    when both pass). With `reference: other_seeds` and one seed: not applicable."""

    phase = "robustness"
    probe = ITEMS
    options_type = AudioDependenceOptions
    example = {"min_dependent_drop": 0.8, "max_free_drop": 0.05, "reference": "other_seeds"}

    def applies(self, context: Context) -> str | None:
        data, reason = probe_result(context, ITEMS)
        if data is None:
            return reason
        seeds = lookup(data, probe_path(ITEMS), "seeds")
        if self.options.reference == "other_seeds" and len(seeds) < 2:
            return (
                f"{probe_path(ITEMS)}: {len(seeds)} seed: no other seed's model to measure the "
                "drop on (train.seeds, or reference: other_clip)"
            )
        return None

    def run(self, context: Context) -> CheckResult:
        data, path = self.findings(context)
        ref = self.options.reference
        dependent = lookup(data, path, "mean", "dependent_drop", ref)
        free = lookup(data, path, "mean", "free_drop")
        per_seed = lookup(data, path, "per_seed")
        seeds_dep = _seeds_shown(per_seed, "dependent_drop", ref)
        what_dep = f"share of audio-dependent val items wrong with audio muted ({ref}), mean " \
            f"of seeds ({seeds_dep}):"  # fmt: skip
        what_free = "share of modality-free val items wrong with audio muted, mean of seeds " \
            f"({_seeds_shown(per_seed, 'free_drop')}):"  # fmt: skip
        if dependent is None:
            why = "no seed has audio-dependent items to measure (the model ignores its audio?)"
            return _undefined(what_dep, why, self.options.min_dependent_drop, ">=", path)
        first = at_least(dependent, self.options.min_dependent_drop, what_dep, (path,))
        if free is None:  # no row is right with both modalities muted: nothing can drop
            return CheckResult(first.value, first.threshold, first.passed,
                               f"{first.detail}; no modality-free items", first.evidence,
                               first.rule)  # fmt: skip
        second = at_most(free, self.options.max_free_drop, what_free, (path,))
        shown, other = (second, first) if first.passed and not second.passed else (first, second)
        return CheckResult(shown.value, shown.threshold, first.passed and second.passed,
                           f"{shown.detail}; {other.detail}", shown.evidence,
                           shown.rule)  # fmt: skip


@dataclass(frozen=True)
class IrrelevanceStressOptions:
    max_use: float = param(
        REQUIRED,
        "the largest share of validation rows whose decision changes when muted audio is "
        "replaced by irrelevant audio (mean over seeds)",
        bound("[0, 1]"),
    )
    audio: str = param(
        "noise",
        "the irrelevant audio: noise (Gaussian, probe.noise_std standardised units) or "
        "from_other_clip (another clip's)",
        one_of(*STRESSES),
    )


@register_check("irrelevance_stress")
class IrrelevanceStress(ProbeCheck):
    """Audio that carries nothing must not move the model: with the audio replaced by noise
    or another clip's, the share of validation rows decided otherwise than with the audio muted
    stays at most `max_use` (mean over seeds)."""

    phase = "robustness"
    probe = STRESS
    options_type = IrrelevanceStressOptions
    example = {"max_use": 0.05, "audio": "noise"}

    def run(self, context: Context) -> CheckResult:
        data, path = self.findings(context)
        audio = self.options.audio
        use = lookup(data, path, "mean", "use", audio)
        per_seed = _seeds_shown(lookup(data, path, "per_seed"), "use", audio)
        what = f"share of val rows decided otherwise with {audio} audio than with audio " \
            f"muted, mean of seeds ({per_seed}):"  # fmt: skip
        return at_most(use, self.options.max_use, what, (path,))


@dataclass(frozen=True)
class GateParityOptions:
    max_abs_logit_diff: float = param(
        REQUIRED,
        "the bound (strict) on the mean absolute logit difference between real and irrelevant "
        "audio with the audio gate closed (largest over seeds and replacements)",
        bound(">= 0"),
    )


@register_check("gate_parity")
class GateParity(ProbeCheck):
    """Forward equivalence with the fusion gate off: with its audio gate closed, a gated-fusion
    head's logits must not depend on the audio (noise or another clip's in place of the real
    audio moves them by less than `max_abs_logit_diff`, mean absolute difference, the largest
    over seeds and replacements). Only a head with `train.fusion: gated` has the gate."""

    phase = "safety"
    probe = STRESS
    options_type = GateParityOptions
    example = {"max_abs_logit_diff": 1e-5}

    def applies(self, context: Context) -> str | None:
        data, reason = probe_result(context, STRESS)
        if data is None:
            return reason
        parity = lookup(data, probe_path(STRESS), "gate_parity")
        return None if parity.get("applies") else f"{probe_path(STRESS)}: {parity.get('reason')}"

    def run(self, context: Context) -> CheckResult:
        data, path = self.findings(context)
        diff = lookup(data, path, "gate_parity", "max_mean_abs_logit_diff")
        what = "mean |logit difference| real vs irrelevant audio with the audio gate closed, " \
            "largest over seeds:"  # fmt: skip
        return below(diff, self.options.max_abs_logit_diff, what, (path,))


@dataclass(frozen=True)
class GatingPolicyOptions:
    min_skipped: float = param(
        REQUIRED,
        "the least share of audio consultations a heuristic gate must skip",
        bound("[0, 1]"),
    )
    max_drop: float = param(
        REQUIRED,
        "the largest drop of the primary metric on validation from always-on that the gate "
        "may cost (mean over seeds)",
        bound(">= 0"),
    )


@register_check("gating_policy")
class GatingPolicy(ProbeCheck):
    """A cheap gate on the audio branch: some heuristic point (visual-only confidence or
    entropy threshold, `probes.policies`) skips at least `min_skipped` of the audio
    consultations for a primary-metric drop of at most `max_drop` (both means over seeds at
    the point). The result names the point that skips the most within the drop."""

    phase = "efficiency"
    probe = POLICIES
    options_type = GatingPolicyOptions
    example = {"min_skipped": 0.2, "max_drop": 0.01}

    def run(self, context: Context) -> CheckResult:
        data, path = self.findings(context)
        metric = lookup(data, path, "primary_metric")
        within = [
            p for p in lookup(data, path, "curve")
            if p["policy"] in HEURISTICS and p["drop"] is not None
            and p["drop"] <= self.options.max_drop
        ]  # fmt: skip
        if not within:
            why = f"no heuristic point drops {metric} by at most {self.options.max_drop:.4g}"
            return _undefined("skipped audio consultations", why, self.options.min_skipped,
                              ">=", path)  # fmt: skip
        best = max(within, key=lambda p: (p["skipped"], -p["drop"]))
        what = (
            f"share of audio consultations skipped by the {best['policy']} gate at threshold "
            f"{best['threshold']:.4g} (val {metric} drop {best['drop']:.4g} <= "
            f"{self.options.max_drop:.4g}; means of seeds):"
        )
        return at_least(best["skipped"], self.options.min_skipped, what, (path,))
