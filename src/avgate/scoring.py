"""Scores of one split from its labels and raw logits: what `evaluate` reports on validation and
what a recorded look at the test split (the gate) reports on test, computed the same way.

Predictions tables hold index columns (`clip_id`, and `t` for per-second tasks), the true
`label` where the split is not sealed, and one raw-logit column per class (`logit_<class>`).

>>> table = predictions_table(pd.DataFrame({"clip_id": ["a", "b"]}), None,
...                           np.array([[2.0, 0.0], [0.0, 1.0]]), ["x", "y"])
>>> list(table.columns), logits_of(table)[1]
(['clip_id', 'logit_x', 'logit_y'], ['x', 'y'])
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from avgate import calibration, metrics, model_diagnostics

LOGIT_PREFIX = "logit_"


def predictions_table(
    index: pd.DataFrame, labels: np.ndarray | None, logits: np.ndarray, classes: list[str]
) -> pd.DataFrame:
    """Index columns, the true label (left out when `labels` is None), one raw-logit column per
    class."""
    table = index.reset_index(drop=True).copy()
    if labels is not None:
        table["label"] = labels
    for i, name in enumerate(classes):
        table[f"{LOGIT_PREFIX}{name}"] = logits[:, i]
    return table


def logits_of(table: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """The raw logits of a predictions table and the class of each column."""
    columns = [c for c in table.columns if c.startswith(LOGIT_PREFIX)]
    return table[columns].to_numpy(), [c.removeprefix(LOGIT_PREFIX) for c in columns]


def majority_class(train_label_counts: dict[str, int]) -> str:
    """The most frequent training label (ties: the first in sorted order).

    >>> majority_class({"b": 3, "a": 3, "c": 1})
    'a'
    """
    return max(sorted(train_label_counts), key=lambda label: train_label_counts[label])


def class_indices(labels: np.ndarray, classes: list[str]) -> np.ndarray:
    """Each label's position in `classes`."""
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[label] for label in labels])


def split_scores(
    kind: str,
    split: str,
    labels: np.ndarray,
    logits: np.ndarray,
    classes: list[str],
    majority: str,
    threshold: dict | None = None,
) -> dict:
    """Every metric of the task, ECE, the majority-class baseline, per-class scores, calibration
    before any scaling and probability clustering of one split, keyed by `<what>_<split>`.
    Labels are decided by `threshold` where tuned (`metrics.decide`), else by the arg-max.

    >>> out = split_scores("clip", "val", np.array(["x", "y"]), np.array([[2.0, 0], [0, 1.0]]),
    ...                    ["x", "y"], "x")
    >>> out["val"]["accuracy"], out["majority_baseline_val"]["accuracy"]
    (1.0, 0.5)
    """
    probs = calibration.softmax(logits)
    y = class_indices(labels, classes)
    majority_probs = np.zeros_like(probs)
    majority_probs[:, classes.index(majority)] = 1.0
    predicted = metrics.decide(probs, classes, threshold)
    scores = metrics.score(kind, labels, probs, classes, threshold)
    return {
        split: scores | {"ece": calibration.ece(probs, y)},
        f"majority_baseline_{split}": metrics.score(kind, labels, majority_probs, classes),
        f"per_class_{split}": metrics.per_class(labels, predicted, classes),
        f"calibration_{split}": {"before": calibration.scores(probs, y)},
        f"probability_clusters_{split}": model_diagnostics.probability_clusters(probs),
    }
