"""SIGKILL at several points of `embed` and `train`: a re-run completes with the bytes of an
uninterrupted run, and what a killed run leaves is never a half-written output."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from avgate.stages import embed, ingest, split
from tests.conftest import run_until_train, write_params

pytestmark = pytest.mark.slow
KILL_AFTER_S = (0.5, 1.5, 3.0)


def avgate(root: Path, *args: str) -> subprocess.Popen:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.Popen(
        [str(bin_dir / "avgate"), *args],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_after(root: Path, seconds: float, *args: str) -> None:
    process = avgate(root, *args)
    time.sleep(seconds)
    process.send_signal(signal.SIGKILL)
    process.wait()


def epochs_saved(checkpoint: Path) -> int:
    """Epochs in the training checkpoint (written by rename, so never read half-written)."""
    if not checkpoint.exists():
        return 0
    return len(torch.load(checkpoint, weights_only=True)["progress"]["history"])


def wait_for(condition, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert process.poll() is None, "the run ended before the kill point"
        assert time.monotonic() < deadline, "the kill point was never reached"
        time.sleep(0.01)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def check_complete(folder: Path) -> None:
    """A visible output folder is whole: meta.json present and every array of its stated size."""
    if not folder.exists():
        return
    meta = json.loads((folder / "meta.json").read_text())
    for split_name, rows in meta["rows"].items():
        assert np.load(folder / f"{split_name}.npy", mmap_mode="r").shape == (rows, meta["dim"])


def test_killed_embed_reruns_to_the_same_bytes(project):
    params = write_params(project, {"embed": {"encoders": {"frames": "frames"}, "workers": 0}})
    ingest.run(params)
    split.run(params)
    embed.run(params, "frames")
    reference = snapshot(project / "data/embeddings/frames")
    shutil.rmtree(project / "data/embeddings")
    shutil.rmtree(project / params.embed.cache_dir)
    for seconds in KILL_AFTER_S:
        kill_after(project, seconds, "embed", "--encoder", "frames")
        check_complete(project / "data/embeddings/frames")
    done = avgate(project, "embed", "--encoder", "frames")
    assert done.wait() == 0
    assert snapshot(project / "data/embeddings/frames") == reference
    assert not list((project / "data/embeddings").glob(".*.tmp"))


def test_killed_train_resumes_from_its_checkpoint_to_the_same_bytes(project):
    params = write_params(
        project, {"train": {"seeds": [0], "max_epochs": 300, "patience": 300, "batch_size": 8}}
    )
    run_until_train(params)
    assert avgate(project, "train").wait() == 0
    expected = snapshot(project / "models/seed0"), snapshot(project / "dvclive/train/seed0")
    for folder in ("models", "dvclive"):
        shutil.rmtree(project / folder)
    checkpoint = project / "data/checkpoints/train/seed0/last.pt"
    for epochs in (1, 20, 60):  # killed once the checkpoint holds this many epochs
        process = avgate(project, "train")
        wait_for(lambda n=epochs: epochs_saved(checkpoint) >= n, process)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert not (project / "models/seed0").exists()  # nothing half-written is visible
    assert avgate(project, "train").wait() == 0
    profile = json.loads((project / "data/profiles/train/seed0.json").read_text())
    assert profile["resumed_from_epoch"] > 0 and not checkpoint.exists()
    got = snapshot(project / "models/seed0"), snapshot(project / "dvclive/train/seed0")
    assert got == expected
