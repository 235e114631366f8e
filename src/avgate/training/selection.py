"""Which epoch a run keeps: the selection metrics, each declared once with its sign.

A signed value is higher for a better epoch whatever the metric, so the loop compares one way.

>>> signed("val_loss", {"val_loss": 0.5}), signed("val_accuracy", {"val_accuracy": 0.75})
(-0.5, 0.75)
>>> unsigned("val_loss", -0.5)
0.5
"""

from __future__ import annotations

from collections.abc import Mapping

SELECTION_METRICS: dict[str, float] = {"val_loss": -1.0, "val_accuracy": 1.0}  # +1 maximise


def signed(metric: str, logs: Mapping[str, float]) -> float:
    """The epoch's `metric` from its `logs`, signed so that higher is better."""
    return SELECTION_METRICS[metric] * logs[metric]


def unsigned(metric: str, value: float) -> float:
    """A signed value of `metric` back in the metric's own terms."""
    return SELECTION_METRICS[metric] * value
