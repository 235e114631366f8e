"""Files of the project as they were at a git revision, read through DVC.

The baseline is a git tag or revision. Its git-tracked files (`metrics/eval.json`) come from git,
its DVC-tracked outputs (`predictions/seed0/test.parquet`) from the DVC cache or the remote that
`dvc.lock` at that revision points to. One `DVCFileSystem` serves every read of a revision.

>>> resolve("no-such-revision-anywhere", cwd="/") is None
True
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from dvc.api import DVCFileSystem

FETCH_HINT = (
    "fetch the baseline's outputs first: `dvc fetch --all-tags` (DVC 3 has no --rev; this brings "
    "{rev}'s from the remote), or re-run the baseline revision's pipeline"
)


class RevisionError(RuntimeError):
    """A revision or one of its files cannot be read; says which and how to get it."""


def git(*args: str, cwd: str | Path = ".") -> str:
    """stdout of `git args` in `cwd`, stripped; RevisionError with git's message on failure."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RevisionError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def resolve(rev: str, cwd: str | Path = ".") -> str | None:
    """The commit sha `rev` names, or None when git does not know it."""
    try:
        return git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", cwd=cwd)
    except RevisionError:
        return None


class Snapshot:
    """Read-only view of the project at one commit.

    >>> import inspect; "read_bytes" in dict(inspect.getmembers(Snapshot))
    True
    """

    def __init__(self, rev: str, commit: str, root: str | Path = ".") -> None:
        self.rev = rev
        self.commit = commit
        self._fs = DVCFileSystem(str(root), rev=commit)

    def exists(self, path: str) -> bool:
        return bool(self._fs.exists(path))

    def read_bytes(self, path: str) -> bytes:
        """The bytes of `path` at this revision; RevisionError naming the fix when unavailable."""
        try:
            return self._fs.read_bytes(path)
        except FileNotFoundError as error:
            raise RevisionError(
                f"{path} does not exist at {self.rev} ({self.commit[:12]}): {error}"
            ) from error
        except Exception as error:  # DVC raises its own types for a missing cache or remote
            raise RevisionError(
                f"{path} at {self.rev} ({self.commit[:12]}) is not in the DVC cache "
                f"({type(error).__name__}: {error}); " + FETCH_HINT.format(rev=self.rev)
            ) from error

    def read_json(self, path: str) -> dict:
        return json.loads(self.read_bytes(path))
