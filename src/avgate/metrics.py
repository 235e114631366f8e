"""Score registry: name -> (direction, function of true and predicted labels).

For `task.kind: event` the scored units are seconds: `segment_accuracy` is the AVE benchmark's
segment-level accuracy (share of seconds whose label, background included, is right). For
`task.kind: clip` the units are clips.

>>> scores = score("event", ["a", "background", "a"], ["a", "a", "a"], ["a", "background"])
>>> scores["segment_accuracy"]
0.6666666666666666
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from avgate.config import ConfigError


@dataclass(frozen=True)
class Metric:
    name: str
    maximize: bool
    fn: Callable[[np.ndarray, np.ndarray, Sequence[str]], float]


def _accuracy(y_true, y_pred, classes) -> float:
    return float(accuracy_score(y_true, y_pred))


def _balanced_accuracy(y_true, y_pred, classes) -> float:
    return float(balanced_accuracy_score(y_true, y_pred))


def _macro_f1(y_true, y_pred, classes) -> float:
    present = sorted(set(y_true))
    return float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", True, _accuracy),
        Metric("segment_accuracy", True, _accuracy),
        Metric("balanced_accuracy", True, _balanced_accuracy),
        Metric("macro_f1", True, _macro_f1),
    )
}

METRICS_BY_KIND: dict[str, tuple[str, ...]] = {
    "event": ("segment_accuracy", "balanced_accuracy", "macro_f1"),
    "clip": ("accuracy", "balanced_accuracy", "macro_f1"),
}


def check_primary(kind: str, primary: str) -> None:
    """Refuse a primary metric that the task kind does not compute."""
    if primary not in METRICS_BY_KIND[kind]:
        raise ConfigError(
            f"params.yaml: evaluate.primary_metric {primary!r} is not computed for task.kind "
            f"{kind!r}; choose one of {list(METRICS_BY_KIND[kind])}"
        )


def score(
    kind: str, y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]
) -> dict[str, float]:
    """Every metric of the task kind; macro F1 averages over the classes present in y_true."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    with warnings.catch_warnings():  # predicting a class absent from y_true is expected here
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return {name: METRICS[name].fn(y_true, y_pred, classes) for name in METRICS_BY_KIND[kind]}
