"""Where a head-only `dvc exp run` spends its time, on the default demo, in a scratch copy of
this project: the ratio of its wall time to the compute its stages' profiles record.

    python bench/pipeline_times.py [--keep DIR]

The demo is built once with `dvc repro` and committed; then `dvc exp run -S train.lr=0.002` is
timed, and the profiles (data/profiles/, one per unit of work: each seed's training and
evaluation, the summary, the gate) written during it are summed. The rest is fixed cost: DVC's
experiment bookkeeping (measured as a no-change `dvc exp run`), process start-up and imports.
Target: ratio <= 2.0; the floor printed beside it is what remains with no stage overhead at all.
A second experiment then shows `COLUMNS=120 dvc exp show --only-changed`
as a terminal renders it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.scratch import commit, scratch_project, sh, terminal_table  # noqa: E402

TARGET = 2.0


def timed(cwd: Path, *args: str) -> float:
    """Wall time in seconds of one command run in `cwd`."""
    started = time.perf_counter()
    sh(cwd, *args)
    return time.perf_counter() - started


def profiles_since(root: Path, started: float) -> dict[str, float]:
    """Seconds recorded by each profile written after `started` (a time.time() value)."""
    found = {}
    for path in sorted((root / "data/profiles").rglob("*.json")):
        if path.stat().st_mtime >= started:
            profile = json.loads(path.read_text())
            found[profile["stage"]] = profile["seconds"]
    return found


def import_seconds(root: Path, module: str) -> float:
    """Wall time of a fresh interpreter importing `module` (what each stage process pays)."""
    return timed(root, sys.executable, "-c", f"import {module}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the scratch project here and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="avgate-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    scratch_project(root)
    print(f"scratch project: {root}")
    full = timed(root, "dvc", "repro")
    commit(root, "outputs")
    noop = timed(root, "dvc", "exp", "run")
    started = time.time()
    head_only = timed(root, "dvc", "exp", "run", "-S", "train.lr=0.002")
    work = profiles_since(root, started)
    compute = sum(work.values())
    print(f"{'full dvc repro':<34}{full:>8.2f} s")
    print(f"{'no-change dvc exp run':<34}{noop:>8.2f} s   (DVC's fixed cost per experiment)")
    imports = {m: import_seconds(root, m) for m in ("avgate.stages.train", "avgate.stages.gate")}
    for module, seconds in imports.items():
        print(f"{'import ' + module:<34}{seconds:>8.2f} s")
    print(f"{'head-only dvc exp run':<34}{head_only:>8.2f} s   (-S train.lr=0.002)")
    for stage, seconds in work.items():
        print(f"  {stage:<32}{seconds:>8.2f} s")
    print(f"{'compute (profiles above)':<34}{compute:>8.2f} s")
    ratio = head_only / compute
    verdict = "meets" if ratio <= TARGET else "misses"
    print(f"head-only wall / compute = {ratio:.2f} ({verdict} the target <= {TARGET})")
    floor = (noop + imports["avgate.stages.train"] + compute) / compute
    print(f"floor = {floor:.2f}: DVC's no-change experiment, one process's imports and the "
          "compute, with no other cost")  # fmt: skip
    sh(root, "dvc", "exp", "run", "-S", "train.lr=0.003")
    table = terminal_table(root)
    print(table)
    print(f"ellipses in the 120-column table: {table.count('…')}")
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
