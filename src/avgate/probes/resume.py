"""`resume`: a killed and resumed training run must end where an uninterrupted one does.

Seed `probe.seed`'s head is trained twice by the train stage's own code
(`avgate.finetune.none.train`, the one loop, each run with a checkpoint in a scratch folder, never
data/checkpoints/train): once for `probe.resume_epochs` epochs uninterrupted, and once killed
(`Kill` stops it before epoch k + 1, k = half the epochs, its checkpoint holding k) then
started again on the same checkpoint. Early stopping is off (patience = epochs) so that the kill
always lands. The result: both runs' validation metrics, the largest absolute difference between
their final weights (every tensor of the head's state) and the epoch the second run resumed from
(k when it really resumed; 0 when it started afresh).

>>> max_abs_diff({"w": torch.zeros(2)}, {"w": torch.tensor([0.0, -0.5])})
0.5
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import torch

from avgate.config import Params
from avgate.finetune.none import Data, train
from avgate.probes.base import Probe, ProbeOutput, register_probe, round_floats
from avgate.probes.head_mode import head_data, not_head_mode, scores, with_train
from avgate.training.callbacks import Callback
from avgate.training.result import Trained, finite_or_none


class Killed(Exception):
    """The stop `Kill` raises, as a kill of the process would stop the run."""


class Kill(Callback):
    """Stops a run before epoch `after` + 1 starts (its checkpoint then holds `after` epochs)."""

    def __init__(self, after: int) -> None:
        self.after = after

    def on_epoch_begin(self, epoch: int, batches: int) -> None:
        if epoch > self.after:
            raise Killed(f"killed before epoch {epoch}")


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The largest absolute difference between same-named tensors of two states."""
    if a.keys() != b.keys():
        raise ValueError(f"the states hold different tensors: {sorted(a)} != {sorted(b)}")
    return max((float((a[k].double() - b[k].double()).abs().max()) for k in a), default=0.0)


def val_metrics(trained: Trained, data: Data) -> dict[str, float | int | None]:
    """The run's kept epoch, its selection scores and the final model's on validation."""
    found = scores(trained.model, data.val, trained.description["classes"])
    return {
        "best_epoch": trained.result.best_epoch,
        "best_val_loss": finite_or_none(trained.result.best_val_loss),
        "best_selection_value": finite_or_none(trained.result.best_selection_value),
        "val_loss": found["loss"],
        "val_accuracy": found["accuracy"],
    }


def metric_diff(a: dict, b: dict) -> float | None:
    """The largest absolute difference between two metric sets; None when a metric is
    undefined (null) in one set only."""
    if a.keys() != b.keys() or any((a[k] is None) != (b[k] is None) for k in a):
        return None
    return max((abs(a[k] - b[k]) for k in a if a[k] is not None), default=0.0)


def significant(value: float | None) -> float | None:
    """`value` to 6 significant digits (a difference of 1e-9 must not read as 0)."""
    return None if value is None else float(f"{value:.6g}")


def resume(params: Params, data: Data) -> dict:
    """Train uninterrupted, then killed and resumed (see the module doc); the findings."""
    epochs, seed = params.probe.resume_epochs, params.probe.seed
    kill_after = epochs // 2
    run_params = with_train(params, max_epochs=epochs, patience=epochs)
    with tempfile.TemporaryDirectory() as scratch:
        whole = train(run_params, seed, data, Path(scratch) / "uninterrupted.pt")
        checkpoint = Path(scratch) / "killed.pt"
        with contextlib.suppress(Killed):
            train(run_params, seed, data, checkpoint, [Kill(kill_after)])
        resumed = train(run_params, seed, data, checkpoint)
    a, b = val_metrics(whole, data), val_metrics(resumed, data)
    weights = max_abs_diff(whole.model.state_dict(), resumed.model.state_dict())
    return {
        "epochs": epochs,
        "seed": seed,
        "killed_after_epoch": kill_after,
        "resumed_from_epoch": resumed.result.resumed_from_epoch,
        "uninterrupted": round_floats(a),
        "resumed": round_floats(b),
        "max_abs_weight_diff": significant(weights),
        "max_abs_metric_diff": significant(metric_diff(a, b)),
    }


@register_probe("resume")
class Resume(Probe):
    """The killed-and-resumed run against the uninterrupted one (see the module doc)."""

    def applies(self, params: Params) -> str | None:
        return not_head_mode(params)

    def run(self, params: Params) -> ProbeOutput:
        result = resume(params, head_data(params))
        line = (
            f"killed after epoch {result['killed_after_epoch']} of {result['epochs']}, resumed "
            f"from {result['resumed_from_epoch']}: largest weight difference "
            f"{result['max_abs_weight_diff']:.3g}, metric difference "
            f"{result['max_abs_metric_diff']:.3g}"
        )
        return ProbeOutput(result, line=line)
