"""The train and probe stages' result files that other commands read: the gate, `avgate report`,
promote, the go/no-go checks. Light on purpose (pathlib only): reading a path imports nothing else.

>>> SCORES.as_posix(), (predictions_dir(2) / SEED_SCORES).as_posix()
('metrics/scores.json', 'predictions/seed2/metrics.json')
"""

from pathlib import Path

EVAL_METRICS = Path("metrics/eval.json")  # the headline `dvc exp show` lists (`metrics:`)
SCORES = Path("metrics/scores.json")  # every metric, per seed: read by the gate and reports
DIAGNOSTICS = Path("metrics/diagnostics.json")
EFFICIENCY = Path("metrics/efficiency.json")
RUN_CARD = Path("reports/run_card.json")
DESCRIPTION = "head.json"  # in a seed's model folder: what was trained, how, and its checks
SEED_SCORES = "metrics.json"  # in a seed's predictions folder: its validation scores
PROBE_DIR = Path("reports/probe")  # the probe stage's evidence, one JSON file per probe
APPLIES = "applies"  # every probe file's key: false with a `reason` when it does not apply


def model_dir(seed: int) -> Path:
    """A seed's trained model: the weights and DESCRIPTION (JSON)."""
    return Path("models") / f"seed{seed}"


def predictions_dir(seed: int) -> Path:
    """A seed's predictions ({val,test}.parquet; test without labels) and validation scores
    (SEED_SCORES)."""
    return Path("predictions") / f"seed{seed}"


def probe_path(name: str) -> Path:
    """The file holding probe `name`'s evidence.

    >>> probe_path("overfit").as_posix()
    'reports/probe/overfit.json'
    """
    return PROBE_DIR / f"{name}.json"
