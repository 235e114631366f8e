"""Checks on the training path, each judging one probe's findings (reports/probe/<name>.json,
written by the `probe` stage): the head memorises a tiny subset (`overfit`), a killed and resumed
run ends where an uninterrupted one does (`resume`), a training step leaves memory to spare at
the configured batch size (`efficiency`), and the frozen path gives the same bytes on a rerun
and to every seed (`frozen`). Where a probe did not apply (a LoRA run for the first three), its
check is not applicable, with the probe's reason.

>>> [(c.name, c.phase) for c in (TinyOverfit, ResumeEqual, MemoryHeadroom, FrozenChecksums)]
...  # doctest: +NORMALIZE_WHITESPACE
[('tiny_overfit', 'learning'), ('resume_equal', 'reproducibility'),
 ('memory_headroom', 'efficiency'), ('frozen_checksums', 'reproducibility')]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from avgate.declare import REQUIRED, bound, param
from avgate.go.base import (
    CheckResult,
    Context,
    ProbeCheck,
    at_least,
    at_most,
    lookup,
    register_check,
)

LISTED = 5  # mismatching clip ids a detail line names


@dataclass(frozen=True)
class TinyOverfitOptions:
    max_loss: float = param(
        REQUIRED,
        "the largest mean cross-entropy on the tiny subset after the overfit run (eval mode)",
        bound(">= 0"),
    )
    min_accuracy: float = param(
        0.9, "the least accuracy on the tiny subset after the overfit run", bound("[0, 1]")
    )


@register_check("tiny_overfit")
class TinyOverfit(ProbeCheck):
    """The configured head, trained without regularisers on `probe.overfit_rows` fixed training
    rows for `probe.overfit_epochs` epochs (the `overfit` probe), must drive its loss on them to
    at most `max_loss` and its accuracy on them to at least `min_accuracy`: a head that cannot
    memorise a few hundred rows has a broken model, loss or data path."""

    phase = "learning"
    probe = "overfit"
    options_type = TinyOverfitOptions
    example = {"max_loss": 0.05, "min_accuracy": 0.9}

    def run(self, context: Context) -> CheckResult:
        data, path = self.findings(context)
        rows, epochs = lookup(data, path, "rows"), lookup(data, path, "epochs")
        evidence = self.evidence(context)
        loss = at_most(lookup(data, path, "train_loss"), self.options.max_loss,
                       f"loss on {rows} training rows after {epochs} epochs", evidence)  # fmt: skip
        accuracy = at_least(lookup(data, path, "train_accuracy"), self.options.min_accuracy,
                            "accuracy on them", evidence)  # fmt: skip
        failed_alone = loss.passed and not accuracy.passed
        first, second = (accuracy, loss) if failed_alone else (loss, accuracy)
        detail = f"{first.detail}; {second.detail}"
        return dataclasses.replace(first, passed=loss.passed and accuracy.passed, detail=detail)


@dataclass(frozen=True)
class ResumeEqualOptions:
    max_abs_diff: float = param(
        REQUIRED,
        "the largest absolute difference, over the final weights and the validation metrics, "
        "between a killed and resumed run and an uninterrupted one",
        bound(">= 0"),
    )


@register_check("resume_equal")
class ResumeEqual(ProbeCheck):
    """A run killed after half of `probe.resume_epochs` epochs and resumed from its checkpoint
    must end within `max_abs_diff` of the uninterrupted run, in every weight and every
    validation metric (the `resume` probe). A run that started afresh instead of resuming fails,
    whatever its weights."""

    phase = "reproducibility"
    probe = "resume"
    options_type = ResumeEqualOptions
    example = {"max_abs_diff": 0.0}

    def run(self, context: Context) -> CheckResult:
        data, path = self.findings(context)
        evidence = tuple(map(str, self.evidence(context)))
        killed = lookup(data, path, "killed_after_epoch")
        resumed = lookup(data, path, "resumed_from_epoch")
        weights = lookup(data, path, "max_abs_weight_diff")
        metrics = lookup(data, path, "max_abs_metric_diff")
        threshold = self.options.max_abs_diff
        if resumed != killed:
            detail = (
                f"the run killed after epoch {killed} resumed from epoch {resumed}: its "
                "checkpoint was not resumed (training/checkpoint.py refuses a changed key)"
            )
            return CheckResult(None, threshold, False, detail, evidence, "<=")
        if metrics is None:
            detail = "a validation metric is undefined in one of the two runs only"
            return CheckResult(None, threshold, False, detail, evidence, "<=")
        what = (
            f"|difference| of a run killed after epoch {killed} of "
            f"{lookup(data, path, 'epochs')} and resumed from the uninterrupted run (weights "
            f"{weights:.4g}, validation metrics {metrics:.4g}), largest:"
        )
        return at_most(max(weights, metrics), threshold, what, evidence)


@dataclass(frozen=True)
class MemoryHeadroomOptions:
    min_headroom: float = param(
        REQUIRED,
        "the least share of probe.device_memory_gib a training step at train.batch_size leaves "
        "free (1 - counted peak / memory)",
        bound("[0, 1]"),
    )


@register_check("memory_headroom")
class MemoryHeadroom(ProbeCheck):
    """A training step at `train.batch_size` must leave at least `min_headroom` of the training
    machine's memory (`probe.device_memory_gib`) free: 1 - its counted peak bytes (model,
    gradients, optimiser state, saved activations and the batch; the `efficiency` probe) /
    that memory."""

    phase = "efficiency"
    probe = "efficiency"
    options_type = MemoryHeadroomOptions
    example = {"min_headroom": 0.2}

    def run(self, context: Context) -> CheckResult:
        data, path = self.findings(context)
        peak = lookup(data, path, "peak_bytes_at_train_batch_size") / 2**20
        what = (
            f"memory headroom at batch size {lookup(data, path, 'train_batch_size')} (peak "
            f"{peak:.4g} MiB of {lookup(data, path, 'device_memory_gib'):g} GiB):"
        )
        headroom = lookup(data, path, "headroom")
        return at_least(headroom, self.options.min_headroom, what, self.evidence(context))


@dataclass(frozen=True)
class FrozenChecksumsOptions:
    max_mismatches: int = param(
        0,
        "the most re-embedded clips whose rows differ from the stored ones, plus seeds whose "
        "model read other frozen inputs",
        bound(">= 0"),
    )


@register_check("frozen_checksums")
class FrozenChecksums(ProbeCheck):
    """The frozen path must give the same bytes again (the `frozen` probe): each encoder,
    embedding `probe.frozen_clips` clips of each split again, must reproduce the stored rows
    (sha256 per clip), and every seed's head must have read the same training features (the
    sha256 of its standardisation). At most `max_mismatches` clips and seeds may differ."""

    phase = "reproducibility"
    probe = "frozen"
    options_type = FrozenChecksumsOptions
    example = {"max_mismatches": 0}

    def run(self, context: Context) -> CheckResult:
        data, path = self.findings(context)
        encoders = lookup(data, path, "encoders")
        parts = [f"{name} {found['matches']}/{found['clips']}" for name, found in encoders.items()]
        differ = [clip for found in encoders.values() for clip in found["mismatched"]]
        seeds = data.get("standardisation_sha256")
        if seeds is not None:
            wrong = lookup(data, path, "seed_mismatches")
            parts.append(f"seeds {len(seeds) - len(wrong)}/{len(seeds)}")
            differ += wrong
        named = f" (e.g. {', '.join(differ[:LISTED])})" if differ else ""
        what = f"re-embedded clips and seeds matching: {', '.join(parts)}{named}; mismatches"
        mismatches = float(lookup(data, path, "mismatches"))
        return at_most(mismatches, self.options.max_mismatches, what, self.evidence(context))
