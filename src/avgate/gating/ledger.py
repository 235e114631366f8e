"""The test-split ledger: an append-only, hash-chained record of every look at the test split.

`gates/ledger.jsonl` is committed to git. Each line is one evaluation of a candidate on the test
split: the candidate line, the git revision, the hash of the gate spec in force, the stage, the
seeds and the outcome. Each entry carries the hash of the one before it, so an edited field, a
deleted, reordered or inserted line shows up in `verify`. `check_allowed` then refuses another
look once a candidate line has used its attempts, or when the spec changed after its first look.

Lines are canonical and nothing else is accepted: each line is exactly
``json.dumps(entry, sort_keys=True, separators=(",", ":"))`` (ASCII, escapes as `json` writes
them) followed by ``"\\n"``. Extra whitespace, reordered keys or a missing final line end make
the ledger invalid even where the parsed values would be the same, so a byte of the file cannot
change without `verify` noticing.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "gates" / "ledger.jsonl"
>>> first = append(path, timestamp="2024-05-01T12:00:00Z", candidate="lora-r8", revision="a1b2c3d",
...                spec_hash="f" * 64, stage="full_test", seeds=[0, 1, 2], outcome="fail")
>>> first.index, first.previous == GENESIS
(0, True)
>>> [entry.outcome for entry in verify(path)]
['fail']
>>> attempts(read(path), "lora-r8")
1
>>> check_allowed(read(path), candidate="lora-r8", spec_hash="f" * 64, stage="full_test",
...               max_attempts=1)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
avgate.gating.ledger.LedgerError: candidate line 'lora-r8' already used 1 of 1 test ...
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
OUTCOMES = ("pass", "fail", "error")


class LedgerError(RuntimeError):
    """The ledger is malformed or edited, or it refuses another look at the test split."""


@dataclass(frozen=True)
class Entry:
    """One evaluation of a candidate on the test split, as one line of the ledger.

    >>> entry = _entry(0, GENESIS, timestamp="2024-05-01T12:00:00Z", candidate="lora-r8",
    ...                revision="a1b2c3d", spec_hash="f" * 64, stage="quick_test", seeds=[0],
    ...                outcome="pass")
    >>> entry.hash == _hash_of(entry)
    True
    """

    index: int
    timestamp: str
    candidate: str
    revision: str
    spec_hash: str
    stage: str
    seeds: list[int]
    outcome: str
    previous: str
    hash: str


FIELDS = tuple(field.name for field in fields(Entry))
RESTORE = (
    "The ledger is append-only and written only by avgate: restore it from git "
    "(`git log -p -- {path}`, then `git checkout <good-revision> -- {path}`) "
    "instead of editing it by hand."
)


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


def _problem(record: Any) -> str | None:
    """What is wrong with `record` as a ledger entry, or None when it is well formed.

    >>> _problem({"index": 0})  # doctest: +ELLIPSIS
    'fields are wrong (missing: candidate, hash, outcome, previous, revision, seeds, ...'
    """
    if not isinstance(record, dict):
        return "it is not a JSON object"
    if set(record) != set(FIELDS):
        missing = ", ".join(sorted(set(FIELDS) - set(record))) or "none"
        unknown = ", ".join(sorted(set(record) - set(FIELDS))) or "none"
        return f"fields are wrong (missing: {missing}; unknown: {unknown})"
    if not _is_int(record["index"]) or record["index"] < 0:
        return f"index must be a whole number >= 0, got {record['index']!r}"
    texts = [name for name in FIELDS if name not in ("index", "seeds")]
    for name in texts:
        if not isinstance(record[name], str) or not record[name]:
            return f"{name} must be a non-empty string, got {record[name]!r}"
    seeds = record["seeds"]
    if not isinstance(seeds, list) or not all(_is_int(seed) for seed in seeds):
        return f"seeds must be a list of whole numbers, got {seeds!r}"
    if record["outcome"] not in OUTCOMES:
        return f"outcome must be one of {', '.join(OUTCOMES)}, got {record['outcome']!r}"
    if not _is_utc(record["timestamp"]):
        return f"timestamp must be ISO 8601 in UTC, got {record['timestamp']!r}"
    return None


def _parse_line(path: Path, number: int, raw: bytes) -> Entry:
    """The entry on line `number` (1-based) of `path`; LedgerError when it is not canonical."""
    where = f"{path}:{number}"
    try:
        text = raw.decode("ascii")
        record = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LedgerError(
            f"{where}: not a JSON line ({error}); the ledger was edited or corrupted. "
            + RESTORE.format(path=path)
        ) from error
    problem = _problem(record)
    if problem is None and text != canonical(record):
        problem = "the line is not in canonical form (sorted keys, no spaces, ASCII escapes)"
    if problem is not None:
        raise LedgerError(
            f"{where}: {problem}; the ledger was edited or corrupted. " + RESTORE.format(path=path)
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
            "file was truncated or edited. " + RESTORE.format(path=path)
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
                + RESTORE.format(path=path)
            )
        previous = entry.hash
    return entries


def _read_bytes(path: Path) -> bytes:
    """The bytes of `path`, or none when the file does not exist yet."""
    return path.read_bytes() if path.exists() else b""


def read(path: str | Path) -> list[Entry]:
    """Every entry of the ledger at `path`; a missing file is an empty ledger.

    Only the form of each line is checked here; `verify` checks the hashes and the chain.

    >>> read("/nonexistent/gates/ledger.jsonl")
    []
    """
    path = Path(path)
    return _parse(path, _read_bytes(path))


def verify(path: str | Path) -> list[Entry]:
    """Every entry of the ledger at `path`, after recomputing every hash and the chain.

    An edited field, a deleted, reordered or inserted line, or a bad index raises LedgerError
    naming the first bad line.

    >>> verify("/nonexistent/gates/ledger.jsonl")
    []
    """
    path = Path(path)
    return _check_chain(path, read(path))


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
    look at the test split: check, evaluate, append. Two gate runs in one workspace then cannot
    both pass `check_allowed` on the last attempt. LedgerError after `timeout_s` seconds.

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
    candidate: str,
    revision: str,
    spec_hash: str,
    stage: str,
    seeds: list[int],
    outcome: str,
) -> Entry:
    """Verify the ledger at `path`, then add one entry to it atomically and return that entry.

    A tampered ledger is left byte-identical and LedgerError is raised; bad values raise
    ValueError before anything is written.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "ledger.jsonl"
    >>> values = dict(timestamp="2024-05-01T12:00:00Z", candidate="lora-r8", revision="a1b2c3d",
    ...               spec_hash="f" * 64, stage="quick_test", seeds=[0, 1], outcome="pass")
    >>> second = [append(path, **values) for _ in range(2)][-1]
    >>> second.index, second.previous == read(path)[0].hash
    (1, True)
    """
    path = Path(path)
    data = _read_bytes(path)
    entries = _check_chain(path, _parse(path, data))
    previous = entries[-1].hash if entries else GENESIS
    values = dict(
        timestamp=timestamp,
        candidate=candidate,
        revision=revision,
        spec_hash=spec_hash,
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


def attempts(entries: list[Entry], candidate: str, stage: str | None = None) -> int:
    """How many test evaluations `candidate` has used (at `stage` only, when given).

    Every outcome counts, "error" included: a run that failed may still have seen the test split.

    >>> e = _entry(0, GENESIS, timestamp="2024-05-01T12:00:00Z", candidate="a", revision="r",
    ...            spec_hash="s", stage="quick_test", seeds=[0], outcome="error")
    >>> attempts([e], "a"), attempts([e], "a", "full_test"), attempts([e], "b")
    (1, 0, 0)
    """
    return sum(
        entry.candidate == candidate and (stage is None or entry.stage == stage)
        for entry in entries
    )


NEW_LINE = (
    "To evaluate again, pre-register a new candidate line: a new candidate name whose gates.yaml "
    "is committed before its first test evaluation. A candidate line cannot be reset, and the "
    "ledger keeps every attempt."
)


def _describe(entry: Entry) -> str:
    """`entry` in a few words for a message: index, time, stage, outcome."""
    return f"entry #{entry.index} at {entry.timestamp} ({entry.stage}, {entry.outcome})"


def check_allowed(
    entries: list[Entry], *, candidate: str, spec_hash: str, stage: str, max_attempts: int
) -> None:
    """Refuse (LedgerError) another test-split evaluation of `candidate` at `stage`.

    Refused when the gate spec hash differs from the one recorded at the candidate line's first
    test evaluation (any stage: thresholds cannot move once the test split was seen), or when the
    line already used `max_attempts` evaluations at `stage`.

    >>> first = _entry(0, GENESIS, timestamp="2024-05-01T12:00:00Z", candidate="a", revision="r",
    ...                spec_hash="old", stage="full_test", seeds=[0], outcome="fail")
    >>> check_allowed([first], candidate="b", spec_hash="new", stage="full_test", max_attempts=1)
    >>> check_allowed([first], candidate="a", spec_hash="new", stage="full_test",
    ...               max_attempts=5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    avgate.gating.ledger.LedgerError: the gate spec of candidate line 'a' changed after ...
    """
    line = [entry for entry in entries if entry.candidate == candidate]
    if line and line[0].spec_hash != spec_hash:
        raise LedgerError(
            f"the gate spec of candidate line {candidate!r} changed after its first look at the "
            f"test split: {_describe(line[0])} recorded spec hash {line[0].spec_hash}, the spec "
            f"in force now hashes to {spec_hash}. Restore the pre-registered gates.yaml to keep "
            "evaluating this line. " + NEW_LINE
        )
    used = [entry for entry in line if entry.stage == stage]
    if len(used) >= max_attempts:
        listed = "; ".join(_describe(entry) for entry in used)
        raise LedgerError(
            f"candidate line {candidate!r} already used {len(used)} of {max_attempts} test "
            f"evaluations at stage {stage!r}: {listed}. Another look at the test split is "
            "refused. " + NEW_LINE
        )
