"""The run card: what produced this experiment's numbers, in one JSON file.

The params the train stage depends on, hashes of the manifest and the splits, each encoder's
identity (weights and settings), the seeds, the package versions and the CPU kernels pinned for
reproducibility.
Written by the `train` stage to reports/run_card.json, which git tracks: so it holds nothing that
changes from one run or machine to the next (the commit that holds it is its revision; the
machine and timings of a run are in data/profiles/).
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import yaml

from avgate.config import Params
from avgate.declare import PARAMS_FILE
from avgate.files import sha256_of
from avgate.layout.inputs import input_dirs
from avgate.numerics import pinned_environment

PACKAGES = ("avgate", "torch", "torchaudio", "dvc", "dvclive", "numpy", "pandas", "scipy",
            "scikit-learn", "av", "soundfile", "safetensors")  # fmt: skip


def file_sha256(path: Path) -> str | None:
    """SHA-256 of a file's bytes, None when it does not exist."""
    return sha256_of(path) if path.is_file() else None


def versions() -> dict[str, str | None]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


BUDGET_KEYS = ("policy", "low", "uniform", "high")  # which visual rows the model reads


def stage_params(raw: dict) -> dict:
    """The params the `train` stage depends on (dvc.yaml), as written in params.yaml: a section
    it does not read (gate, audit, eventness) would make the card stale when that section
    changes, since DVC does not re-run train for it.

    >>> stage_params({"data": {"name": "demo", "format": "ave"}, "gate": {"stage": "x"},
    ...               "embed": {"encoders": {"logmel": "logmel"}, "dtype": "float32"},
    ...               "train": {"lr": 1}})
    {'data': {'name': 'demo'}, 'embed': {'encoders': {'logmel': 'logmel'}}, 'train': {'lr': 1}}
    """
    embed = raw.get("embed", {})
    found = {
        "data": {"name": raw.get("data", {}).get("name")},
        "embed": {"encoders": embed.get("encoders")},
    }
    lora = raw.get("train", {}).get("lora", {}).get("encoder")
    if lora in embed:
        found["embed"][lora] = embed[lora]
    if "budget" in raw:
        found["budget"] = {k: raw["budget"][k] for k in BUDGET_KEYS if k in raw["budget"]}
    found |= {key: raw[key] for key in ("task", "train", "evaluate") if key in raw}
    return found


def build(params: Params) -> dict:
    """The run card of the current workspace."""
    encoders = {}
    for name, folder in input_dirs(params).items():
        meta = folder / "meta.json"
        encoders[name] = json.loads(meta.read_text()) if meta.is_file() else None
    return {
        "params": stage_params(yaml.safe_load(Path(PARAMS_FILE).read_text())),
        "data": {
            "manifest_sha256": file_sha256(params.data.interim_dir / "manifest.parquet"),
            "splits_sha256": file_sha256(params.data.splits_dir / "splits.parquet"),
        },
        "encoders": encoders,
        "seeds": params.train.seeds,
        "packages": versions(),
        "cpu_kernels": pinned_environment(),
    }
