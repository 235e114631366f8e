"""Modality checks: an audio-visual model must use its audio. They read the modality ablations
`evaluate` writes into each seed's validation scores (predictions/seed<k>/metrics.json): the
primary metric with the audio features muted or taken from another clip, and its drop. A model
that reads one modality (audio-only data, or LoRA on the audio) has none: they do not apply.

>>> AudioReliance.example
{'min_drop': 0.02, 'ablation': 'from_other_clip'}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avgate.declare import REQUIRED, one_of, param
from avgate.go.base import (
    CheckResult,
    Context,
    EvidenceError,
    GoCheck,
    at_least,
    lookup,
    register_check,
)
from avgate.layout.results import SEED_SCORES, predictions_dir
from avgate.model_diagnostics import ABLATIONS

ABLATION_KEY = "modality_ablation_val"
AUDIO = "audio"


def seed_scores(context: Context) -> tuple[Path, ...]:
    """Each seed's validation scores."""
    return tuple(predictions_dir(seed) / SEED_SCORES for seed in context.seeds)


@dataclass(frozen=True)
class AudioRelianceOptions:
    min_drop: float = param(
        REQUIRED,
        "the least drop of the primary metric on validation when the audio is ablated (mean "
        "over seeds)",
    )
    ablation: str = param(
        "from_other_clip",
        "how the audio is ablated: muted (the training mean) or from_other_clip (another clip's)",
        one_of(*ABLATIONS),
    )


@register_check("audio_reliance")
class AudioReliance(GoCheck):
    """Leave one modality out, on the audio: the primary metric on validation must drop by at
    least `min_drop` (mean over seeds) when the audio features are ablated (`ablation`). A
    model that scores as well with another clip's audio has learnt nothing from the sound."""

    phase = "robustness"
    options_type = AudioRelianceOptions
    example = {"min_drop": 0.02, "ablation": "from_other_clip"}

    def evidence(self, context: Context) -> tuple[Path, ...]:
        return seed_scores(context)

    def applies(self, context: Context) -> str | None:
        for path in seed_scores(context):
            ablations = lookup(context.read(path), path, ABLATION_KEY)
            if not ablations:
                return f"{path}: no modality ablation: the model reads one modality"
            if f"{AUDIO}_{self.options.ablation}" not in ablations:
                return f"{path}: no audio among the model's modalities"
        return None

    def run(self, context: Context) -> CheckResult:
        key = f"{AUDIO}_{self.options.ablation}"
        drops = []
        for path in seed_scores(context):
            scores = context.read(path)
            drop = lookup(scores, path, ABLATION_KEY, key, "drop")
            if drop is None:
                raise EvidenceError(
                    f"{path}: {ABLATION_KEY}.{key}.drop is null: the primary metric is "
                    "undefined on the ablated validation split"
                )
            drops.append(drop)
        mean = sum(drops) / len(drops)
        metric = context.read(seed_scores(context)[0]).get("primary_metric", "primary metric")
        per_seed = ", ".join(f"{d:.4g}" for d in drops)
        what = f"{metric} drop with audio {self.options.ablation}, mean of seeds ({per_seed}):"
        return at_least(mean, self.options.min_drop, what, self.evidence(context))
