"""The train stage's result files that other commands read: the gate, `avgate report`, promote.

>>> SCORES.as_posix()
'metrics/scores.json'
"""

from pathlib import Path

EVAL_METRICS = Path("metrics/eval.json")  # the headline `dvc exp show` lists (`metrics:`)
SCORES = Path("metrics/scores.json")  # every metric, per seed: read by the gate and reports
DIAGNOSTICS = Path("metrics/diagnostics.json")
EFFICIENCY = Path("metrics/efficiency.json")
RUN_CARD = Path("reports/run_card.json")
