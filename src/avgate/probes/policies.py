"""Probe `policies`: when may a model skip its audio? (audio-visual heads on cached embeddings)

Per seed, on validation: always-on (the full model), always-off (the audio muted: the
visual-only decision), and heuristic gates that consult the audio only where the visual-only
prediction is uncertain:

- `confidence`: consult when the visual-only top probability is at most the threshold (skip
  when it is above);
- `entropy`: consult when the visual-only entropy (nats) is at least the threshold (skip when
  it is below).

The thresholds are `probe.policy_points` quantiles of the visual-only uncertainty on the seed's
validation rows, at target skip shares 0, 1/(n-1), ..., 1 (ties make the actual share differ:
`skipped` is measured). Each point: the share of audio consultations skipped, the primary metric
of the rows' mixed predictions (consulted rows: the full model's probabilities; skipped rows:
the visual-only ones) and its drop from always-on (positive = worse, in the metric's own
direction). `curve` holds the means over seeds per (policy, target skip); `plots/
gating_policies.csv` holds it with always-on and always-off.

>>> uncertainty(np.array([[0.9, 0.1], [0.5, 0.5]]), "confidence").round(3).tolist()
[0.1, 0.5]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.stats import entropy

from avgate import metrics
from avgate.config import Params
from avgate.model_diagnostics import ablate
from avgate.probes.base import Probe, ProbeOutput, register_probe, rounded
from avgate.probes.items import audio_visual_reason, load_run, mean_of, shown
from avgate.training.determinism import pin_determinism

HEURISTICS = ("confidence", "entropy")
ALWAYS_ON, ALWAYS_OFF = "always_on", "always_off"
COLUMNS = ("policy", "target_skip", "threshold", "skipped", "score", "drop")

Score = Callable[[np.ndarray], float | None]  # probabilities -> the primary metric


def uncertainty(probs: np.ndarray, heuristic: str) -> np.ndarray:
    """Each row's uncertainty under `heuristic`: 1 - top probability, or the entropy."""
    if heuristic == "confidence":
        return 1.0 - probs.max(axis=1)
    return entropy(probs, axis=1)


def shown_threshold(cut: float, heuristic: str) -> float:
    """The threshold in the heuristic's own unit (a top probability, or an entropy)."""
    return 1.0 - cut if heuristic == "confidence" else cut


def heuristic_points(
    on: np.ndarray, off: np.ndarray, heuristic: str, n_points: int, score: Score, sign: int
) -> list[dict]:
    """The policy's points: skip the audio where the visual-only (`off`) uncertainty is below
    its quantile at each target skip share, else take the full model's (`on`) probabilities."""
    u = uncertainty(off, heuristic)
    full = score(on)
    points = []
    for target in np.linspace(0.0, 1.0, n_points):
        cut = float(np.quantile(u, target))
        skip = u < cut
        value = score(np.where(skip[:, None], off, on))
        drop = None if value is None or full is None else sign * (full - value)
        points.append({
            "policy": heuristic, "target_skip": rounded(target),
            "threshold": rounded(shown_threshold(cut, heuristic)),
            "skipped": rounded(skip.mean()), "score": rounded(value), "drop": rounded(drop),
        })  # fmt: skip
    return points


def fixed_points(on: np.ndarray, off: np.ndarray, score: Score, sign: int) -> list[dict]:
    """Always-on (skips nothing) and always-off (skips every consultation)."""
    full, visual = score(on), score(off)
    drop = None if full is None or visual is None else sign * (full - visual)
    return [
        {"policy": ALWAYS_ON, "target_skip": 0.0, "threshold": None, "skipped": 0.0,
         "score": rounded(full), "drop": 0.0 if full is not None else None},
        {"policy": ALWAYS_OFF, "target_skip": 1.0, "threshold": None, "skipped": 1.0,
         "score": rounded(visual), "drop": rounded(drop)},
    ]  # fmt: skip


def seed_points(
    on: np.ndarray, off: np.ndarray, n_points: int, score: Score, sign: int
) -> list[dict]:
    """Every point of one seed: the fixed policies, then each heuristic's."""
    points = fixed_points(on, off, score, sign)
    for heuristic in HEURISTICS:
        points += heuristic_points(on, off, heuristic, n_points, score, sign)
    return points


def mean_points(per_seed: list[list[dict]]) -> list[dict]:
    """The points averaged over seeds, position by position (the same policies and targets)."""
    means = []
    for same in zip(*per_seed, strict=True):
        point = {"policy": same[0]["policy"], "target_skip": same[0]["target_skip"]}
        for key in ("threshold", "skipped", "score", "drop"):
            point[key] = mean_of([p[key] for p in same])
        means.append(point)
    return means


@register_probe("policies")
class Policies(Probe):
    """Gating policies of the audio branch on validation: see the module's docstring."""

    plot_name = "gating_policies"
    plot_columns = COLUMNS

    def applies(self, params: Params) -> str | None:
        return audio_visual_reason(params)

    def run(self, params: Params) -> ProbeOutput:
        run = load_run(params)
        primary = params.evaluate.primary_metric
        sign = metrics.METRICS[primary].sign
        per_seed = {}
        for head in run.heads:
            pin_determinism(head.seed, params.train.num_threads)
            muted = ablate(run.data.x, run.audio, "muted", head.fill(), run.clip_ids)

            def score(probs: np.ndarray, threshold: dict | None = head.threshold) -> float | None:
                return metrics.value(primary, run.data.labels, probs, run.classes, threshold)

            on, off = head.probs(run.data.x), head.probs(muted)
            per_seed[f"seed{head.seed}"] = seed_points(
                on, off, params.probe.policy_points, score, sign
            )
        curve = mean_points(list(per_seed.values()))
        fixed = {p["policy"]: p for p in curve if p["policy"] in (ALWAYS_ON, ALWAYS_OFF)}
        return ProbeOutput(
            {
                "primary_metric": primary,
                "seeds": list(params.train.seeds),
                ALWAYS_ON: fixed[ALWAYS_ON],
                ALWAYS_OFF: fixed[ALWAYS_OFF],
                "curve": [p for p in curve if p["policy"] in HEURISTICS],
                "per_seed": per_seed,
            },
            plot=pd.DataFrame(curve, columns=list(COLUMNS)),
            line=(
                f"{primary} always-on {shown(fixed[ALWAYS_ON]['score'])}, always-off "
                f"{shown(fixed[ALWAYS_OFF]['score'])}; {params.probe.policy_points} thresholds per "
                f"heuristic ({', '.join(HEURISTICS)}) in plots/gating_policies.csv"
            ),
        )
