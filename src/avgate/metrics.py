"""Score registry: each metric declares its name, its direction (its own sign: higher or lower
is better), what it reads (the labels or the scores), the task kinds that compute it, and its
function of the truth and the predictions. The registry is the only list of names:
`evaluate.primary_metric` is checked against it (`check_primary`), the gate takes the primary
metric's direction from it, and `score` computes every metric of a task kind.

For `task.kind: event` the scored units are seconds: `segment_accuracy` is the AVE benchmark's
segment-level accuracy (share of seconds whose label, background included, is right). For
`task.kind: clip` the units are clips. Label metrics see the arg-max class of each row; score
metrics (`macro_roc_auc`, `map`, `d_prime`) see the probabilities. A metric that a split cannot
define (no class with both positives and negatives, no minority class in the split) is None,
never NaN and never a made-up 0.

`evaluate.primary_metric` is checked here, by the stages that score it (`check_primary`), not
when params.yaml is read: `avgate.config` does not import this module, so no stage depends on
the metrics' code but those that compute them. Reading the registry stays light (the gate's
plan check, `avgate promote`): scikit-learn, scipy and pandas are imported inside the functions
that use them.

>>> probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
>>> scores = score("event", ["a", "background", "background"], probs, ["a", "background"])
>>> scores["segment_accuracy"], scores["macro_roc_auc"]
(0.6666666666666666, 1.0)
>>> METRICS["segment_accuracy"].direction, METRICS["segment_accuracy"].sign
('maximize', 1)
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from avgate.declare import fail

if TYPE_CHECKING:
    import pandas as pd

PROB_PREFIX = "prob_"
THRESHOLD = "decision_threshold"  # the tuned threshold's key in head.json and metrics.json
AUC_CLIP = 1e-6
MAXIMIZE, MINIMIZE = "maximize", "minimize"
DIRECTIONS = (MAXIMIZE, MINIMIZE)
NEEDS = ("labels", "scores")  # the arg-max class of each row, or the (n, k) probabilities

MetricFn = Callable[[np.ndarray, np.ndarray, list[str]], float | None]
PerSampleFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Metric:
    """One scalar score as the registry holds it.

    `direction` is the metric's own sign ("maximize": higher is better), stated here once and
    read by the gate; `needs` says what `fn` gets as its second argument: "labels" (the arg-max
    class of each row) or "scores" (the (n, k) probabilities, columns aligned with `classes`);
    `kinds` are the task kinds whose evaluation computes it. `fn` returns None where the split
    cannot define the metric; each function's docstring says when. `per_sample`, when set, maps
    (true labels, predicted labels) to one score per row whose mean is the metric: the gate's
    bootstrap interval and `avgate plan check` resample those rows.
    """

    name: str
    direction: str
    needs: str
    kinds: tuple[str, ...]
    fn: MetricFn
    per_sample: PerSampleFn | None = None

    @property
    def sign(self) -> int:
        """+1 when higher is better, -1 when lower is (scikit-learn's scorer `_sign`)."""
        return 1 if self.direction == MAXIMIZE else -1

    @property
    def declared_in(self) -> str:
        """The file that registered the metric (relative to the working directory when inside)."""
        path = Path(inspect.getfile(self.fn)).resolve()
        try:
            return str(path.relative_to(Path.cwd().resolve()))
        except ValueError:
            return str(path)


METRICS: dict[str, Metric] = {}


def register(
    name: str,
    direction: str,
    needs: str,
    kinds: tuple[str, ...],
    per_sample: PerSampleFn | None = None,
) -> Callable[[MetricFn], MetricFn]:
    """Function decorator: register `fn(y_true, labels_or_scores, classes) -> float | None` as
    the metric `name` (decorators stack: one function may serve two names).

    >>> @register("share_of_a", MAXIMIZE, "labels", ("clip",))
    ... def share_of_a(y_true, y_pred, classes):
    ...     return float(np.mean(y_pred == "a"))
    >>> "share_of_a" in names("clip"), "share_of_a" in names("event")
    (True, False)
    >>> del METRICS["share_of_a"]
    """
    if direction not in DIRECTIONS:
        raise ValueError(
            f"metric {name!r}: direction must be one of {DIRECTIONS}, got {direction!r}"
        )
    if needs not in NEEDS:
        raise ValueError(f"metric {name!r}: needs must be one of {NEEDS}, got {needs!r}")
    if not kinds or isinstance(kinds, str):
        raise ValueError(f"metric {name!r}: kinds must be a non-empty tuple of task kinds")

    def add(fn: MetricFn) -> MetricFn:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is registered twice")
        METRICS[name] = Metric(name, direction, needs, tuple(kinds), fn, per_sample)
        return fn

    return add


def names(kind: str) -> tuple[str, ...]:
    """The metrics a task kind computes, in registration order.

    >>> names("event")[:2]
    ('segment_accuracy', 'balanced_accuracy')
    """
    return tuple(name for name, metric in METRICS.items() if kind in metric.kinds)


def check_primary(kind: str, primary: str) -> None:
    """Refuse a primary metric that the task kind does not compute, listing those it does.

    >>> check_primary("clip", "segment_accuracy")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    avgate.declare.ConfigError: params.yaml: evaluate.primary_metric must be one of ['accuracy', ...
    """
    if primary not in names(kind):
        fail(
            "evaluate.primary_metric",
            f"must be one of {list(names(kind))} for task.kind {kind!r}",
            primary,
        )


def _correct(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """1.0 where the predicted label is right, else 0.0: accuracy's per-sample score."""
    return (np.asarray(y_true) == np.asarray(y_pred)).astype(np.float64)


@register("segment_accuracy", MAXIMIZE, "labels", ("event",), per_sample=_correct)
@register("accuracy", MAXIMIZE, "labels", ("clip",), per_sample=_correct)
def _accuracy(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> float:
    """Share of rows whose predicted label is right; always defined."""
    return float(np.mean(_correct(y_true, y_pred)))


@register("balanced_accuracy", MAXIMIZE, "labels", ("event", "clip"))
def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> float:
    """Mean recall over the classes present in y_true; always defined."""
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y_true, y_pred))


@register("macro_f1", MAXIMIZE, "labels", ("event", "clip"))
def _macro_f1(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> float:
    """Mean F1 over the classes present in y_true (a class never predicted scores 0)."""
    from sklearn.metrics import f1_score

    present = sorted(set(y_true))
    return float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))


def _one_vs_rest(y_true: np.ndarray, classes: list[str], both_sides: bool) -> list[int]:
    """Column indices of the classes present in y_true (and, if both_sides, absent from a row)."""
    indices = []
    for i, name in enumerate(classes):
        positives = int(np.sum(y_true == name))
        if positives and (not both_sides or positives < len(y_true)):
            indices.append(i)
    return indices


@register("macro_roc_auc", MAXIMIZE, "scores", ("event", "clip"))
def _macro_roc_auc(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> float | None:
    """One-vs-rest ROC AUC averaged over the classes that have both positive and negative rows.

    None when no class qualifies (a single class in the split): AUC needs both.

    >>> _macro_roc_auc(np.array(["a", "b"]), np.array([[0.8, 0.2], [0.3, 0.7]]), ["a", "b"])
    1.0
    """
    from sklearn.metrics import roc_auc_score

    indices = _one_vs_rest(y_true, classes, both_sides=True)
    if not indices:
        return None
    return float(np.mean([roc_auc_score(y_true == classes[i], probs[:, i]) for i in indices]))


@register("map", MAXIMIZE, "scores", ("event", "clip"))
def _map(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> float | None:
    """Mean average precision over the classes present in y_true.

    A class absent from y_true has no precision-recall curve and is skipped; None only when no
    class of `classes` occurs in y_true.
    """
    from sklearn.metrics import average_precision_score

    indices = _one_vs_rest(y_true, classes, both_sides=False)
    if not indices:
        return None
    return float(
        np.mean([average_precision_score(y_true == classes[i], probs[:, i]) for i in indices])
    )


@register("d_prime", MAXIMIZE, "scores", ("event", "clip"))
def _d_prime(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> float | None:
    """AudioSet's d' = sqrt(2) * Phi^-1(macro ROC AUC); None when the AUC is None.

    The AUC is clipped to [1e-6, 1 - 1e-6] so a perfect (or perfectly wrong) ranking stays finite.

    >>> round(_d_prime(np.array(["a", "b"]), np.array([[0.8, 0.2], [0.3, 0.7]]), ["a", "b"]), 3)
    6.722
    """
    from scipy.stats import norm

    auc = _macro_roc_auc(y_true, probs, classes)
    if auc is None:
        return None
    return float(np.sqrt(2.0) * norm.ppf(np.clip(auc, AUC_CLIP, 1.0 - AUC_CLIP)))


def minority_class(y_true: np.ndarray, classes: list[str]) -> str:
    """The class of a binary task with fewer true rows (ties: the later class).

    >>> minority_class(np.array(["neg", "neg", "pos"]), ["neg", "pos"])
    'pos'
    """
    first, second = classes
    return first if np.sum(y_true == first) < np.sum(y_true == second) else second


def _tail(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], stat: str) -> float | None:
    """One per-class statistic of the minority class; None when len(classes) != 2."""
    if len(classes) != 2:
        return None
    return per_class(y_true, y_pred, classes)[minority_class(y_true, classes)][stat]


@register("tail_recall", MAXIMIZE, "labels", ("clip",))
def _tail_recall(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> float | None:
    """Recall of the minority class of a binary task.

    None when the task is not binary, or when the minority class has no true row in the split.
    """
    return _tail(y_true, y_pred, classes, "recall")


@register("tail_f1", MAXIMIZE, "labels", ("clip",))
def _tail_f1(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> float | None:
    """F1 of the minority class of a binary task.

    None when the task is not binary, or when the minority class is neither true nor predicted.
    """
    return _tail(y_true, y_pred, classes, "f1")


def _check_probs(probs: np.ndarray, n_rows: int, n_classes: int) -> None:
    if probs.shape != (n_rows, n_classes):
        raise ValueError(
            f"probabilities have shape {probs.shape}; expected ({n_rows}, {n_classes}): "
            "one row per true label, one column per class"
        )
    if not np.isfinite(probs).all():
        raise ValueError("probabilities contain NaN or infinity")


def score(
    kind: str,
    y_true: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    threshold: dict | None = None,
) -> dict[str, float | None]:
    """Every metric of the task kind, from the true labels and (n, k) class probabilities.

    Label metrics use the class `decide` picks for each row: the arg-max (ties: the first class
    in `classes`), or the tuned `threshold` of a binary task.

    >>> probs = np.array([[0.5, 0.5], [0.2, 0.8], [1.0, 0.0], [0.0, 1.0]])
    >>> scores = score("clip", ["a", "b", "b", "b"], probs, ["a", "b"])
    >>> scores["accuracy"], scores["tail_recall"], round(scores["macro_roc_auc"], 3)
    (0.75, 1.0, 0.667)
    """
    return {name: value(name, y_true, probs, classes, threshold) for name in names(kind)}


def value(
    name: str,
    y_true: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    threshold: dict | None = None,
) -> float | None:
    """The registered metric `name` of the true labels and (n, k) probabilities, as `score`
    computes it (label metrics see the classes `decide` picks)."""
    y_true, probs, classes = np.asarray(y_true), np.asarray(probs), list(classes)
    _check_probs(probs, len(y_true), len(classes))
    metric = METRICS[name]
    seen = decide(probs, classes, threshold) if metric.needs == "labels" else probs
    with warnings.catch_warnings():  # sklearn's notes on a split with few classes are expected
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found in 'y_true'")
        return metric.fn(y_true, seen, classes)


def decide(probs: np.ndarray, classes: Sequence[str], threshold: dict | None = None) -> np.ndarray:
    """The predicted class of each row: the arg-max of `probs` (ties: the first class), or, for
    a binary task with a tuned `threshold` `{"class": c, "value": t}` (`evaluate.threshold:
    tuned`, stored in head.json), `c` where its probability is at least `t`, else the other.

    >>> probs = np.array([[0.7, 0.3], [0.9, 0.1]])
    >>> tuned = {"class": "b", "value": 0.2}
    >>> decide(probs, ["a", "b"]).tolist(), decide(probs, ["a", "b"], tuned).tolist()
    (['a', 'a'], ['b', 'a'])
    """
    names = np.asarray(classes)
    if threshold is None:
        return names[np.argmax(probs, axis=1)]
    column = list(classes).index(threshold["class"])
    return np.where(probs[:, column] >= threshold["value"], names[column], names[1 - column])


def tune_threshold(
    name: str, y_true: Sequence[str], probs: np.ndarray, classes: Sequence[str], positive: str
) -> dict:
    """The `decide` threshold on `positive`'s probability that makes the label metric `name`
    best (in its registered direction) on these rows, e.g. validation; ties go to the threshold
    nearest 0.5 (arg-max), then to the lower one. The candidates are 0.5 and the midpoints
    between consecutive distinct probabilities (with 0 and 1 as ends): every decision these rows
    allow. A score tuned on the rows it is then measured on is optimistic.

    >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.4, 0.6]])
    >>> tune_threshold("accuracy", ["a", "a", "b", "b"], probs, ["a", "b"], "b")
    {'class': 'b', 'value': 0.25}
    """
    if METRICS[name].needs != "labels":
        raise ValueError(f"metric {name!r} reads the probabilities: no threshold changes it")
    column = np.asarray(probs)[:, list(classes).index(positive)]
    edges = np.unique(np.concatenate([[0.0, 1.0], column]))
    candidates = sorted(
        {0.5, *((edges[:-1] + edges[1:]) / 2).tolist()}, key=lambda t: (abs(t - 0.5), t)
    )
    sign = METRICS[name].sign
    best, best_value = 0.5, -np.inf
    for t in candidates:
        got = value(name, y_true, probs, classes, {"class": positive, "value": t})
        if got is not None and sign * got > best_value:
            best, best_value = t, sign * got
    return {"class": positive, "value": float(best)}


def _none_if_nan(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def per_class(
    y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]
) -> dict[str, dict[str, float | None]]:
    """Precision, recall, F1 and support of each class.

    Undefined values are None, not 0: precision when the class is never predicted, recall when it
    has no true row (support 0), F1 when both. A class with true rows that is never predicted
    has recall 0 and F1 0; a class predicted but absent from y_true has precision 0 and F1 0.

    >>> per_class(["a", "a", "b"], ["a", "b", "b"], ["a", "b", "c"])["c"]
    {'precision': None, 'recall': None, 'f1': None, 'support': 0}
    """
    from sklearn.metrics import precision_recall_fscore_support

    classes = list(classes)
    precision, recall, f1, support = precision_recall_fscore_support(
        np.asarray(y_true), np.asarray(y_pred), labels=classes, zero_division=np.nan
    )
    return {
        name: {
            "precision": _none_if_nan(precision[i]),
            "recall": _none_if_nan(recall[i]),
            "f1": _none_if_nan(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    }


def _check_one_label_per_key(frame: pd.DataFrame, key: str) -> None:
    labels_per_key = frame.groupby(key, sort=False)["label"].nunique()
    conflicting = labels_per_key[labels_per_key > 1].index.tolist()
    if conflicting:
        raise ValueError(
            f"rows with the same {key!r} carry different labels; {key!r} values: {conflicting[:5]}"
        )


def aggregate_windows(frame: pd.DataFrame, key: str, how: str) -> pd.DataFrame:
    """Pool the rows (windows, clips, seconds) of one event into one row per `key` value.

    `frame` has the column `key`, `label` and one `prob_<class>` column per class (other columns
    are dropped). "mean" averages the probabilities; "max" takes each class's largest probability
    and renormalises the row to sum 1. Rows come out in the order their key first appears.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"clip_id": ["x", "x", "y"], "label": ["a", "a", "b"],
    ...                       "prob_a": [0.8, 0.2, 0.1], "prob_b": [0.2, 0.8, 0.9]})
    >>> aggregate_windows(frame, "clip_id", "max")
      clip_id label  prob_a  prob_b
    0       x     a     0.5     0.5
    1       y     b     0.1     0.9
    """
    import pandas as pd

    if how not in ("mean", "max"):
        raise ValueError(f"how must be 'mean' or 'max', not {how!r}")
    _check_one_label_per_key(frame, key)
    prob_columns = [c for c in frame.columns if c.startswith(PROB_PREFIX)]
    groups = frame.groupby(key, sort=False)
    probs = groups[prob_columns].agg(how)
    if how == "max":
        probs = probs.div(probs.sum(axis=1), axis=0)
    pooled = pd.concat([groups["label"].first(), probs], axis=1)
    return pooled.reset_index()[[key, "label", *prob_columns]]
