"""The contract every registered metric keeps (timm's manner: one test, every plugin): it declares
a direction, what it reads and the task kinds that compute it; it agrees with a scikit-learn or
scipy reference where one exists; a split it cannot define gives None, never NaN; a per-sample
score, when declared, averages to the metric."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    recall_score,
    roc_auc_score,
)

from avgate import metrics
from avgate.config import TASK_KINDS

NAMES = list(metrics.METRICS)


def _roc_auc(y, probs, classes):
    both = [i for i, c in enumerate(classes) if 0 < np.sum(y == c) < len(y)]
    return np.mean([roc_auc_score(y == classes[i], probs[:, i]) for i in both]) if both else None


def _minority(y, classes):
    return metrics.minority_class(y, classes)


# name -> reference(y_true, predicted labels, probabilities, classes) from scikit-learn or scipy
REFERENCES = {
    "accuracy": lambda y, p, probs, c: accuracy_score(y, p),
    "segment_accuracy": lambda y, p, probs, c: accuracy_score(y, p),
    "balanced_accuracy": lambda y, p, probs, c: balanced_accuracy_score(y, p),
    "macro_f1": lambda y, p, probs, c: f1_score(
        y, p, labels=sorted(set(y)), average="macro", zero_division=0
    ),
    "macro_roc_auc": lambda y, p, probs, c: _roc_auc(y, probs, c),
    "map": lambda y, p, probs, c: np.mean(
        [average_precision_score(y == k, probs[:, i]) for i, k in enumerate(c) if k in set(y)]
    ),
    "d_prime": lambda y, p, probs, c: math.sqrt(2) * norm.ppf(_roc_auc(y, probs, c)),
    "tail_recall": lambda y, p, probs, c: recall_score(y, p, pos_label=_minority(y, c)),
    "tail_f1": lambda y, p, probs, c: f1_score(y, p, pos_label=_minority(y, c)),
}


def split(seed: int, n: int, classes: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True labels with every class present, noisy probabilities, and their arg-max labels."""
    rng = np.random.default_rng(seed)
    y = np.array(classes + list(rng.choice(classes, n - len(classes))))
    probs = rng.dirichlet(np.ones(len(classes)), size=n)
    probs[np.arange(n), [classes.index(c) for c in y]] += rng.uniform(0, 1, n)
    probs /= probs.sum(axis=1, keepdims=True)
    return y, probs, np.asarray(classes)[probs.argmax(axis=1)]


def compute(name: str, y: np.ndarray, probs: np.ndarray, classes: list[str]):
    metric = metrics.METRICS[name]
    predicted = np.asarray(classes)[probs.argmax(axis=1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sklearn's notes on one-class splits
        return metric.fn(y, predicted if metric.needs == "labels" else probs, classes)


@pytest.mark.parametrize("name", NAMES)
def test_declares_its_direction_inputs_and_kinds(name):
    metric = metrics.METRICS[name]
    assert metric.name == name
    assert metric.direction in metrics.DIRECTIONS and metric.sign in (1, -1)
    assert metric.needs in metrics.NEEDS
    assert metric.kinds and set(metric.kinds) <= set(TASK_KINDS)
    assert all(name in metrics.names(kind) for kind in metric.kinds)
    assert Path(metric.declared_in).is_file()


@pytest.mark.parametrize("name", [n for n in NAMES if n in REFERENCES])
@pytest.mark.parametrize("classes", [["neg", "pos"], ["a", "b", "c", "d"]])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_its_reference(name, classes, seed):
    y, probs, predicted = split(seed, 60, classes)
    got = compute(name, y, probs, classes)
    if name.startswith("tail_") and len(classes) != 2:
        assert got is None  # defined for binary tasks only
    else:
        expected = REFERENCES[name](y, predicted, probs, classes)
        assert got == pytest.approx(float(expected), abs=1e-12)


UNDEFINABLE = {  # splits a metric may not be able to define: one class only, one row, 3 classes
    "one class": (np.array(["a", "a", "a"]), np.array([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]])),
    "one row": (np.array(["b"]), np.array([[0.4, 0.6]])),
    "minority absent": (np.array(["a", "a"]), np.array([[0.9, 0.1], [0.1, 0.9]])),
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", list(UNDEFINABLE))
def test_an_undefinable_split_gives_none_never_nan(name, case):
    y, probs = UNDEFINABLE[case]
    for classes in (["a", "b"], ["a", "b", "c"]):
        padded = np.pad(probs, ((0, 0), (0, len(classes) - 2)))
        value = compute(name, y, padded, classes)
        assert value is None or (isinstance(value, float) and math.isfinite(value)), value


@pytest.mark.parametrize("name", [n for n in NAMES if metrics.METRICS[n].per_sample])
def test_a_declared_per_sample_score_averages_to_the_metric(name):
    y, probs, predicted = split(3, 40, ["a", "b", "c"])
    per_sample = metrics.METRICS[name].per_sample(y, predicted)
    assert per_sample.shape == (40,)
    assert per_sample.mean() == pytest.approx(compute(name, y, probs, ["a", "b", "c"]))


def test_every_built_in_metric_has_a_reference():
    """A new metric gets its reference here when one exists (the other checks run regardless)."""
    assert set(REFERENCES) <= set(NAMES)
