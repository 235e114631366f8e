"""`avgate verify TAG`: re-derive a promotion from what the tag pins, without a new look.

At the tag's commit (git for tracked files, the DVC cache or remote for outputs) it reads
`gates.yaml`, `params.yaml`, the ledger, the candidate's stored test logits and metrics and the
test labels; the baseline's stored logits at the commit each look pinned. Every test stage of
the plan is computed again with the gate's own code: no ledger write, no new evaluation. Each
decision must match its ledger entry, and the last stage's report must hash to the sha256 in the
tag's note (the report is a function of those stored files only: no clock, no checkout).

>>> note_sha256("avgate promote: model m\\ngate report reports/gate.md sha256 " + "ab" * 32)
'abababababababababababababababababababababababababababababababab'
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import yaml

from avgate.config import Params
from avgate.errors import StageError
from avgate.gating import ledger
from avgate.gating.gate_report import markdown
from avgate.gating.paths import GATE_REPORT, LEDGER, PARAMS, SPEC
from avgate.gating.revisions import RevisionError, Snapshot, git, resolve
from avgate.gating.spec import parse_spec
from avgate.stages.gate import Side, recompute

NOTE = re.compile(r"gate report \S+ sha256 ([0-9a-f]{64})")
FETCHED = ("ingest", "budget", "train")  # what a look reads: labels, the allocation, test logits


def note_sha256(note: str) -> str | None:
    """The gate report's sha256 that `avgate promote` wrote into a tag's note, if any."""
    found = NOTE.search(note)
    return found.group(1) if found else None


def first_difference(expected: str, got: str) -> str:
    """The first line where two reports differ, both versions, numbered."""
    old, new = expected.splitlines(), got.splitlines()
    for number, (a, b) in enumerate(zip(old, new, strict=False), start=1):
        if a != b:
            return f"line {number}:\n  tag:        {a}\n  recomputed: {b}"
    return (
        f"line {min(len(old), len(new)) + 1}: one report has {abs(len(old) - len(new))} more lines"
    )


def run(tag: str) -> list[str]:
    """Re-derive the promotion `tag`; the lines to print. StageError when it does not match."""
    commit = resolve(tag)
    if commit is None:
        raise RevisionError(
            f"{tag!r} is not a git revision here; fetch the tags (git fetch --tags)"
        )
    expected = note_sha256(git("tag", "-l", "--format=%(contents)", tag))
    if expected is None:
        raise StageError(
            f"tag {tag}: its note names no gate report sha256: `avgate promote` made no such tag"
        )
    fetch_outputs()
    snap = Snapshot(tag, commit)
    spec = parse_spec(yaml.safe_load(snap.read_bytes(str(SPEC))), f"{tag}:{SPEC}")
    params = Params.from_dict(yaml.safe_load(snap.read_bytes(str(PARAMS))))
    entries = ledger.parse_chain(snap.read_bytes(str(LEDGER)), f"{tag}:{LEDGER}")
    candidate = Side(snap.read_bytes)
    lines, report = [f"verify {tag} ({commit[:12]}): plan sha256 {spec.hash[:12]}"], ""
    for stage in (s for s in spec.stages if s.split == "test"):
        entry = _look_of(entries, spec.hash, stage.name, tag)
        result = recompute(params, spec, stage, candidate, entries, entry)
        lines.append(
            f"  {stage.name}: recomputed {result['decision']} (mean delta "
            f"{result['mean_delta']:+.4f}, p = {result['p_value']:.4g}); ledger entry "
            f"#{entry.index} recorded {entry.outcome}"
        )
        if result["decision"] != entry.outcome:
            raise StageError(
                "\n".join([*lines, f"{stage.name}: the decision does not match its look"])
            )
        report = markdown(result)
    got = hashlib.sha256(report.encode()).hexdigest()
    if got != expected:
        stored = snap.read_bytes(str(GATE_REPORT)).decode()
        raise StageError(
            "\n".join(lines)
            + f"\nthe recomputed {GATE_REPORT} hashes to {got[:12]}, the tag's note says "
            f"{expected[:12]}; first difference, {first_difference(stored, report)}"
        )
    lines.append(f"  {GATE_REPORT} sha256 {got[:12]} matches the tag's note: promotion re-derived")
    return lines


def fetch_outputs() -> None:
    """`dvc fetch` the labels and stored logits of every tag from the DVC remote, as a fresh
    clone needs; without a remote (or offline) the reads below say what is missing."""
    subprocess.run(
        [sys.executable, "-m", "dvc", "fetch", "-q", "--all-tags", *FETCHED], capture_output=True
    )


def _look_of(entries: list[ledger.Entry], spec_hash: str, stage: str, tag: str) -> ledger.Entry:
    """The last look at `stage` under the plan, as the tag's ledger recorded it."""
    looks = [
        e for e in entries if e.kind == "look" and e.stage == stage and e.spec_hash == spec_hash
    ]
    if not looks:
        raise StageError(f"{tag}:{LEDGER} records no look at {stage} under the tag's plan")
    return looks[-1]
