"""Opening the test split for exploratory work (`evaluate.test: open`): recorded in the ledger
before any test label is read, once per plan and test split."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from avgate.errors import StageError
from avgate.gating import ledger
from avgate.gating.paths import LEDGER, PARAMS, SPEC
from avgate.gating.revisions import git, resolve
from avgate.gating.spec import load_spec


def open_test_split(candidate: str, test_ids: str) -> ledger.Entry | None:
    """Record in the ledger that the test split is opened for exploratory work
    (`evaluate.test: open`), once per plan and test split; None when it was recorded before."""
    spec = load_spec(SPEC)
    if ledger.in_throwaway_copy():
        raise StageError(
            "evaluate.test: open is refused inside a queued experiment's temporary copy, where "
            "its ledger record would be lost; open the test split in the workspace"
        )
    with ledger.locked(LEDGER):
        try:
            entries = ledger.verify(LEDGER)
        except ledger.LedgerError as error:
            raise StageError(f"{LEDGER}: {error}") from None
        if any(
            e.kind == "opened" and e.spec_hash == spec.hash and e.test_ids_hash == test_ids
            for e in entries
        ):
            return None
        commit = resolve(spec.baseline)
        entry = ledger.append(
            LEDGER,
            timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            kind="opened",
            candidate=candidate,
            baseline=spec.baseline if commit else "",
            baseline_commit=commit or "",
            spec_hash=spec.hash,
            test_ids_hash=test_ids,
            stage="",
            seeds=[],
            outcome="opened",
            **workspace_record(),
        )
        ledger.commit_entry(LEDGER, entry)
        return entry


def workspace_record() -> dict:
    """The workspace a ledger entry is recorded from: its commit and its params file's hash."""
    return {
        "candidate_commit": git("rev-parse", "HEAD"),
        "candidate_params_sha256": hashlib.sha256(PARAMS.read_bytes()).hexdigest(),
    }
