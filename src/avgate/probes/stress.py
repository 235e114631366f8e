"""Probe `stress`: irrelevance stress (audio-visual heads on cached embeddings).

Every seed's model decides the validation rows with the audio replaced by what carries nothing
about them: Gaussian noise (`probe.noise_std` in standardised units, put through the model's
standardisation: training mean + scale x std x N(0, 1), column by column, drawn from numpy's
generator seeded with the model's seed) and another clip's audio (`model_diagnostics.ablate`).
The model's `use` of such audio is the share of rows whose decision differs from its decision
with the audio muted (the training mean): a model moved by irrelevant sound uses it. The primary
metric under each input is reported too.

A gated-fusion head (`train.fusion: gated`) also reports its gates (`GatedFusion.gates()`, a
learned scalar per modality, the same for every row) and the parity of the closed gate: with
the audio gate closed, the mean absolute logit difference between the real audio and each
replacement; it must be 0 (the closed modality is left out of the sum).

>>> noise_audio(np.zeros((2, 3), np.float32), np.array([1]), np.full(3, 5.0), np.ones(3), 0.0,
...             np.random.default_rng(0)).tolist()
[[0.0, 5.0, 0.0], [0.0, 5.0, 0.0]]
"""

from __future__ import annotations

import numpy as np
from torch import nn

from avgate import metrics
from avgate.config import Params
from avgate.finetune.none import predict
from avgate.model_diagnostics import ablate
from avgate.models.fusion import GatedFusion
from avgate.probes.base import Probe, ProbeOutput, register_probe, rounded
from avgate.probes.items import (
    AUDIO,
    AudioVisualRun,
    SeedHead,
    audio_visual_reason,
    load_run,
    mean_of,
)
from avgate.training.determinism import pin_determinism

NOISE, OTHER_CLIP = "noise", "from_other_clip"
STRESSES = (NOISE, OTHER_CLIP)
MUTED = "audio_muted"
PARITY = "gate_parity"


def noise_audio(
    x: np.ndarray,
    columns: np.ndarray,
    mean: np.ndarray,
    scale: np.ndarray,
    std: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A copy of `x` whose `columns` hold Gaussian noise of `std` in the standardised units
    the model sees (`mean` + `scale` x std x N(0, 1))."""
    out = np.array(x, copy=True)
    z = rng.standard_normal((len(x), len(columns)))
    out[:, columns] = (mean[columns] + scale[columns] * std * z).astype(x.dtype)
    return out


def gated_audio(model: nn.Module) -> GatedFusion | None:
    """The model's gated fusion when it gates an audio modality, else None."""
    fusion = getattr(model, "fusion", None)
    return fusion if isinstance(fusion, GatedFusion) and AUDIO in fusion.dims else None


def closed_gate_differences(
    model: nn.Module, fusion: GatedFusion, x: np.ndarray, replaced: dict[str, np.ndarray]
) -> dict[str, float]:
    """With the audio gate closed: the mean absolute logit difference between `x` and each
    input of `replaced` (its audio changed). The gate is left as it was found."""
    was_open = AUDIO in fusion.open_modalities()
    fusion.close(AUDIO)
    try:
        real = predict(model, x)
        return {
            name: float(f"{np.abs(predict(model, other) - real).mean():.3g}")
            for name, other in replaced.items()
        }
    finally:
        if was_open:
            fusion.reopen(AUDIO)


def seed_stress(head: SeedHead, run: AudioVisualRun, noise_std: float, primary: str) -> dict:
    """One seed's scores with each audio input, its use of irrelevant audio and, for a gated
    head, its gates and the closed gate's logit differences."""
    x, fill, model = run.data.x, head.fill(), head.model
    replaced = {
        NOISE: noise_audio(x, run.audio, fill, model.scale.numpy(), noise_std,
                           np.random.default_rng(head.seed)),
        OTHER_CLIP: ablate(x, run.audio, "from_other_clip", fill, run.clip_ids),
    }  # fmt: skip
    inputs = {"full": x, MUTED: ablate(x, run.audio, "muted", fill, run.clip_ids)} | replaced
    probs = {name: head.probs(features) for name, features in inputs.items()}
    decided = {n: metrics.decide(p, run.classes, head.threshold) for n, p in probs.items()}
    labels = run.data.labels
    found: dict = {
        "score": {
            name: rounded(metrics.value(primary, labels, p, run.classes, head.threshold))
            for name, p in probs.items()
        },
        "use": {s: rounded(np.mean(decided[s] != decided[MUTED])) for s in STRESSES},
    }
    fusion = gated_audio(model)
    if fusion is not None:
        found["gates"] = {name: rounded(value) for name, value in fusion.gates().items()}
        found["closed_gate_mean_abs_logit_diff"] = closed_gate_differences(
            model, fusion, x, replaced
        )
    return found


def summarise(per_seed: dict[str, dict], fusion: str) -> dict:
    """The means over seeds, and the parity of the closed gate (or why it does not apply)."""
    seeds = list(per_seed.values())
    result = {
        "mean": {
            "score": {k: mean_of([s["score"][k] for s in seeds]) for k in seeds[0]["score"]},
            "use": {k: mean_of([s["use"][k] for s in seeds]) for k in STRESSES},
        },
    }
    if all("gates" in s for s in seeds):
        result["mean"]["audio_gate"] = mean_of([s["gates"][AUDIO] for s in seeds])
        diffs = [d for s in seeds for d in s["closed_gate_mean_abs_logit_diff"].values()]
        result[PARITY] = {"applies": True, "max_mean_abs_logit_diff": max(diffs)}
    else:
        reason = f"train.fusion is {fusion}: the head has no audio gate to close"
        result[PARITY] = {"applies": False, "reason": reason}
    return result


@register_probe("stress")
class Stress(Probe):
    """Irrelevance stress on validation: see the module's docstring."""

    def applies(self, params: Params) -> str | None:
        return audio_visual_reason(params)

    def run(self, params: Params) -> ProbeOutput:
        run = load_run(params)
        per_seed = {}
        for head in run.heads:
            pin_determinism(head.seed, params.train.num_threads)
            per_seed[f"seed{head.seed}"] = seed_stress(
                head, run, params.probe.noise_std, params.evaluate.primary_metric
            )
        result = {
            "noise_std": params.probe.noise_std,
            "primary_metric": params.evaluate.primary_metric,
            "use": "share of val rows whose decision differs from the decision with the "
            "audio muted",
            "per_seed": per_seed,
        } | summarise(per_seed, params.train.fusion)
        use = result["mean"]["use"]
        line = (
            f"decisions moved by noise audio {use['noise']:.3f}, by another clip's audio "
            f"{use['from_other_clip']:.3f} (share of validation rows, mean over seeds)"
        )
        return ProbeOutput(result, line=line)
