"""Which epoch a run keeps: the loop's own scores (`val_loss`, `val_accuracy`, each declared once
with its sign) or any metric `avgate.metrics` registers, whose sign is the registry's.

A registered metric `<name>` is logged on validation as `val_<name>` by a task given its scorer
(`scorer`). A signed value is higher for a better epoch whatever the metric, so the loop compares
one way; an epoch where the metric is undefined (NaN) is never kept.

>>> signed("val_loss", {"val_loss": 0.5}), signed("val_accuracy", {"val_accuracy": 0.75})
(-0.5, 0.75)
>>> unsigned("val_loss", -0.5), log_key("tail_f1"), signed("tail_f1", {"val_tail_f1": 0.25})
(0.5, 'val_tail_f1', 0.25)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from avgate import metrics
from avgate.declare import fail

LOOP_METRICS: dict[str, int] = {"val_loss": -1, "val_accuracy": 1}  # +1: higher is better

Scorer = Callable[[torch.Tensor, torch.Tensor], float]  # (val logits, val class indices)


def known(metric: str) -> bool:
    """True for a loop score or a registered metric (of any task kind)."""
    return metric in LOOP_METRICS or metric in metrics.METRICS


def choices(kind: str) -> list[str]:
    """The selection metrics of a task kind: the loop's, then the registry's."""
    return [*LOOP_METRICS, *metrics.names(kind)]


def check(metric: str, kind: str, key: str) -> None:
    """Refuse (naming the params `key`) a selection metric the task kind does not compute."""
    if metric not in choices(kind):
        fail(key, f"must be one of {choices(kind)} for task.kind {kind!r}", metric)


def log_key(metric: str) -> str:
    """The key of `metric` in an epoch's logs: `val_<name>` for a registered metric."""
    return metric if metric in LOOP_METRICS else f"val_{metric}"


def sign(metric: str) -> int:
    """+1 when higher is better: the loop's own sign, or the registry's."""
    return LOOP_METRICS[metric] if metric in LOOP_METRICS else metrics.METRICS[metric].sign


def signed(metric: str, logs: Mapping[str, float]) -> float:
    """The epoch's `metric` from its `logs`, signed so that higher is better."""
    return sign(metric) * logs[log_key(metric)]


def unsigned(metric: str, value: float) -> float:
    """A signed value of `metric` back in the metric's own terms."""
    return sign(metric) * value


def scorer(metric: str, classes: list[str]) -> Scorer:
    """The registered `metric` of validation logits against class indices (NaN where the
    metric is undefined), as `metrics.score` computes it from the softmax probabilities.

    >>> f1 = scorer("macro_f1", ["a", "b"])
    >>> f1(torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1, 1]))
    0.6666666666666666
    """

    def score(logits: torch.Tensor, y: torch.Tensor) -> float:
        probs = torch.softmax(logits.double(), dim=1).numpy()
        value = metrics.value(metric, np.asarray(classes)[y.numpy()], probs, classes)
        return float("nan") if value is None else value

    return score
