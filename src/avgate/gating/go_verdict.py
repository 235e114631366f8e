"""One verdict from the declared go/no-go checks: each check judged on its evidence, the whole
GO, NO-GO or UNCHECKED, the headline `dvc exp show` lists, the report a reviewer reads, and
whether a recorded verdict still holds (what `avgate promote` asks before it starts).

- GO: no declared check failed and at least one passed;
- NO-GO: at least one failed (a check whose evidence is missing or incomplete fails too);
- UNCHECKED: gates.yaml declares no checks, or none applies to this workspace: not a Go.

A recorded verdict (reports/go.json) holds while the declared checks (their thresholds and
phases) and every evidence file they read are what it was computed from (`refusal`).

>>> from avgate.go.base import Context
>>> judge((), Context(seeds=(0,)))["verdict"]
'UNCHECKED'
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from avgate.files import sha256_of
from avgate.go.base import PHASES, Context, EvidenceError, GoCheck

GO, NO_GO, UNCHECKED = "GO", "NO-GO", "UNCHECKED"
PASS, FAIL, NOT_APPLICABLE = "pass", "fail", "not applicable"
ORDER = (FAIL, NOT_APPLICABLE, PASS)  # the report's rows: failures first, passes last
GO_METRICS = Path("metrics/go.json")  # the headline: verdict and counts (`dvc exp show`)
GO_DETAILS = Path("reports/go.json")  # every check: value, threshold, status, phase, evidence
GO_REPORT = Path("reports/go.md")  # the same as a table, failures first
RUN_GO = "run `dvc repro go`"


def checks_hash(checks: tuple[GoCheck, ...]) -> str:
    """sha256 of the declared checks' canonical JSON (names, phases, every threshold)."""
    plain = {check.name: check.canonical() for check in checks}
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()


def evidence_hashes(checks: tuple[GoCheck, ...], context: Context) -> dict[str, str | None]:
    """Every evidence file of the declared checks with its sha256 (None when it is missing)."""
    paths = sorted({str(path) for check in checks for path in check.evidence(context)})
    return {
        path: sha256_of(context.root / path) if (context.root / path).is_file() else None
        for path in paths
    }


def record(check: GoCheck, context: Context) -> dict[str, Any]:
    """One check judged: status (pass, fail, not applicable), value, threshold and how they
    compare, the detail line, its phase and the files holding its evidence."""
    plain: dict[str, Any] = {"name": check.name, "phase": check.phase}
    evidence = [str(path) for path in check.evidence(context)]
    try:
        reason = check.applies(context)
        if reason is not None:
            return plain | {"status": NOT_APPLICABLE, "value": None, "threshold": None,
                            "rule": "", "detail": reason, "evidence": evidence}  # fmt: skip
        result = check.run(context)
    except EvidenceError as error:
        return plain | {"status": FAIL, "value": None, "threshold": None, "rule": "",
                        "detail": str(error), "evidence": evidence}  # fmt: skip
    return plain | {
        "status": PASS if result.passed else FAIL,
        "value": result.value,
        "threshold": result.threshold,
        "rule": result.rule,
        "detail": result.detail,
        "evidence": list(result.evidence),
    }


def _row_order(records: list[dict]) -> list[dict]:
    """Failures first, then the checks that do not apply, then passes; by phase within each."""
    return sorted(records, key=lambda r: (ORDER.index(r["status"]), PHASES.index(r["phase"])))


def judge(checks: tuple[GoCheck, ...], context: Context, source: str = "gates.yaml") -> dict:
    """reports/go.json: the verdict, its reason, the counts, every check's record (failures
    first) and what a recorded verdict must still match to hold (plan and evidence hashes)."""
    records = _row_order([record(check, context) for check in checks])
    counts = {status: sum(r["status"] == status for r in records) for status in ORDER}
    failed = [r["name"] for r in records if r["status"] == FAIL]
    if not checks:
        verdict = UNCHECKED
        reason = f"{source} declares no checks: nothing was checked (declare them under `checks:`)"
    elif failed:
        verdict = NO_GO
        reason = f"{len(failed)} of {len(records)} checks failed: {', '.join(failed)}"
    elif counts[PASS]:
        verdict = GO
        reason = f"{counts[PASS]} of {len(records)} checks passed, none failed"
    else:
        verdict, reason = UNCHECKED, f"none of the {len(records)} checks of {source} applies here"
    return {
        "verdict": verdict,
        "reason": reason,
        "counts": {
            "failed": counts[FAIL],
            "passed": counts[PASS],
            "not_applicable": counts[NOT_APPLICABLE],
        },
        "failed": failed,
        "plan": {"source": source, "checks_sha256": checks_hash(checks)},
        "seeds": list(context.seeds),
        "checks": records,
        "evidence": evidence_hashes(checks, context),
    }


def newly_failed(reference: dict, variant: dict) -> list[str]:
    """The checks that fail in `variant` but not in `reference` (two reports/go.json contents):
    what a change broke, whatever the reference already failed.

    >>> ok = {"checks": [{"name": "a", "status": PASS}, {"name": "b", "status": FAIL}]}
    >>> newly_failed(ok, {"checks": [{"name": "a", "status": FAIL}, {"name": "b", "status": FAIL}]})
    ['a']
    """
    before = {r["name"] for r in reference["checks"] if r["status"] == FAIL}
    return [r["name"] for r in variant["checks"] if r["status"] == FAIL and r["name"] not in before]


def headline(details: dict) -> dict:
    """metrics/go.json: the verdict and the counts, narrow enough for `dvc exp show`.

    >>> headline({"verdict": "NO-GO", "counts": {"failed": 1, "passed": 3, "not_applicable": 2}})
    {'go': 'NO-GO', 'failed': 1, 'passed': 3, 'not_applicable': 2}
    """
    return {"go": details["verdict"], **details["counts"]}


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def folded(paths: list[str]) -> str:
    """The evidence files, one per seed folded into `seed<k>`.

    >>> folded(["models/seed0/head.json", "models/seed1/head.json", "metrics/scores.json"])
    'models/seed<k>/head.json, metrics/scores.json'
    """
    return ", ".join(dict.fromkeys(re.sub(r"seed\d+", "seed<k>", path) for path in paths))


def markdown(details: dict) -> str:
    """reports/go.md: the verdict and a table, failures first, each row naming its evidence."""
    counts = details["counts"]
    lines = [
        f"## Go/no-go: {details['verdict']}",
        "",
        f"{details['reason']}. Plan {details['plan']['source']} (checks sha256 "
        f"{details['plan']['checks_sha256'][:12]}); seeds {details['seeds']}; "
        f"{counts['failed']} failed, {counts['passed']} passed, "
        f"{counts['not_applicable']} not applicable.",
    ]
    if not details["checks"]:
        return "\n".join(lines) + "\n"
    lines += [
        "",
        "| status | check | phase | value | threshold | evidence | detail |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in details["checks"]:
        status = r["status"].upper() if r["status"] == FAIL else r["status"]
        threshold = f"{r['rule']} {_number(r['threshold'])}".strip()
        cells = [status, f"`{r['name']}`", r["phase"], _number(r["value"]), threshold,
                 f"`{folded(r['evidence'])}`", r["detail"]]  # fmt: skip
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def console_lines(details: dict) -> list[str]:
    """What `avgate go` prints: the verdict, then each failed check with its evidence."""
    lines = [f"go: {details['verdict']}: {details['reason']} (see {GO_REPORT})"]
    for r in details["checks"]:
        if r["status"] == FAIL:
            lines.append(f"go: FAIL {r['name']} ({r['phase']}): {r['detail']} "
                         f"[{folded(r['evidence'])}]")  # fmt: skip
    return lines


def refusal(checks: tuple[GoCheck, ...], context: Context, source: str = "gates.yaml") -> str:
    """Why the workspace under `context` may not go on with these declared checks ("" when its
    recorded verdict is a GO computed from these checks and the evidence as it is now)."""
    path = context.root / GO_DETAILS
    if not path.is_file():
        return f"{source} declares go/no-go checks and {GO_DETAILS} is missing: {RUN_GO}"
    recorded = json.loads(path.read_text())
    stale = f"{GO_DETAILS} is stale"
    if recorded.get("plan", {}).get("checks_sha256") != checks_hash(checks):
        return f"{stale}: the checks of {source} changed since it was written; {RUN_GO}"
    now, then = evidence_hashes(checks, context), recorded.get("evidence", {})
    changed = sorted(p for p in now.keys() | then.keys() if now.get(p) != then.get(p))
    if changed:
        return f"{stale}: its evidence changed since it was written ({changed}); {RUN_GO}"
    if recorded["verdict"] == GO:
        return ""
    failed = [r for r in recorded["checks"] if r["status"] == FAIL]
    if not failed:
        return f"{GO_DETAILS}: {recorded['verdict']}: {recorded['reason']}; not a Go"
    listed = "; ".join(f"{r['name']} ({r['detail']}) [{folded(r['evidence'])}]"
                       for r in failed)  # fmt: skip
    return f"{GO_DETAILS}: NO-GO, failed: {listed}"
