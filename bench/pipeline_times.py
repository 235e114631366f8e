"""Wall time of each DVC stage on the default demo, and of a head-only `dvc exp run` as a ratio
of the full `dvc repro`, measured in one run in a scratch copy of this project.

    python bench/pipeline_times.py [--keep DIR]

Each stage runs as `dvc repro --single-item <stage>` in pipeline order, so its time includes one
DVC start-up (measured separately as the no-op `dvc status` time and printed too).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = [
    "dvc.yaml",
    "params.yaml",
    ".dvcignore",
    ".gitignore",
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvc/plots",
    "src",
]


def run(cwd: Path, *args: str) -> float:
    """Run a command in `cwd`; return its wall time in seconds (exit with its output on failure)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    started = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return time.perf_counter() - started


def scratch_project(root: Path) -> None:
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    run(root, "git", "init", "-q")
    run(root, "git", "add", "-A")
    run(root, "git", "-c", "user.name=bench", "-c", "user.email=b@b", "commit", "-qm", "bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the scratch project here and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="avgate-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    scratch_project(root)
    stages = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), "stage", "list", "--name-only"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    print(f"scratch project: {root}")
    print(f"{'stage':<16}{'wall s':>10}")
    times = {}
    for stage in stages:
        times[stage] = run(root, "dvc", "repro", "--single-item", stage)
        print(f"{stage:<16}{times[stage]:>10.2f}")
    full = sum(times.values())
    startup = run(root, "dvc", "status")
    noop = run(root, "dvc", "repro")
    run(root, "git", "add", "-A")
    run(root, "git", "-c", "user.name=bench", "-c", "user.email=b@b", "commit", "-qm", "outputs")
    head_only = run(root, "dvc", "exp", "run", "-S", "train.lr=0.002")
    print(f"{'full repro':<16}{full:>10.2f}   (sum of the stages above)")
    print(f"{'dvc status':<16}{startup:>10.2f}   (DVC start-up, included once in every stage)")
    print(f"{'no-op repro':<16}{noop:>10.2f}")
    print(f"{'head-only exp':<16}{head_only:>10.2f}   (dvc exp run -S train.lr=0.002)")
    print(f"head-only exp / full repro = {head_only / full:.3f}")
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
