"""DVC overhead at 20,000 clips, and whether `embed` streams: figures measured in one run.

    python bench/scale.py [--clips 20000] [--small 500] [--keep DIR]

1. A synthetic folder-format dataset of --clips one-second WAVs (6 labels, 60 speakers) goes
   through the whole pipeline (logmel only, one seed) in a scratch copy of this project. Then a
   no-op `dvc repro` and `dvc status` are timed, against the same commands on a --small-clip
   copy, and the files DVC tracks are counted: stage outputs are a few big files whatever the
   number of clips (only data/raw holds one file per clip).
2. Peak RSS of `avgate embed --encoder logmel` (from its profile) on --small clips and on 10x
   as many, with the embeddings store emptied before each run so every clip is embedded.
Targets (issue 7): no-op repro and status in a few seconds at 20,000 clips; embed peak RSS at
10x within 1.2x of 1x.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import write_params  # noqa: E402
from tests.scratch import commit, scratch_project, sh  # noqa: E402

LABELS = ("zero", "one", "two", "three", "four", "five")
RATE = 8000


def write_dataset(root: Path, n_clips: int) -> None:
    """n_clips one-second tones with noise: <label>/s<speaker>_<i>.wav."""
    rng = np.random.default_rng(0)
    t = np.arange(RATE) / RATE
    for i in range(n_clips):
        label = LABELS[i % len(LABELS)]
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        tone = np.sin(2 * np.pi * (200 + 100 * (i % len(LABELS))) * t)
        audio = 0.3 * tone + 0.05 * rng.standard_normal(RATE)
        sf.write(folder / f"s{i % 60:02d}_{i:06d}.wav", audio.astype(np.float32), RATE)


def project(base: Path, name: str, n_clips: int) -> Path:
    root = scratch_project(base / name)
    write_dataset(root / "data/raw/synth", n_clips)
    write_params(
        root,
        {
            "data": {"name": "synth", "format": "folder", "folder": {"group_pattern": r"^(s\d+)_"}},
            "task": {"kind": "clip"},
            "evaluate": {"primary_metric": "accuracy"},
            "embed": {"encoders": {"logmel": "logmel"}, "workers": 2},
            "train": {"seeds": [0]},
            "ingest": {"workers": 2},
        },
    )
    commit(root, f"{n_clips} synthetic clips")
    sh(root, "dvc", "repro")
    commit(root, "outputs")
    return root


def timed(cwd: Path, *args: str) -> float:
    started = time.perf_counter()
    sh(cwd, *args)
    return time.perf_counter() - started


def tracked_files(root: Path) -> dict[str, int]:
    """Files DVC tracks per top-level output folder (from the workspace)."""
    outs = (
        "data/raw/synth",
        "data/interim",
        "data/splits",
        "data/embeddings",
        "models",
        "predictions",
        "dvclive",
    )
    return {o: sum(1 for p in (root / o).rglob("*") if p.is_file()) for o in outs}


def embed_rss(root: Path) -> float:
    shutil.rmtree(root / "data/cache", ignore_errors=True)
    sh(root, "avgate", "embed", "--encoder", "logmel")
    return json.loads((root / "data/profiles/embed/logmel.json").read_text())["peak_rss_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20_000)
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--keep", type=Path, help="build the scratch projects here and keep them")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="avgate-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    big = project(base, "big", args.clips)
    print(f"{args.clips} clips: full pipeline built in {time.perf_counter() - started:.0f} s")
    small = project(base, "small", args.small)
    ten = project(base, "ten", 10 * args.small)
    for name, root in ((f"{args.small} clips", small), (f"{args.clips} clips", big)):
        status, noop = timed(root, "dvc", "status"), timed(root, "dvc", "repro")
        print(f"{name:>12}: dvc status {status:5.2f} s, no-op dvc repro {noop:5.2f} s")
    print(f"files under DVC at {args.clips} clips: {tracked_files(big)}")
    rss_1, rss_10 = embed_rss(small), embed_rss(ten)
    print(
        f"embed peak RSS: {args.small} clips {rss_1:.0f} MiB, {10 * args.small} clips "
        f"{rss_10:.0f} MiB, ratio {rss_10 / rss_1:.2f} (target <= 1.2)"
    )
    if not args.keep:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
