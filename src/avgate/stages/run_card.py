"""The run card: what produced this experiment's numbers, in one JSON file.

Git revision (and whether the work tree had changes), every param, hashes of the manifest and
the splits, each encoder's identity (weights and settings), the seeds, package versions and
the hardware. Written by `summarize` to reports/run_card.json.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import yaml

from avgate.config import PARAMS_FILE, Params
from avgate.files import sha256_of
from avgate.stages.inputs import embedding_dir

PACKAGES = ("avgate", "torch", "torchaudio", "dvc", "dvclive", "numpy", "pandas", "scipy",
            "scikit-learn", "av", "soundfile", "safetensors")  # fmt: skip


def file_sha256(path: Path) -> str | None:
    """SHA-256 of a file's bytes, None when it does not exist."""
    return sha256_of(path) if path.is_file() else None


def git_revision() -> dict:
    """HEAD's commit and whether tracked files differ from it (None outside a git work tree)."""

    def git(*args: str) -> str | None:
        result = subprocess.run(["git", *args], capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else None

    return {"commit": git("rev-parse", "HEAD"), "changed_files": git("status", "--porcelain",
            "--untracked-files=no") not in ("", None)}  # fmt: skip


def versions() -> dict[str, str | None]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def hardware() -> dict:
    import torch

    return {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def build(params: Params) -> dict:
    """The run card of the current workspace."""
    encoders = {}
    for name in params.embed.encoders:
        meta = embedding_dir(name) / "meta.json"
        encoders[name] = json.loads(meta.read_text()) if meta.is_file() else None
    return {
        "git": git_revision(),
        "params": yaml.safe_load(Path(PARAMS_FILE).read_text()),
        "data": {
            "manifest_sha256": file_sha256(params.data.interim_dir / "manifest.parquet"),
            "splits_sha256": file_sha256(params.data.splits_dir / "splits.parquet"),
        },
        "encoders": encoders,
        "seeds": params.train.seeds,
        "packages": versions(),
        "hardware": hardware(),
    }
