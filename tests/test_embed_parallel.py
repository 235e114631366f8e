"""Data-parallel embedding: `torchrun --nproc_per_node=2` (CPU, gloo) gives the single-process
arrays byte for byte, each rank embedding its share of the clips into a shard of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from avgate.stages import embed, ingest, split
from tests.conftest import write_params


def test_torchrun_with_two_processes_equals_one_process(project):
    params = write_params(project, {"embed": {"encoders": {"logmel": "logmel"}, "workers": 0}})
    ingest.run(params)
    split.run(params)
    embed.run(params, "logmel")
    single = {p.name: p.read_bytes() for p in (project / "data/embeddings/logmel").iterdir()}
    write_params(project, {"embed": {"encoders": {"logmel": "logmel"}, "workers": 0,
                                     "cache_dir": "data/cache/parallel"}})  # fmt: skip
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "--no-python", str(bin_dir / "avgate"), "embed", "--encoder", "logmel"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    parallel = {p.name: p.read_bytes() for p in (project / "data/embeddings/logmel").iterdir()}
    assert parallel == single
    profile = json.loads((project / "data/profiles/embed/logmel.json").read_text())
    assert profile["processes"] == 2 and profile["reused"] == 0
    shards = list((project / "data/cache/parallel").rglob("shard-*.index.parquet"))
    assert len(shards) == 2  # one per rank
