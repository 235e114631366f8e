"""Same bits on any x86-64 CPU: the stage processes pin their kernels whatever the caller sets.

On an AVX-512 machine, unpinned, `ATEN_CPU_CAPABILITY=default`, `MKL_CBWR=COMPATIBLE` and neither
gave three different log-mel hashes (MKL's code path and ATen's vector kernels round
differently). Each stage process runs here under the caller's settings and under both overrides
at once with one thread; the embeddings, the trained head and the predictions must hash the
same. The golden hash pins the log-mel bits of one synthetic clip across machines: a CPU that
computes other bits fails here before it writes a `dvc.lock` that differs from the committed
one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from avgate.stages import ingest, split
from tests.conftest import write_params

SETTINGS = [
    {},
    {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "OMP_NUM_THREADS": "1"},
]
STAGES = [  # frames is numpy only, whose bits did not move with these settings
    ["embed", "--encoder", "logmel"],
    ["train"],  # trains, evaluates and summarises seed 0 (train.seeds: [0])
]
OUTPUTS = ["data/embeddings", "models/seed0", "predictions/seed0", "metrics/scores.json"]
GOLDEN_LOGMEL = "dbe417d110727adb7b6e907675fcb69240c456d014b38c16ba19b80cd77d01cb"
LOGMEL_SCRIPT = """
import hashlib, numpy as np
from avgate.numerics import pin_environment
pin_environment()
from avgate.config import EmbedParams
from avgate.encoders.registry import build
from avgate.numerics import pin_torch
pin_torch(1)  # as the embed stage runs a light transform: its sums split by the thread count
t = np.arange(2 * 16000) / 16000
wave = (0.3 * np.sin(2 * np.pi * (200 + 900 * t) * t) + 0.05 * np.sin(2 * np.pi * 3000 * t))
rows = build("logmel", EmbedParams()).embed([wave.astype(np.float32)])[0]
print(hashlib.sha256(np.ascontiguousarray(rows, dtype=np.float32).tobytes()).hexdigest())
"""


def clean_env(setting: dict[str, str]) -> dict[str, str]:
    """This process's environment without any kernel setting, plus `setting`."""
    names = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in names}
    bin_dir = str(Path(sys.executable).parent)
    return env | {"PATH": f"{bin_dir}{os.pathsep}{env['PATH']}"} | setting


def digest(root: Path) -> dict[str, str]:
    """sha256 of every file under the outputs, by path."""
    found = {}
    for name in OUTPUTS:
        for path in sorted((root / name).rglob("*")):
            if path.is_file():
                found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.mark.slow
def test_stages_give_identical_bits_under_every_outer_cpu_setting(project, tmp_path_factory):
    params = write_params(
        project, {"embed": {"encoders": {"logmel": "logmel"}}, "train": {"seeds": [0]}}
    )
    ingest.run(params)
    split.run(params)
    hashes = []
    for setting in SETTINGS:
        root = tmp_path_factory.mktemp("cpu")
        shutil.copytree(project, root, dirs_exist_ok=True)
        for stage in STAGES:
            subprocess.run(
                ["avgate", *stage], cwd=root, env=clean_env(setting), check=True,
                capture_output=True,
            )  # fmt: skip
        hashes.append(digest(root))
    assert hashes[0], "the stages wrote their outputs"
    for setting, found in zip(SETTINGS[1:], hashes[1:], strict=True):
        differ = sorted(k for k in hashes[0] if found.get(k) != hashes[0][k])
        assert not differ, f"under {setting} these outputs differ: {differ}"


def test_one_clips_logmel_embedding_matches_the_golden_hash():
    got = {
        str(setting): subprocess.run(
            [sys.executable, "-c", LOGMEL_SCRIPT],
            env=clean_env(setting),
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()  # fmt: skip
        for setting in SETTINGS
    }
    assert len(set(got.values())) == 1, got
    assert next(iter(got.values())) == GOLDEN_LOGMEL
