"""A scratch copy of this project's pipeline as a fresh git repository, for DVC runs.

The working tree's files are copied (not cloned), so uncommitted changes are exercised too.
Used by the end-to-end tests and by bench/pipeline_times.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", ".dvc/config",
                 ".dvc/.gitignore", ".dvc/plots", "data/raw/.gitignore", "src",
                 "gates.yaml", "gates/ledger.jsonl"]  # fmt: skip


def sh(cwd: Path, *args: str) -> str:
    """Run a command with this interpreter's bin folder first on PATH; raise with its output."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


def commit(root: Path, message: str) -> None:
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", message)


def scratch_project(root: Path) -> Path:
    """Copy the pipeline files into `root`, make it a git repository and commit them."""
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    sh(root, "git", "init", "-q")
    sh(root, "git", "config", "user.name", "avgate")
    sh(root, "git", "config", "user.email", "dev@avgate.invalid")
    commit(root, "project")
    return root
