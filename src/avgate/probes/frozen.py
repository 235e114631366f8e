"""`frozen`: the frozen path (the encoders, and the inputs each seed's model read) gives the same
bytes on a rerun and across seeds.

Rerun: every encoder of `embed.encoders` embeds again the first `probe.frozen_clips` clips (by
clip id) of each split, through the embed stage's own code (`stages.embed.embed_clips` with
`embed.workers`, stored as `embed.dtype`), and the sha256 of each clip's rows is compared with
the rows stored in data/embeddings/<encoder>/<split>.npy. Across seeds (heads on cached
embeddings only; a LoRA model reads the audio itself): each seed's head holds the
standardisation (mean, scale) it computed from the training features it read; its sha256 must
be the same for every seed of `train.seeds` and equal the one computed again from the training
features now (with `train.num_threads` threads, as the train stage did). The sha256 of the
validation features the models read is recorded beside them.

>>> rows_sha256(np.zeros((1, 2), dtype=np.float32))[:12]
'af5570f5a181'
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from avgate import media
from avgate.config import Params
from avgate.encoders.registry import build
from avgate.finetune.none import WEIGHTS
from avgate.layout.clips import SPLITS, embedding_dir, usable_clips
from avgate.layout.inputs import examples
from avgate.layout.results import model_dir
from avgate.models.heads import set_standardisation
from avgate.numerics import pin_torch
from avgate.probes.base import Probe, ProbeOutput, register_probe
from avgate.stages.embed import clip_names, embed_clips, finite

STANDARDISATION = ("mean", "scale")  # the buffers every head fills from its training features


def rows_sha256(rows: np.ndarray) -> str:
    """sha256 of an array's bytes in C order."""
    return hashlib.sha256(np.ascontiguousarray(rows).tobytes()).hexdigest()


def probed_clips(params: Params) -> pd.DataFrame:
    """The first `probe.frozen_clips` usable clips (by clip id) of each split."""
    clips = usable_clips(params)
    return clips.groupby("split", sort=False).head(params.probe.frozen_clips).reset_index(drop=True)


def stored_rows(name: str, split: str, clip_ids: list[str]) -> dict[str, np.ndarray]:
    """Each clip's rows of `split` as data/embeddings/<name>/ holds them."""
    folder = embedding_dir(name)
    index = pd.read_parquet(folder / f"{split}.index.parquet")
    array = np.load(folder / f"{split}.npy", mmap_mode="r")
    return {clip: np.asarray(array[(index["clip_id"] == clip).to_numpy()]) for clip in clip_ids}


def reembedded(params: Params, name: str, clips: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each clip's rows embedded again by encoder `name`, as the embed stage stores them."""
    encoder = build(name, params.embed)
    seconds = [media.seconds_in(d) for d in clips["duration_s"]]
    names, ids = clip_names(clips), clips["clip_id"].tolist()
    out: dict[str, np.ndarray] = {}

    def keep(i: int, rows: np.ndarray) -> None:
        out[ids[i]] = finite(rows, params.embed.dtype, names[i], name)

    embed_clips(clips["path"].tolist(), seconds, encoder, keep, params.embed.workers,
                params.embed.batch_seconds, f"probe frozen {name}")  # fmt: skip
    return out


def encoder_rerun(params: Params, name: str, clips: pd.DataFrame) -> dict:
    """Clips checked, matches and the clip ids whose rows differ, for encoder `name`."""
    again = reembedded(params, name, clips)
    differ = []
    for split in SPLITS:
        ids = clips.loc[clips["split"] == split, "clip_id"].tolist()
        for clip, rows in stored_rows(name, split, ids).items():
            if rows.shape != again[clip].shape or rows_sha256(rows) != rows_sha256(again[clip]):
                differ.append(clip)
    return {"clips": len(clips), "matches": len(clips) - len(differ), "mismatched": differ}


def standardisation_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 of a head's standardisation buffers."""
    return rows_sha256(np.concatenate([state[key].numpy().ravel() for key in STANDARDISATION]))


def across_seeds(params: Params) -> dict:
    """Each seed's standardisation sha256, the one computed again, the seeds that differ and
    the sha256 of the validation features."""
    pin_torch(params.train.num_threads)
    x = torch.from_numpy(examples(params, "train").x)
    holder = torch.nn.Module()
    for key in STANDARDISATION:
        holder.register_buffer(key, torch.zeros(x.shape[1]))
    set_standardisation(holder, x)
    expected = standardisation_sha256(dict(holder.named_buffers()))
    seeds = {
        f"seed{seed}": standardisation_sha256(load_file(model_dir(seed) / WEIGHTS))
        for seed in params.train.seeds
    }
    return {
        "standardisation_sha256": seeds,
        "expected_standardisation_sha256": expected,
        "seed_mismatches": [seed for seed, digest in seeds.items() if digest != expected],
        "val_features_sha256": rows_sha256(examples(params, "val").x),
    }


def frozen(params: Params) -> dict:
    """The rerun of every encoder and, for heads, the seeds' inputs (see the module doc)."""
    clips = probed_clips(params)
    encoders = {name: encoder_rerun(params, name, clips) for name in params.embed.encoders}
    result: dict = {"clips_per_split": params.probe.frozen_clips, "encoders": encoders}
    mismatches = sum(len(found["mismatched"]) for found in encoders.values())
    if params.train.finetune == "none":
        seeds = across_seeds(params)
        result |= seeds
        mismatches += len(seeds["seed_mismatches"])
    return result | {"mismatches": mismatches}


@register_probe("frozen")
class Frozen(Probe):
    """Checksums of the frozen path on a rerun and across seeds (see the module doc)."""

    def run(self, params: Params) -> ProbeOutput:
        result = frozen(params)
        clips = sum(e["clips"] for e in result["encoders"].values())
        line = f"{result['mismatches']} mismatch(es) over {clips} re-embedded clips"
        if "seed_mismatches" in result:
            line += f" and {len(result['standardisation_sha256'])} seeds' inputs"
        return ProbeOutput(result, line=line)
