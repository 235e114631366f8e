"""The `train` stage: every seed of `train.seeds` trained, then evaluated (validation scored,
test logits stored sealed), then all seeds summarised, in one process.

One process instead of a DVC stage per seed and step: a head-only `dvc exp run` would otherwise
pay Python, torch and DVC start-up eight times for seconds of work (bench/pipeline_times.py).
A killed run resumes each unfinished seed from its checkpoint (data/checkpoints/).
"""

from __future__ import annotations

from collections.abc import Callable

from avgate.config import Params
from avgate.metrics import check_primary
from avgate.profiles import recorded
from avgate.stages.train import evaluate, summarize, train_seed
from avgate.training import selection


def run(params: Params, say: Callable[[str], None] = print) -> dict:
    """Train and evaluate each seed, then write metrics/, plots/ and reports/run_card.json;
    `say` gets one line per finished seed. Returns the summary (metrics/scores.json)."""
    primary = params.evaluate.primary_metric
    check_primary(params.task.kind, primary)  # before any seed trains, not after the first
    selection.check(params.train.selection_metric, params.task.kind, "train.selection_metric")
    for seed in params.train.seeds:
        trained = train_seed.run(params, seed)
        scores = evaluate.run(params, seed)
        say(
            f"seed {seed}: best epoch {trained['best_epoch']} of {trained['epochs_run']}; val "
            f"{primary} {scores['val'][primary]:.4f} (majority class "
            f"{scores['majority_baseline_val'][primary]:.4f}); {_test_line(scores, primary)}"
        )
    with recorded("summarize"):
        return summarize.run(params)


def _test_line(scores: dict, primary: str) -> str:
    if "test" not in scores:
        return "test sealed"
    return f"test OPENED {primary} {scores['test'][primary]:.4f} (recorded in the ledger)"
