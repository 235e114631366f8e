"""Wall time of each DVC stage on the default demo, and of a head-only `dvc exp run` as a ratio
of the full `dvc repro`, measured in one run in a scratch copy of this project.

    python bench/pipeline_times.py [--keep DIR]

Each stage runs as `dvc repro --single-item <stage>` in pipeline order, so its time includes one
DVC start-up (measured separately as the no-op `dvc status` time and printed too).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.scratch import commit, scratch_project, sh  # noqa: E402


def timed(cwd: Path, *args: str) -> float:
    """Wall time in seconds of one command run in `cwd`."""
    started = time.perf_counter()
    sh(cwd, *args)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the scratch project here and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="avgate-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    scratch_project(root)
    stages = sh(root, "dvc", "stage", "list", "--name-only").split()
    print(f"scratch project: {root}")
    print(f"{'stage':<16}{'wall s':>10}")
    times = {}
    for stage in stages:
        times[stage] = timed(root, "dvc", "repro", "--single-item", stage)
        print(f"{stage:<16}{times[stage]:>10.2f}")
    full = sum(times.values())
    startup = timed(root, "dvc", "status")
    noop = timed(root, "dvc", "repro")
    commit(root, "outputs")
    head_only = timed(root, "dvc", "exp", "run", "-S", "train.lr=0.002")
    print(f"{'full repro':<16}{full:>10.2f}   (sum of the stages above)")
    print(f"{'dvc status':<16}{startup:>10.2f}   (DVC start-up, included once in every stage)")
    print(f"{'no-op repro':<16}{noop:>10.2f}")
    print(f"{'head-only exp':<16}{head_only:>10.2f}   (dvc exp run -S train.lr=0.002)")
    print(f"head-only exp / full repro = {head_only / full:.3f}")
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
