"""The gate's files, named once: the plan it reads, the ledger it appends to, what a look writes.

`stages/gate.py`, `stages/plan_check.py` and `gating/promote.py` read them from here.
"""

from __future__ import annotations

from pathlib import Path

from avgate.declare import PARAMS_FILE

SPEC = Path("gates.yaml")  # the pre-registered plan
PARAMS = Path(PARAMS_FILE)  # hashed into every look: the candidate's params
LEDGER = Path("gates/ledger.jsonl")  # every test look, hash-chained
GATE_METRICS = Path("metrics/gate.json")  # the whole result: criteria, intervals, the plan
GATE_HEADLINE = Path("metrics/gate_headline.json")  # stage: decision, and the mean delta
GATE_REPORT = Path("reports/gate.md")  # the result as a table for a pull request
GATE_PLOT = Path("plots/gate_deltas.csv")  # per-seed deltas with the interval
