"""A scratch copy of this project's pipeline as a fresh git repository, for DVC runs.

The working tree's files are copied (not cloned), so uncommitted changes are exercised too.
Used by the end-to-end tests and by bench/pipeline_times.py.
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", ".dvc/config",
                 ".dvc/.gitignore", ".dvc/plots", "data/raw/.gitignore", "src",
                 "gates.yaml", "gates/ledger.jsonl"]  # fmt: skip


def tool_env(**extra: str) -> dict[str, str]:
    """This environment with this interpreter's bin folder (avgate, dvc) first on PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "PATH": path, **extra}


def sh(cwd: Path, *args: str) -> str:
    """Run a command with this interpreter's bin folder first on PATH; raise with its output."""
    result = subprocess.run(args, cwd=cwd, env=tool_env(), capture_output=True, text=True)
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


def terminal_table(root: Path, columns: int = 120) -> str:
    """`dvc exp show --only-changed` as a terminal of `columns` columns shows it."""
    env = tool_env(COLUMNS=str(columns), LINES="50")
    main, child = pty.openpty()
    process = subprocess.Popen(["dvc", "exp", "show", "--only-changed", "--no-pager"], cwd=root,
                               env=env, stdin=child, stdout=child, stderr=child)  # fmt: skip
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait()
    os.close(main)
    return b"".join(chunks).decode(errors="replace")
