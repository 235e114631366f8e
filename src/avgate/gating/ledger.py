"""The test-split ledger: an append-only, hash-chained record of every look at the test split.

`gates/ledger.jsonl` lives in git (the repository ships it empty). Each line is one entry: a
"look" (the gate at a test stage evaluated a candidate on the test split) or an "opened" record
(the test split was opened for exploratory work under a spec). An entry names the candidate's
commit and params hash, the baseline's name and resolved commit, the spec hash, the test-ids
hash, the stage, the seeds and the outcome, and carries the hash of the entry before it, so an
edited field or a deleted, reordered or inserted line shows up in `verify`.

A look cannot be lost:

- `commit_entry` records the ledger as a commit on the ref `refs/avgate/ledger` right after each
  `append` (git plumbing only: HEAD, the index and the working tree are left alone);
- `verify` reads every committed version of the ledger on every ref and in the reflogs
  (branches, tags, `refs/exps/*`, `refs/avgate/ledger`) and fails unless each one is a prefix of
  the current file, listing every entry found elsewhere that the current file lacks;
- the budget belongs to the spec and the test split, not to a candidate's name:
  `check_allowed` counts every look under one spec hash, test-ids hash and stage, refuses a
  baseline tag that moved, and refuses a new spec for a test split already seen against the same
  baseline commit.

Lines are canonical and nothing else is accepted: each line is exactly
``json.dumps(entry, sort_keys=True, separators=(",", ":"))`` (ASCII, escapes as `json` writes
them) followed by ``"\\n"``. Extra whitespace, reordered keys or a missing final line end make
the ledger invalid even where the parsed values would be the same, so a byte of the file cannot
change without `verify` noticing.

>>> import subprocess, tempfile
>>> repo = Path(tempfile.mkdtemp())
>>> _ = subprocess.run(["git", "init", "-q", str(repo)], check=True)
>>> path = repo / "gates" / "ledger.jsonl"
>>> values = dict(timestamp="2024-05-01T12:00:00Z", kind="look", candidate="lora-r8",
...               candidate_commit="c" * 40, candidate_params_sha256="d" * 64,
...               baseline="model/v1", baseline_commit="b" * 40, spec_hash="f" * 64,
...               test_ids_hash="e" * 64, stage="full_test", seeds=[0, 1, 2], outcome="fail")
>>> first = append(path, **values)
>>> first.index, first.previous == GENESIS
(0, True)
>>> len(commit_entry(path, first, repo=repo))
40
>>> [entry.outcome for entry in verify(path, repo=repo)]
['fail']
>>> len(looks_used(read(path), "f" * 64, "e" * 64, "full_test"))
1
>>> check_allowed(read(path), spec_hash="f" * 64, test_ids_hash="e" * 64, stage="full_test",
...               looks=1, baseline_commit="b" * 40)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
avgate.gating.ledger.LedgerError: 1 test look already made at stage 'full_test' ...
>>> path.write_bytes(b"")  # emptying the file gives no look back
0
>>> verify(path, repo=repo)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
avgate.gating.ledger.LedgerError: ...lacks 1 entry found in other committed versions...
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
KINDS = ("look", "opened")
OUTCOMES = ("pass", "fail", "error")
OPENED = "opened"
REF = "refs/avgate/ledger"
IDENTITY = {"name": "avgate ledger", "email": "avgate-ledger@localhost"}
THROWAWAY = "/.dvc/tmp/exps/"
SHA256 = re.compile(r"[0-9a-f]{64}")
COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class LedgerError(RuntimeError):
    """The ledger is malformed, edited or incomplete, or it refuses another look."""


@dataclass(frozen=True)
class Entry:
    """One line of the ledger: a look at the test split, or a record that it was opened.

    `kind` is "look" or "opened". A look has a non-empty `stage`, `candidate`, `baseline`,
    `baseline_commit` and `seeds`, and an `outcome` of "pass", "fail" or "error". An "opened"
    entry concerns the whole test split, not a stage: its `stage` is "" and its `outcome` is
    "opened"; it may leave `candidate` and the baseline ("" for both `baseline` and
    `baseline_commit`) and `seeds` empty. `candidate` is a name for people only: no rule reads it.

    >>> entry = _entry(0, GENESIS, **_example())
    >>> entry.hash == _hash_of(entry), entry.kind
    (True, 'look')
    """

    index: int
    timestamp: str
    kind: str
    candidate: str
    candidate_commit: str
    candidate_params_sha256: str
    baseline: str
    baseline_commit: str
    spec_hash: str
    test_ids_hash: str
    stage: str
    seeds: list[int]
    outcome: str
    previous: str
    hash: str


FIELDS = tuple(field.name for field in fields(Entry))
TEXTS = tuple(name for name in FIELDS if name not in ("index", "seeds"))
RESTORE = (
    "The ledger is append-only and written only by avgate: restore it from git "
    "(`git show {ref}:{rel} > {path}` holds the latest committed looks; `git log -p --all -- "
    "{rel}` shows every version) instead of editing it by hand."
)


def _example(**changes: Any) -> dict[str, Any]:
    """Values of a well-formed look, for the examples in this module."""
    values = dict(
        timestamp="2024-05-01T12:00:00Z",
        kind="look",
        candidate="lora-r8",
        candidate_commit="c" * 40,
        candidate_params_sha256="d" * 64,
        baseline="model/v1",
        baseline_commit="b" * 40,
        spec_hash="f" * 64,
        test_ids_hash="e" * 64,
        stage="full_test",
        seeds=[0, 1, 2],
        outcome="fail",
    )
    return values | changes


def _count(number: int, noun: str) -> str:
    """`number` and `noun`, in the plural unless it is one.

    >>> _count(1, "entry"), _count(3, "entry"), _count(0, "test look")
    ('1 entry', '3 entries', '0 test looks')
    """
    if number == 1:
        return f"1 {noun}"
    return f"{number} {noun[:-1]}ies" if noun.endswith("y") else f"{number} {noun}s"


def _restore(path: Path, rel: str | None = None) -> str:
    """The advice to restore the ledger at `path` (`rel`: its path in the repository)."""
    return RESTORE.format(ref=REF, rel=rel or path, path=path)


def canonical(record: dict[str, Any]) -> str:
    """The one accepted JSON text of `record`: sorted keys, no spaces, ASCII.

    >>> canonical({"b": [1, 2], "a": "x"})
    '{"a":"x","b":[1,2]}'
    """
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def _hash_of(entry: Entry) -> str:
    """sha256 (hex) of the canonical JSON of every field of `entry` but `hash`."""
    record = asdict(entry)
    del record["hash"]
    return hashlib.sha256(canonical(record).encode("ascii")).hexdigest()


def _is_int(value: Any) -> bool:
    """True for a JSON integer (`bool` is excluded although it is an `int` in Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_utc(timestamp: str) -> bool:
    """True when `timestamp` is ISO 8601 with a zero UTC offset ("Z" or "+00:00").

    >>> _is_utc("2024-05-01T12:00:00Z"), _is_utc("2024-05-01T12:00:00+02:00")
    (True, False)
    """
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return False
    return moment.utcoffset() == timedelta(0)


def _shape_problem(record: Any) -> str | None:
    """What is wrong with the keys and value types of `record`, or None."""
    if not isinstance(record, dict):
        return "it is not a JSON object"
    if set(record) != set(FIELDS):
        missing = ", ".join(sorted(set(FIELDS) - set(record))) or "none"
        unknown = ", ".join(sorted(set(record) - set(FIELDS))) or "none"
        return f"fields are wrong (missing: {missing}; unknown: {unknown})"
    if not _is_int(record["index"]) or record["index"] < 0:
        return f"index must be a whole number >= 0, got {record['index']!r}"
    for name in TEXTS:
        if not isinstance(record[name], str):
            return f"{name} must be a string, got {record[name]!r}"
    seeds = record["seeds"]
    if not isinstance(seeds, list) or not all(_is_int(seed) for seed in seeds):
        return f"seeds must be a list of whole numbers, got {seeds!r}"
    return None


def _value_problem(record: dict[str, Any]) -> str | None:
    """What is wrong with the values every entry must have, or None."""
    if record["kind"] not in KINDS:
        return f"kind must be one of {', '.join(KINDS)}, got {record['kind']!r}"
    if not _is_utc(record["timestamp"]):
        return f"timestamp must be ISO 8601 in UTC, got {record['timestamp']!r}"
    for name in ("candidate_params_sha256", "spec_hash", "test_ids_hash", "previous", "hash"):
        if not SHA256.fullmatch(record[name]):
            return f"{name} must be 64 lowercase hex digits, got {record[name]!r}"
    if not COMMIT.fullmatch(record["candidate_commit"]):
        return f"candidate_commit must be a full git commit id, got {record['candidate_commit']!r}"
    commit = record["baseline_commit"]
    if commit and not COMMIT.fullmatch(commit):
        return f"baseline_commit must be a full git commit id, got {commit!r}"
    if bool(commit) != bool(record["baseline"]):
        return "baseline and baseline_commit must be given together"
    return None


def _kind_problem(record: dict[str, Any]) -> str | None:
    """What is wrong with `record` for its kind ("look" or "opened"), or None."""
    if record["kind"] == OPENED:
        if record["stage"] or record["outcome"] != OPENED:
            return (
                "an opened entry has stage '' and outcome 'opened', got "
                f"{record['stage']!r} and {record['outcome']!r}"
            )
        return None
    if record["outcome"] not in OUTCOMES:
        return f"outcome must be one of {', '.join(OUTCOMES)}, got {record['outcome']!r}"
    for name in ("candidate", "baseline", "stage"):
        if not record[name]:
            return f"{name} must be a non-empty string in a look"
    if not record["seeds"]:
        return "seeds must not be empty in a look"
    return None


def _problem(record: Any) -> str | None:
    """What is wrong with `record` as a ledger entry, or None when it is well formed.

    >>> _problem({"index": 0})  # doctest: +ELLIPSIS
    'fields are wrong (missing: baseline, baseline_commit, candidate, candidate_commit, ...'
    >>> _problem(asdict(_entry(0, GENESIS, **_example(stage="", outcome="opened"))))
    "outcome must be one of pass, fail, error, got 'opened'"
    >>> _problem(asdict(_entry(0, GENESIS, **_example(kind="opened", stage="", outcome="opened",
    ...                                               baseline="", baseline_commit=""))))
    """
    return _shape_problem(record) or _value_problem(record) or _kind_problem(record)


def _parse_line(path: Path, number: int, raw: bytes) -> Entry:
    """The entry on line `number` (1-based) of `path`; LedgerError when it is not canonical."""
    where = f"{path}:{number}"
    try:
        text = raw.decode("ascii")
        record = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LedgerError(
            f"{where}: not a JSON line ({error}); the ledger was edited or corrupted. "
            + _restore(path)
        ) from error
    problem = _problem(record)
    if problem is None and text != canonical(record):
        problem = "the line is not in canonical form (sorted keys, no spaces, ASCII escapes)"
    if problem is not None:
        raise LedgerError(
            f"{where}: {problem}; the ledger was edited or corrupted. " + _restore(path)
        )
    return Entry(**record)


def _parse(path: Path, data: bytes) -> list[Entry]:
    """Every entry in the bytes `data` read from `path`, in file order."""
    if not data:
        return []
    lines = data.split(b"\n")
    if lines[-1]:
        raise LedgerError(
            f"{path}:{len(lines)}: the last line has no line end: a write was cut short or the "
            "file was truncated or edited. " + _restore(path)
        )
    return [_parse_line(path, number, raw) for number, raw in enumerate(lines[:-1], start=1)]


def _link_problem(entry: Entry, position: int, previous: str) -> str | None:
    """What is wrong with `entry` at `position` after an entry hashed `previous`, or None."""
    if entry.hash != _hash_of(entry):
        return "its hash does not match its content: a field was changed"
    if entry.index != position:
        return (
            f"its index is {entry.index}, expected {position}: a line was deleted, added or moved"
        )
    if entry.previous != previous:
        return (
            "its previous hash is not the hash of the line before it: "
            "a line was deleted, added, moved or forged"
        )
    return None


def _check_chain(path: Path, entries: list[Entry]) -> list[Entry]:
    """`entries` if every hash, index and link holds; else LedgerError at the first bad line."""
    previous = GENESIS
    for position, entry in enumerate(entries):
        problem = _link_problem(entry, position, previous)
        if problem is not None:
            raise LedgerError(
                f"{path}:{position + 1}: {problem}. The ledger was edited after it was written. "
                + _restore(path)
            )
        previous = entry.hash
    return entries


def _read_bytes(path: Path) -> bytes:
    """The bytes of `path`, or none when the file does not exist yet."""
    return path.read_bytes() if path.exists() else b""


def read(path: str | Path) -> list[Entry]:
    """Every entry of the ledger at `path`; a missing file reads as an empty ledger.

    Only the form of each line is checked here; `verify` checks the hashes, the chain and
    that no committed version holds an entry the file lacks.

    >>> read("/nonexistent/gates/ledger.jsonl")
    []
    """
    path = Path(path)
    return _parse(path, _read_bytes(path))


def parse_chain(data: bytes, where: str) -> list[Entry]:
    """Every entry of a ledger's bytes (as committed at some revision), its chain checked;
    `where` names it in errors (e.g. `model/v2:gates/ledger.jsonl`).

    >>> parse_chain(b"", "v1:gates/ledger.jsonl")
    []
    """
    return _check_chain(Path(where), _parse(Path(where), data))


# --- git -------------------------------------------------------------------------------------


def _git(repo: Path, *args: str, data: bytes | None = None, env: dict | None = None) -> bytes:
    """stdout of `git args` run in `repo`; LedgerError with git's message on failure."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=repo, input=data, capture_output=True, env=env, check=False
        )
    except FileNotFoundError as error:
        raise LedgerError("git is not installed: the ledger lives in git") from error
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise LedgerError(f"git {' '.join(args)} failed in {repo}: {message}")
    return done.stdout


def _locate(path: Path, repo: str | Path) -> tuple[Path, str]:
    """The work tree's top folder of `repo` and the path of `path` in it (POSIX, relative).

    LedgerError when `repo` is not in a git work tree or `path` lies outside it.
    """
    if not Path(repo).is_dir():
        raise LedgerError(f"{repo} is not a folder: name a folder inside the git repository")
    try:
        top = Path(_git(Path(repo), "rev-parse", "--show-toplevel").decode().strip())
    except LedgerError as error:
        raise LedgerError(
            f"{Path(repo).resolve()} is not inside a git work tree: the ledger {path} must be "
            "committed to git so that no look can be lost; `verify` and `commit_entry` refuse "
            "to run without it"
        ) from error
    top = top.resolve()
    try:
        rel = path.resolve().relative_to(top)
    except ValueError:
        raise LedgerError(f"the ledger {path} is outside the git work tree {top}") from None
    return top, rel.as_posix()


def _relative_or_none(path: Path, repo: str | Path) -> str | None:
    """The path of `path` in the repository of `repo`, or None outside a git work tree."""
    try:
        return _locate(path, repo)[1]
    except LedgerError:
        return None


def _ref_commit(top: Path) -> str | None:
    """The commit `refs/avgate/ledger` points to, or None before the first look."""
    done = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{REF}^{{commit}}"],
        cwd=top,
        capture_output=True,
        check=False,
    )
    return done.stdout.decode().strip() or None


def _blobs(top: Path, rel: str) -> dict[str, list[str]]:
    """Each distinct blob of `rel` in a commit reachable from any ref or reflog -> its commits.

    Commits are listed newest first (as `git rev-list` gives them); a commit where the file
    does not exist adds nothing. `--full-history` follows every parent of a merge, so a look
    on a branch merged with `-s ours` (the merge keeping the other side's ledger) still counts.
    """
    listing = ["rev-list", "--all", "--reflog", "--full-history", "--", rel]
    commits = _git(top, *listing).decode().split()
    if not commits:
        return {}
    query = "".join(f"{commit}:{rel}\n" for commit in commits).encode()
    answers = _git(top, "cat-file", "--batch-check", data=query).decode().splitlines()
    found: dict[str, list[str]] = {}
    for commit, answer in zip(commits, answers, strict=True):
        blob, _, kind = answer.partition(" ")
        if kind.startswith("blob"):
            found.setdefault(blob, []).append(commit)
    return found


def _contents(top: Path, blobs: list[str]) -> dict[str, bytes]:
    """The bytes of each blob in `blobs`, read with one `git cat-file --batch`."""
    if not blobs:
        return {}
    out = _git(top, "cat-file", "--batch", data="".join(f"{b}\n" for b in blobs).encode())
    contents: dict[str, bytes] = {}
    at = 0
    for blob in blobs:
        header_end = out.index(b"\n", at)
        size = int(out[at:header_end].split()[2])
        contents[blob] = out[header_end + 1 : header_end + 1 + size]
        at = header_end + 1 + size + 1
    return contents


def _refs_containing(top: Path, commit: str) -> list[str]:
    """The refs whose history holds `commit` (none when only a reflog does)."""
    out = _git(top, "for-each-ref", "--contains", commit, "--format=%(refname)")
    return out.decode().split()


# --- completeness ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lost:
    """A line of a committed version of the ledger that the current file lacks."""

    number: int
    line: bytes
    commit: str

    def describe(self, refs: list[str]) -> str:
        """One line for a message: the entry in a few words, then where it was found (`refs`)."""
        try:
            entry: Entry | str = _parse_line(Path("version"), self.number, self.line)
        except LedgerError:
            entry = f"line {self.number}, not a valid entry: {self.line[:80]!r}"
        what = _describe(entry) if isinstance(entry, Entry) else entry
        shown = ", ".join(refs[:3]) + (f" and {len(refs) - 3} more" if len(refs) > 3 else "")
        return f"{what}; in commit {self.commit[:12]} ({shown or 'only in a reflog'})"


def _lost_lines(current: bytes, version: bytes, commit: str) -> list[_Lost]:
    """The lines of `version` that `current` does not hold at the same position.

    >>> [lost.number for lost in _lost_lines(b"a\\nb\\n", b"a\\nc\\nd\\n", "0" * 40)]
    [2, 3]
    """
    have = current.split(b"\n")
    lines = version.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return [
        _Lost(number, line, commit)
        for number, line in enumerate(lines, start=1)
        if number > len(have) or have[number - 1] != line
    ]


def _fullest(current: bytes, versions: dict[str, bytes], found: dict[str, list[str]]) -> str:
    """Advice naming the one commit whose version holds every other, when there is one."""
    longest = max(versions, key=lambda blob: len(versions[blob]))
    data = versions[longest]
    if all(data.startswith(other) for other in [current, *versions.values()]):
        return (
            f"Restore it with `git show {found[longest][0]}:{{rel}} > {{path}}` and verify again."
        )
    return (
        "The versions diverge (looks were made on two copies of the ledger), so no version holds "
        "every look and the chain cannot merge them: the lost looks still happened. Restore the "
        f"fullest version (`git show {REF}:{{rel}} > {{path}}`) and report the divergence to "
        "whoever reviews promotions."
    )


def _check_complete(path: Path, repo: str | Path, current: bytes) -> None:
    """LedgerError unless every committed version of the ledger is a prefix of `current`."""
    top, rel = _locate(path, repo)
    found = _blobs(top, rel)
    versions = _contents(top, list(found))
    lost: dict[bytes, _Lost] = {}
    for blob, data in versions.items():
        if current.startswith(data):
            continue
        for item in _lost_lines(current, data, found[blob][0]):
            lost.setdefault(item.line, item)
    if not lost:
        return
    items = sorted(lost.values(), key=lambda item: (item.number, item.commit))
    refs = {item.commit: _refs_containing(top, item.commit) for item in items}
    listed = "\n".join(f"  - {item.describe(refs[item.commit])}" for item in items)
    count = _count(len(items), "entry")
    advice = _fullest(current, versions, found).format(rel=rel, path=path)
    raise LedgerError(
        f"{path} lacks {count} found in other committed versions of the ledger (a line was "
        "dropped, the file emptied or restored from an older commit, or a look was made on "
        f"another branch or experiment):\n{listed}\nA look cannot be taken back. {advice}"
    )


def verify(path: str | Path, repo: str | Path = ".") -> list[Entry]:
    """Every entry of the ledger at `path`, after checking that it is whole.

    LedgerError when the file does not exist (the repository ships an empty ledger, so it was
    deleted or the path is wrong), when a line is malformed or a hash, index or link of the chain
    is broken (naming the first bad line), when `repo` is not in a git work tree (the ledger is
    meant to be in git, and completeness cannot be checked without it), and when any committed
    version of the ledger on any ref or reflog (`git rev-list --all --reflog --full-history`:
    branches, tags, `refs/exps/*`, `refs/avgate/ledger`, stashes) is not a prefix of the file; the
    message then lists every entry found elsewhere that the file lacks, with a commit and the
    refs holding it. `path` is a file path as usual (relative to the working directory); `repo`
    is any folder inside the repository.

    >>> verify("/nonexistent/gates/ledger.jsonl")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    avgate.gating.ledger.LedgerError: /nonexistent/gates/ledger.jsonl does not exist...
    """
    path = Path(path)
    if not path.is_file():
        rel = _relative_or_none(path, repo) or path
        raise LedgerError(
            f"{path} does not exist: the repository ships an empty ledger there, so the file "
            f"was deleted or the path is wrong. Restore it from git: `git show {REF}:{rel} > "
            f"{path}` (the latest committed looks) or `git checkout HEAD -- {rel}`, then verify "
            "again."
        )
    current = path.read_bytes()
    entries = _check_chain(path, _parse(path, current))
    _check_complete(path, repo, current)
    return entries


# --- writing ---------------------------------------------------------------------------------


def _entry(index: int, previous: str, **values: Any) -> Entry:
    """A new entry at `index` after the entry hashed `previous`, with its own hash filled in."""
    draft = Entry(index=index, previous=previous, hash="", **values)
    record = asdict(draft) | {"hash": _hash_of(draft)}
    return Entry(**record)


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: a temp file in the same folder, fsynced, then renamed."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


@contextmanager
def locked(path: str | Path, timeout_s: float = 600.0) -> Iterator[None]:
    """Hold an exclusive lock on the ledger at `path` (a `.lock` file beside it) for a whole
    look at the test split: verify, check, evaluate, append, commit. Two gate runs in one
    workspace then cannot both pass `check_allowed` on the last look. LedgerError after
    `timeout_s` seconds.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "ledger.jsonl"
    >>> with locked(path):
    ...     with locked(path, timeout_s=0.1):
    ...         pass  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    avgate.gating.ledger.LedgerError: ...ledger.jsonl is locked by another gate run...
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LedgerError(
                        f"{path} is locked by another gate run for over {timeout_s:g} s; wait "
                        "for it to finish"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append(
    path: str | Path,
    *,
    timestamp: str,
    kind: str,
    candidate: str,
    candidate_commit: str,
    candidate_params_sha256: str,
    baseline: str,
    baseline_commit: str,
    spec_hash: str,
    test_ids_hash: str,
    stage: str,
    seeds: list[int],
    outcome: str,
) -> Entry:
    """Check the chain of the ledger at `path`, add one entry atomically, return the entry.

    A tampered ledger is left byte-identical and LedgerError is raised; bad values raise
    ValueError before anything is written. Nothing is committed: the caller runs `verify`
    before the look and `commit_entry` right after `append`, all under `locked(path)`.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "ledger.jsonl"
    >>> second = [append(path, **_example()) for _ in range(2)][-1]
    >>> second.index, second.previous == read(path)[0].hash
    (1, True)
    """
    path = Path(path)
    data = _read_bytes(path)
    entries = _check_chain(path, _parse(path, data))
    previous = entries[-1].hash if entries else GENESIS
    values = dict(
        timestamp=timestamp,
        kind=kind,
        candidate=candidate,
        candidate_commit=candidate_commit,
        candidate_params_sha256=candidate_params_sha256,
        baseline=baseline,
        baseline_commit=baseline_commit,
        spec_hash=spec_hash,
        test_ids_hash=test_ids_hash,
        stage=stage,
        seeds=list(seeds),
        outcome=outcome,
    )
    entry = _entry(len(entries), previous, **values)
    problem = _problem(asdict(entry))
    if problem is not None:
        raise ValueError(f"cannot append to {path}: {problem}")
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, data + canonical(asdict(entry)).encode("ascii") + b"\n")
    return entry


def _identity_env(top: Path) -> dict[str, str]:
    """The environment for `git commit-tree`, with "avgate ledger" where git has no identity."""
    env = dict(os.environ)
    for key in ("name", "email"):
        done = subprocess.run(
            ["git", "config", "--get", f"user.{key}"], cwd=top, capture_output=True, check=False
        )
        if not done.stdout.strip():
            for role in ("AUTHOR", "COMMITTER"):
                env.setdefault(f"GIT_{role}_{key.upper()}", IDENTITY[key])
    return env


def _tree(top: Path, rel: str, blob: str) -> str:
    """A tree holding only `blob` at the relative path `rel`, nested trees for its folders."""
    *folders, name = rel.split("/")
    tree = _git(top, "mktree", data=f"100644 blob {blob}\t{name}\n".encode()).decode().strip()
    for folder in reversed(folders):
        tree = _git(top, "mktree", data=f"040000 tree {tree}\t{folder}\n".encode())
        tree = tree.decode().strip()
    return tree


def _message(entry: Entry) -> str:
    """The commit message of the ledger commit that records `entry`."""
    if entry.kind == OPENED:
        title = f"ledger #{entry.index}: test split opened ({entry.candidate or 'no candidate'})"
    else:
        title = f"ledger #{entry.index}: {entry.stage} look at {entry.candidate}: {entry.outcome}"
    return (
        f"{title}\n\nspec {entry.spec_hash}\ntest ids {entry.test_ids_hash}\n"
        f"candidate {entry.candidate_commit}\nbaseline {entry.baseline} {entry.baseline_commit}\n"
        f"entry {entry.hash}\n"
    )


def _new_commit(top: Path, tree: str, parent: str | None, entry: Entry) -> str:
    """A commit of `tree` after `parent` (if any), its message naming `entry`."""
    args = ["commit-tree", tree, *(["-p", parent] if parent else []), "-F", "-"]
    out = _git(top, *args, data=_message(entry).encode(), env=_identity_env(top))
    return out.decode().strip()


def _check_ref_prefix(top: Path, rel: str, parent: str | None, data: bytes, path: Path) -> None:
    """LedgerError when the ledger on `refs/avgate/ledger` is not a prefix of `data`."""
    if parent is None:
        return
    blob = _blob_at(top, parent, rel)
    if blob is not None and not data.startswith(_contents(top, [blob])[blob]):
        raise LedgerError(
            f"{path} does not extend the ledger committed on {REF} ({parent[:12]}): the look "
            "was appended to an old copy. Run `avgate ledger verify` to list the missing looks."
        )


def _blob_at(top: Path, commit: str, rel: str) -> str | None:
    """The blob id of `rel` in `commit`, or None when the commit lacks it."""
    answer = _git(top, "cat-file", "--batch-check", data=f"{commit}:{rel}\n".encode()).decode()
    blob, _, kind = answer.partition(" ")
    return blob if kind.startswith("blob") else None


def commit_entry(path: str | Path, entry: Entry, repo: str | Path = ".") -> str:
    """Commit the ledger at `path`, whose last entry is `entry`, on `refs/avgate/ledger`.

    Git plumbing only (`hash-object`, `mktree`, `commit-tree`, `update-ref` with the old value),
    so HEAD, the index and the working tree are untouched, and a writer that moved the ref in
    between makes this one fail (LedgerError) instead of losing a look. The commit's tree holds
    only the ledger, at its path in the repository. Returns the new commit's id. Call it right
    after `append`, under `locked(path)`; where git has no identity, "avgate ledger" commits.
    """
    path = Path(path)
    top, rel = _locate(path, repo)
    data = path.read_bytes()
    entries = _parse(path, data)
    if not entries or entries[-1].hash != entry.hash:
        raise LedgerError(f"{path}: entry #{entry.index} is not its last entry; nothing committed")
    parent = _ref_commit(top)
    _check_ref_prefix(top, rel, parent, data, path)
    blob = _git(top, "hash-object", "-w", "--stdin", data=data).decode().strip()
    commit = _new_commit(top, _tree(top, rel, blob), parent, entry)
    old = parent or "0" * len(commit)
    try:
        _git(top, "update-ref", "--create-reflog", "-m", "avgate ledger", REF, commit, old)
    except LedgerError as error:
        raise LedgerError(
            f"{REF} moved while entry #{entry.index} was being committed (another writer?): the "
            f"look is in {path} but not committed. Run `avgate ledger verify`. ({error})"
        ) from None
    return commit


def in_throwaway_copy(repo: str | Path = ".") -> bool:
    """True inside a DVC queued experiment's temporary copy, where a ref written is lost.

    >>> in_throwaway_copy("/home/me/project/.dvc/tmp/exps/tmpab12cd"), in_throwaway_copy("/tmp")
    (True, False)
    """
    return THROWAWAY in Path(repo).resolve().as_posix() + "/"


# --- the budget ------------------------------------------------------------------------------


def _describe(entry: Entry) -> str:
    """`entry` in a few words for a message: index, time, kind, stage, outcome, candidate.

    >>> _describe(_entry(3, GENESIS, **_example()))
    "entry #3 at 2024-05-01T12:00:00Z (look, full_test, fail), candidate 'lora-r8' at cccccccccccc"
    """
    what = f"{entry.kind}, {entry.stage}, {entry.outcome}" if entry.stage else entry.kind
    return (
        f"entry #{entry.index} at {entry.timestamp} ({what}), candidate {entry.candidate!r} "
        f"at {entry.candidate_commit[:12]}"
    )


def looks_used(entries: list[Entry], spec_hash: str, test_ids_hash: str, stage: str) -> list[Entry]:
    """The looks under `spec_hash` at the test split `test_ids_hash` and `stage`, any candidate.

    Every outcome counts, "error" included: a run that failed may still have seen the test split.

    >>> a = _entry(0, GENESIS, **_example(candidate="a", outcome="error"))
    >>> b = _entry(1, a.hash, **_example(candidate="renamed"))
    >>> len(looks_used([a, b], "f" * 64, "e" * 64, "full_test"))
    2
    >>> looks_used([a, b], "f" * 64, "e" * 64, "quick_test")
    []
    """
    return [
        entry
        for entry in entries
        if entry.kind == "look"
        and entry.spec_hash == spec_hash
        and entry.test_ids_hash == test_ids_hash
        and entry.stage == stage
    ]


def _pin_problem(entries: list[Entry], spec_hash: str, baseline_commit: str) -> str | None:
    """Why `baseline_commit` breaks the baseline pinned by the spec's first entry, or None."""
    pinned = [e for e in entries if e.spec_hash == spec_hash and e.baseline_commit]
    if not pinned or pinned[0].baseline_commit == baseline_commit:
        return None
    first = pinned[0]
    return (
        f"the spec's first look pinned baseline {first.baseline!r} at commit "
        f"{first.baseline_commit} ({_describe(first)}); it now resolves to {baseline_commit}: a "
        "moved tag is refused. Point the baseline back at the pinned commit."
    )


def _plan_problem(
    entries: list[Entry], spec_hash: str, test_ids_hash: str, baseline_commit: str
) -> str | None:
    """Why a look under `spec_hash` comes after the split was seen under another spec, or None."""
    for entry in entries:
        if (
            entry.kind == "look"
            and entry.test_ids_hash == test_ids_hash
            and entry.baseline_commit == baseline_commit
            and entry.spec_hash != spec_hash
        ):
            return (
                f"the test split {test_ids_hash} was already looked at against baseline commit "
                f"{baseline_commit} under spec hash {entry.spec_hash} ({_describe(entry)}); the "
                f"spec in force now hashes to {spec_hash}. The plan changed after the test split "
                "was seen: thresholds cannot move. Restore the pre-registered gates.yaml."
            )
    return None


def _budget_problem(used: list[Entry], stage: str, looks: int) -> str | None:
    """Why another look at `stage` is over the budget of `looks`, or None."""
    if len(used) < looks:
        return None
    listed = "; ".join(_describe(entry) for entry in used) or "none"
    return (
        f"{_count(len(used), 'test look')} already made at stage {stage!r} under this spec and "
        f"test split (the spec allows {looks}), whatever the candidate's name: {listed}. Another "
        "look is refused; a new budget needs a new pre-registered spec and a test split not yet "
        "seen."
    )


def check_allowed(
    entries: list[Entry],
    *,
    spec_hash: str,
    test_ids_hash: str,
    stage: str,
    looks: int,
    baseline_commit: str,
) -> None:
    """Refuse (LedgerError) another look at the test split `test_ids_hash` at `stage`.

    Refused when the spec's first entry pinned another baseline commit (a moved tag), when this
    test split was looked at against `baseline_commit` under another spec hash (the plan changed
    after the split was seen), or when `looks` looks under this spec, test split and stage exist
    already, whatever their candidate's name.

    >>> first = _entry(0, GENESIS, **_example())
    >>> check_allowed([first], spec_hash="f" * 64, test_ids_hash="e" * 64, stage="full_test",
    ...               looks=2, baseline_commit="b" * 40)
    >>> check_allowed([first], spec_hash="f" * 64, test_ids_hash="e" * 64, stage="full_test",
    ...               looks=2, baseline_commit="a" * 40)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    avgate.gating.ledger.LedgerError: the spec's first look pinned baseline 'model/v1' at ...
    """
    problem = (
        _pin_problem(entries, spec_hash, baseline_commit)
        or _plan_problem(entries, spec_hash, test_ids_hash, baseline_commit)
        or _budget_problem(looks_used(entries, spec_hash, test_ids_hash, stage), stage, looks)
    )
    if problem is not None:
        raise LedgerError(problem)


def opened(entries: list[Entry], spec_hash: str, test_ids_hash: str) -> Entry | None:
    """The first "opened" entry of the test split `test_ids_hash` made before the first look
    under `spec_hash` at that split (any entry when there is no look yet), or None.

    An opening under any spec counts: a split seen in exploratory work is seen whatever plan
    follows. A promotion under this spec must then say so.

    >>> seen = _entry(0, GENESIS, **_example(kind="opened", stage="", outcome="opened"))
    >>> look = _entry(1, seen.hash, **_example())
    >>> opened([seen, look], "f" * 64, "e" * 64).index
    0
    >>> opened([look], "f" * 64, "e" * 64) is None
    True
    """
    for entry in entries:
        if entry.test_ids_hash != test_ids_hash:
            continue
        if entry.kind == OPENED:
            return entry
        if entry.spec_hash == spec_hash:
            return None
    return None
