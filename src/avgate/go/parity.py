"""Base-parity checks of a LoRA run: the backbone stayed frozen, and with the adapters off the
model computes what the base checkpoint computes. They read what LoRA training records in each
seed's head.json (`finetune.lora.checks`); a head on cached embeddings fine-tunes no backbone,
so for it they do not apply.

>>> ForwardEquivalence.example
{'max_mean_abs_logit_diff': 1e-05}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avgate.declare import bound, param
from avgate.go.base import (
    CheckResult,
    Context,
    GoCheck,
    NoOptions,
    below,
    lookup,
    register_check,
)
from avgate.layout.results import DESCRIPTION, model_dir

LORA = "lora"


def descriptions(context: Context) -> tuple[Path, ...]:
    """Each seed's head.json."""
    return tuple(model_dir(seed) / DESCRIPTION for seed in context.seeds)


def not_lora(context: Context) -> str | None:
    """Why a seed's model has no fine-tuned backbone, or None when every seed is a LoRA run."""
    for path in descriptions(context):
        mode = context.read(path).get("finetune", "none")
        if mode != LORA:
            return (
                f"{path}: train.finetune {mode}: a head on cached embeddings, no backbone is "
                "fine-tuned"
            )
    return None


@register_check("backbone_frozen")
class BackboneFrozen(GoCheck):
    """No trainable parameter outside the LoRA adapters and the head, on any seed: each seed's
    head.json must show trainable = adapter + head parameters."""

    phase = "safety"
    options_type = NoOptions
    example: dict = {}

    def evidence(self, context: Context) -> tuple[Path, ...]:
        return descriptions(context)

    def applies(self, context: Context) -> str | None:
        return not_lora(context)

    def run(self, context: Context) -> CheckResult:
        outside, shown = 0, []
        for path in descriptions(context):
            head = context.read(path)
            trainable, adapter, head_count = (
                lookup(head, path, key)
                for key in ("trainable_parameters", "adapter_parameters", "head_parameters")
            )
            outside = max(outside, trainable - adapter - head_count)
            shown.append(f"{path.parent.name} {trainable} = {adapter} + {head_count}")
        detail = (
            f"trainable parameters outside adapters and head: {outside} "
            f"(trainable = adapters + head: {'; '.join(shown)})"
        )
        evidence = tuple(map(str, self.evidence(context)))
        return CheckResult(float(outside), 0.0, outside == 0, detail, evidence, "<=")


@dataclass(frozen=True)
class ForwardEquivalenceOptions:
    max_mean_abs_logit_diff: float = param(
        1e-5,
        "with the adapters off, the mean absolute logit difference from the base checkpoint "
        "must stay below it",
        bound("> 0"),
    )


@register_check("forward_equivalence")
class ForwardEquivalence(GoCheck):
    """With its adapters disabled, each seed's model must compute the base checkpoint's logits:
    the mean absolute logit difference measured before training
    (`forward_equivalence_mean_abs_logit_diff` in head.json), the largest over seeds, must stay
    below `max_mean_abs_logit_diff`."""

    phase = "safety"
    options_type = ForwardEquivalenceOptions
    example = {"max_mean_abs_logit_diff": 1e-5}

    def evidence(self, context: Context) -> tuple[Path, ...]:
        return descriptions(context)

    def applies(self, context: Context) -> str | None:
        return not_lora(context)

    def run(self, context: Context) -> CheckResult:
        key = "forward_equivalence_mean_abs_logit_diff"
        found = {path: lookup(context.read(path), path, key) for path in descriptions(context)}
        worst = max(found.values())
        what = f"mean |logit difference| adapters off vs base, largest over {len(found)} seed(s):"
        threshold = self.options.max_mean_abs_logit_diff
        return below(worst, threshold, what, self.evidence(context))
