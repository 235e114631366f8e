"""`avgate report --rev REV`: the workspace's results against a git revision, as Markdown
(reports/report.md) plus the `dvc plots diff` HTML (reports/plots/)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from avgate import comparison
from avgate.files import atomic_path, read_json
from avgate.layout.results import DIAGNOSTICS, EFFICIENCY, SCORES

OUT = Path("reports/report.md")
PLOTS = Path("reports/plots")


def metrics_at(rev: str, path: Path) -> dict | None:
    """A git-tracked JSON file as it was at `rev`, or None when it was not there."""
    result = subprocess.run(["git", "show", f"{rev}:{path.as_posix()}"], capture_output=True,
                            text=True)  # fmt: skip
    return json.loads(result.stdout) if result.returncode == 0 else None


def plots_diff(rev: str, out: Path) -> str | None:
    """Render `dvc plots diff REV` into `out`; the HTML's path, or None if DVC could not."""
    dvc = shutil.which("dvc")
    if dvc is None:
        return None
    result = subprocess.run([dvc, "plots", "diff", rev, "-o", str(out)], capture_output=True,
                            text=True)  # fmt: skip
    return str(out / "index.html") if result.returncode == 0 else None


def run(rev: str, out: Path = OUT, plots: Path = PLOTS) -> Path:
    """Write the report of the workspace against `rev`; return its path."""
    text = comparison.render(
        read_json(SCORES),
        metrics_at(rev, SCORES),
        rev,
        read_json(DIAGNOSTICS),
        read_json(EFFICIENCY),
        plots_diff(rev, plots),
    )
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    return out
