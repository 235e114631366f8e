"""Probe `items`: leave one modality out, item by item (audio-visual heads on cached embeddings).

Every seed's model decides each validation row (labels of val only) four ways: with every
feature (`full`), with the audio muted, the visual muted, both muted (muted = the training mean,
as `evaluate.ablations` mutes), and with the audio taken from another clip. Item kinds, per
seed (they may overlap):

- audio-dependent: right in full, wrong with the audio muted;
- visual-dependent: right in full, wrong with the visual muted;
- modality-free: right in full and right with both muted. With both muted every row gets the
  same input, so these are the rows whose label is the model's prior class (e.g. background).

"Audio-dependent items drop when the audio is muted" holds by definition on the model that
defines them, so the drop is measured where it can fail (`dependent_drop`):

- `other_seeds`: items audio-dependent under seed A, on every other seed B's model: of those
  B gets right in full, the share B gets wrong with the audio muted (pooled over B, then the
  mean over A). An item's need for audio is a property of the item, not of one model's quirks,
  when it holds across seeds. Needs two seeds or more.
- `other_clip`: items right in full and wrong with another clip's audio, on the same model: the
  share of them wrong with the audio muted (silence is as bad as misleading sound).

`free_drop` is the share of modality-free items wrong with the audio muted (the visual alone
misleads them), on the same model; `free_kept` = 1 - free_drop.

The helpers that load every seed's head and the validation rows serve the `stress` and
`policies` probes too.

>>> right = {"full": np.array([1, 1, 1, 0], bool), "audio_muted": np.array([0, 1, 1, 0], bool),
...          "visual_muted": np.array([1, 0, 1, 0], bool),
...          "both_muted": np.array([0, 0, 1, 1], bool)}
>>> {kind: np.flatnonzero(rows).tolist() for kind, rows in item_kinds(right).items()}
{'audio_dependent': [0], 'visual_dependent': [1], 'modality_free': [2]}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from torch import nn

from avgate import calibration, metrics
from avgate.config import Params
from avgate.files import read_json
from avgate.finetune.none import load, predict
from avgate.layout.inputs import Examples, examples, modality_columns
from avgate.layout.results import DESCRIPTION, model_dir
from avgate.model_diagnostics import ablate
from avgate.probes.base import Probe, ProbeOutput, register_probe, rounded
from avgate.training.determinism import pin_determinism

AUDIO, VISUAL = "audio", "visual"
N_EXAMPLES = 3  # example rows listed per item kind and seed
KINDS = ("audio_dependent", "visual_dependent", "modality_free")
REFERENCES = ("other_seeds", "other_clip")

Decide = Callable[[np.ndarray], np.ndarray]  # features -> the decided class of each row


def audio_visual_reason(params: Params) -> str | None:
    """Why the modality probes do not apply (a LoRA run, inputs without audio or visual), or
    None for a head on audio and visual embeddings."""
    if params.train.finetune == "lora":
        return "train.finetune is lora: the adapter reads the audio alone, no cached visual"
    found = sorted(modality_columns(params))
    if AUDIO not in found or VISUAL not in found:
        return f"the model's inputs hold the modalities {found}: no audio and visual to ablate"
    return None


@dataclass(frozen=True)
class SeedHead:
    """One seed's trained head and its decision threshold (head.json; None: the arg-max)."""

    seed: int
    model: nn.Module
    threshold: dict | None

    def probs(self, x: np.ndarray) -> np.ndarray:
        return calibration.softmax(predict(self.model, x))

    def decider(self, classes: list[str]) -> Decide:
        return lambda x: metrics.decide(self.probs(x), classes, self.threshold)

    def fill(self) -> np.ndarray:
        """The muted value of every column: the training mean the model standardises with."""
        return self.model.mean.numpy()


@dataclass(frozen=True)
class AudioVisualRun:
    """The validation rows, their classes, the audio and visual columns, every seed's head."""

    data: Examples
    classes: list[str]
    audio: np.ndarray
    visual: np.ndarray
    heads: tuple[SeedHead, ...]

    @property
    def clip_ids(self) -> np.ndarray:
        return self.data.index["clip_id"].to_numpy()


def load_run(params: Params) -> AudioVisualRun:
    """Every seed's head (models/seed<k>/) and the validation examples."""
    heads, classes = [], []
    for seed in params.train.seeds:
        description = read_json(model_dir(seed) / DESCRIPTION)
        classes = description["classes"]
        model = load(params, model_dir(seed), description)
        heads.append(SeedHead(seed, model, description.get(metrics.THRESHOLD)))
    columns = modality_columns(params)
    return AudioVisualRun(
        examples(params, "val"), classes, columns[AUDIO], columns[VISUAL], tuple(heads)
    )


def mean_of(values: list[float | None]) -> float | None:
    """The mean of the defined values, None when none is."""
    defined = [v for v in values if v is not None]
    return rounded(float(np.mean(defined))) if defined else None


def share(part: np.ndarray, whole: np.ndarray) -> float | None:
    """The share of the rows in `whole` that are also in `part` (boolean masks), None when
    `whole` is empty."""
    n = int(whole.sum())
    return rounded((part & whole).sum() / n) if n else None


def item_outcomes(
    decide: Decide,
    x: np.ndarray,
    labels: np.ndarray,
    audio: np.ndarray,
    visual: np.ndarray,
    fill: np.ndarray,
    clip_ids: np.ndarray,
) -> dict[str, np.ndarray]:
    """Whether each row is decided right in full, with the audio, the visual or both muted
    (`fill`), and with another clip's audio."""
    both = np.concatenate([audio, visual])
    inputs = {
        "full": x,
        "audio_muted": ablate(x, audio, "muted", fill, clip_ids),
        "visual_muted": ablate(x, visual, "muted", fill, clip_ids),
        "both_muted": ablate(x, both, "muted", fill, clip_ids),
        "audio_from_other_clip": ablate(x, audio, "from_other_clip", fill, clip_ids),
    }
    return {name: decide(features) == labels for name, features in inputs.items()}


def item_kinds(right: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Which rows are of each item kind (KINDS, boolean masks) for one model, from its
    `item_outcomes`."""
    full = right["full"]
    return {
        "audio_dependent": full & ~right["audio_muted"],
        "visual_dependent": full & ~right["visual_muted"],
        "modality_free": full & right["both_muted"],
    }


def cross_seed_drop(
    dependent: np.ndarray, others: list[dict[str, np.ndarray]]
) -> tuple[float | None, int]:
    """Of the `dependent` rows (one seed's audio-dependent items), pooled over the `others`
    models: the share each gets wrong with the audio muted among those it gets right in full,
    and how many (item, model) pairs that share is of."""
    dropped = sum(int((dependent & o["full"] & ~o["audio_muted"]).sum()) for o in others)
    measured = sum(int((dependent & o["full"]).sum()) for o in others)
    return (rounded(dropped / measured) if measured else None), measured


def seed_summary(
    right: dict[str, np.ndarray], others: list[dict[str, np.ndarray]], index: pd.DataFrame
) -> dict:
    """One seed's item kinds (counts, shares of the rows, examples) and the drops."""
    masks = item_kinds(right)
    full = right["full"]
    swapped = full & ~right["audio_from_other_clip"]
    n = len(full)
    free_drop = share(~right["audio_muted"], masks["modality_free"])
    across, measured = cross_seed_drop(masks["audio_dependent"], others)
    return {
        "counts": {"rows": n, "right_full": int(full.sum())}
        | {kind: int(mask.sum()) for kind, mask in masks.items()},
        "shares": {kind: rounded(mask.sum() / n) if n else None for kind, mask in masks.items()},
        "audio_dependent_share_of_right": share(masks["audio_dependent"], full),
        "dependent_drop": {
            "other_seeds": across,
            "other_clip": share(~right["audio_muted"], swapped),
        },
        "dependent_drop_measured_on": {"other_seeds": measured, "other_clip": int(swapped.sum())},
        "free_drop": free_drop,
        "free_kept": None if free_drop is None else rounded(1 - free_drop),
        "examples": {kind: _rows(index, mask) for kind, mask in masks.items()},
    }


def _rows(index: pd.DataFrame, mask: np.ndarray) -> list[dict]:
    """The first N_EXAMPLES rows of `index` under `mask`, as plain (clip_id[, t]) records."""
    chosen = index[mask].head(N_EXAMPLES)
    return [{k: v.item() if hasattr(v, "item") else v for k, v in row.items()}
            for row in chosen.to_dict("records")]  # fmt: skip


def summarise(rights: dict[int, dict[str, np.ndarray]], index: pd.DataFrame) -> dict:
    """Each seed's `seed_summary` (keyed seed<k>) and their means."""
    per_seed = {
        f"seed{seed}": seed_summary(right, [r for s, r in rights.items() if s != seed], index)
        for seed, right in rights.items()
    }
    seeds = list(per_seed.values())

    def mean(*keys: str) -> float | None:
        return mean_of([_dig(summary, keys) for summary in seeds])

    return {
        "per_seed": per_seed,
        "mean": {
            "shares": {kind: mean("shares", kind) for kind in KINDS},
            "audio_dependent_share_of_right": mean("audio_dependent_share_of_right"),
            "dependent_drop": {ref: mean("dependent_drop", ref) for ref in REFERENCES},
            "free_drop": mean("free_drop"),
            "free_kept": mean("free_kept"),
        },
    }


def _dig(data: dict, keys: tuple[str, ...]) -> float | None:
    for key in keys:
        data = data[key]
    return data  # type: ignore[return-value]


DEFINITION = {
    "muted": "the modality's columns set to the training mean",
    "audio_dependent": "right in full, wrong with the audio muted",
    "visual_dependent": "right in full, wrong with the visual muted",
    "modality_free": "right in full and with both modalities muted",
    "dependent_drop.other_seeds": "items audio-dependent under one seed, on each other seed's "
    "model: share wrong with the audio muted among those it gets right in full",
    "dependent_drop.other_clip": "items right in full and wrong with another clip's audio: "
    "share wrong with the audio muted, same model",
    "dependent_drop_measured_on": "the (item, model) pairs each dependent_drop is a share of",
    "free_drop": "share of modality-free items wrong with the audio muted, same model",
}


def shown(share: float | None) -> str:
    """A share for the console line; `undefined` where no item was there to count.

    >>> shown(0.12345), shown(None)
    ('0.123', 'undefined')
    """
    return "undefined" if share is None else f"{share:.3f}"


@register_probe("items")
class Items(Probe):
    """Leave one modality out by item on validation: see the module's docstring."""

    def applies(self, params: Params) -> str | None:
        return audio_visual_reason(params)

    def run(self, params: Params) -> ProbeOutput:
        run = load_run(params)
        rights = {}
        for head in run.heads:
            pin_determinism(head.seed, params.train.num_threads)
            rights[head.seed] = item_outcomes(
                head.decider(run.classes), run.data.x, run.data.labels,
                run.audio, run.visual, head.fill(), run.clip_ids,
            )  # fmt: skip
        summary = summarise(rights, run.data.index)
        mean = summary["mean"]
        line = (
            f"audio-dependent {shown(mean['shares']['audio_dependent'])} of validation rows; of "
            f"those, {shown(mean['dependent_drop']['other_seeds'])} wrong with the audio muted on "
            f"the other seeds' models; modality-free rows wrong with it muted "
            f"{shown(mean['free_drop'])} (mean over seeds)"
        )
        return ProbeOutput(
            {"definition": DEFINITION, "seeds": list(rights), "n_rows": len(run.data.labels)}
            | summary,
            line=line,
        )
