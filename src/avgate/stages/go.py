"""`go`: the go/no-go checks gates.yaml declares (`checks:`), run on the files the pipeline wrote,
reported as one verdict.

Writes metrics/go.json (the verdict and the counts: the headline `dvc exp show` lists),
reports/go.json (each check's value, threshold, status, phase and evidence files, with the
hashes a later `avgate promote` compares to know the verdict still holds) and reports/go.md (the
table, failures first). A No-Go is a verdict, not a failed stage: the files are written and the
stage succeeds, so every experiment shows its verdict; `avgate promote` refuses to start on it.
"""

from __future__ import annotations

from avgate.config import Params
from avgate.files import atomic_path, write_json
from avgate.gating.go_verdict import GO_DETAILS, GO_METRICS, GO_REPORT, headline, judge, markdown
from avgate.gating.paths import SPEC
from avgate.gating.spec import load_spec
from avgate.go.base import Context
from avgate.profiles import recorded


def run(params: Params) -> dict:
    """Judge the declared checks on this workspace for the seeds of `train.seeds`; write the
    three files and return reports/go.json's content."""
    with recorded("go"):
        spec = load_spec(SPEC)
        details = judge(spec.checks, Context(tuple(params.train.seeds)), str(SPEC))
        write_json(GO_DETAILS, details)
        write_json(GO_METRICS, headline(details))
        with atomic_path(GO_REPORT) as tmp:
            tmp.write_text(markdown(details))
    return details
