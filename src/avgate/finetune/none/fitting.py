"""Training of one seed's head on the fused embeddings, through the one loop.

The stage hands over the train and val rows (features, labels, clip index) and the encoders'
column blocks; the head is standardised with the training rows, trained with Adam on shuffled
mini-batches and early-stopped on `train.selection_metric`. A killed run resumes from its
checkpoint when the params, the seed, the classes and the exact tensors are unchanged.

The tail recipe (`train.sampler`, `train.oversample`, `train.label_smoothing`, `train.mixup`,
`train.feature_noise`) becomes the task's `Recipe`; at its defaults the task trains as plain
shuffled mini-batches do. With `evaluate.threshold: tuned` the decision threshold of a binary
task is tuned on validation after training and stored in head.json (`decision_threshold`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch

from avgate import calibration, metrics
from avgate.config import Params, TrainParams
from avgate.declare import fail
from avgate.finetune.none.head import build_head, predict
from avgate.models.fused import Block
from avgate.training import selection
from avgate.training.callbacks import Callback
from avgate.training.checkpoint import Checkpointing, fingerprint
from avgate.training.determinism import pin_determinism
from avgate.training.finite import Rows
from avgate.training.labels import classes_of, encode
from avgate.training.loop import FitConfig, fit
from avgate.training.recipe import Recipe, class_draw_weights
from avgate.training.result import Trained, finite_or_none
from avgate.training.tensors import Split, TensorClassification


class Examples(Protocol):
    """One split's model inputs: features, string labels and the (clip_id[, t]) index."""

    @property
    def x(self) -> np.ndarray: ...

    @property
    def labels(self) -> np.ndarray: ...

    @property
    def index(self) -> pd.DataFrame: ...


@dataclass(frozen=True)
class Data:
    """What the stage reads for this mode: the train and val rows and the column blocks."""

    train: Examples
    val: Examples
    blocks: list[Block]


def row_names(data: Examples) -> list[str]:
    """A name for each row of `data`: its clip id, with `@<t>s` for a second of an event task."""
    clips = data.index["clip_id"].astype(str)
    if "t" in data.index:
        return (clips + "@" + data.index["t"].astype(str) + "s").tolist()
    return clips.tolist()


def train(
    params: Params, seed: int, data: Data, checkpoint: Path, callbacks: Sequence[Callback] = ()
) -> Trained:
    """Train one seed's head (see the module doc); `checkpoint` is the file a killed run
    resumes from."""
    pin_determinism(seed, params.train.num_threads)
    p = params.train
    classes = classes_of(data.train.labels)
    x, y = torch.from_numpy(data.train.x), encode(data.train.labels, classes, "train")
    xv, yv = torch.from_numpy(data.val.x), encode(data.val.labels, classes, "val")
    model, architecture = build_head(p, data.blocks, int(x.shape[1]), len(classes))
    model.set_standardisation(x)
    check_selection(params, data.val.labels, classes)
    check_threshold(params, classes)
    task = TensorClassification(
        model,
        Split(x, y, Rows("train", row_names(data.train))),
        Split(xv, yv, Rows("val", row_names(data.val))),
        p.lr,
        p.weight_decay,
        p.batch_size,
        recipe=recipe(p, y, classes, model.scale),
        scores=val_scores(p.selection_metric, classes),
    )
    config = FitConfig(p.max_epochs, seed, p.patience, p.selection_metric)
    facts = [asdict(p), asdict(params.task), seed, classes, architecture]
    key = fingerprint(facts, [x, y, xv, yv])
    result = fit(task, config, callbacks, Checkpointing(checkpoint, key))
    description = {
        "kind": params.task.kind,
        "classes": classes,
        "encoders": params.embed.encoders,
        "in_dim": int(x.shape[1]),
        "hidden": p.hidden,
        "dropout": p.dropout,
        "architecture": architecture,
        "gates": model.fusion.gates() if hasattr(model, "fusion") and p.fusion == "gated" else None,
        "seed": seed,
        "train_label_counts": dict(sorted(Counter(data.train.labels.tolist()).items())),
        "best_epoch": result.best_epoch,
        "best_val_loss": finite_or_none(result.best_val_loss),
        "selection_metric": p.selection_metric,
        "best_selection_value": finite_or_none(result.best_selection_value),
        "epochs_run": result.epochs_run,
        "trainable_parameters": sum(t.numel() for t in model.parameters() if t.requires_grad),
        "total_parameters": sum(t.numel() for t in model.parameters()),
    }
    if params.evaluate.threshold == "tuned":
        description["decision_threshold"] = tuned_threshold(params, model, data, classes)
    return Trained(model, description, result)


def check_selection(params: Params, val_labels: np.ndarray, classes: list[str]) -> None:
    """Refuse a `train.selection_metric` the task kind does not compute, or one undefined on
    these validation labels even for perfect predictions (it could never pick an epoch)."""
    metric = params.train.selection_metric
    selection.check(metric, params.task.kind, "train.selection_metric")
    if metric in selection.LOOP_METRICS:
        return
    perfect = np.eye(len(classes))[[classes.index(label) for label in val_labels]]
    if metrics.value(metric, val_labels, perfect, classes) is None:
        fail(
            "train.selection_metric",
            f"is undefined on the validation labels: {_doc(metrics.METRICS[metric])}",
            metric,
        )


def _doc(metric: metrics.Metric) -> str:
    """A metric's docstring on one line (it says when the metric is undefined)."""
    return " ".join((metric.fn.__doc__ or metric.name).split())


def val_scores(metric: str, classes: list[str]) -> dict[str, selection.Scorer]:
    """The registered selection metric the task scores on validation each epoch (none for the
    loop's own `val_loss` and `val_accuracy`)."""
    if metric in selection.LOOP_METRICS:
        return {}
    return {selection.log_key(metric): selection.scorer(metric, classes)}


def recipe(p: TrainParams, y: torch.Tensor, classes: list[str], scale: torch.Tensor) -> Recipe:
    """The task's recipe from the tail params; `scale` is the head's per-column standardisation
    (feature noise is given in standardised units)."""
    return Recipe(
        row_weights=row_weights(p, y, classes),
        label_smoothing=p.label_smoothing,
        mixup=p.mixup,
        noise=p.feature_noise * scale if p.feature_noise > 0 else None,
    )


def row_weights(p: TrainParams, y: torch.Tensor, classes: list[str]) -> torch.Tensor | None:
    """Each training row's draw weight under `train.sampler` and `train.oversample`; None when
    every row is drawn once (shuffle, nothing oversampled)."""
    boosted = oversampled(p.oversample.classes, classes)
    if p.sampler == "shuffle" and not boosted:
        return None
    balanced = p.sampler == "balanced"
    return class_draw_weights(y, len(classes), balanced, boosted, p.oversample.share)


def oversampled(named: list[str], classes: list[str]) -> list[int]:
    """The class indices of `train.oversample.classes`; each must be a training class, and at
    least one training class must be left out."""
    unknown = [name for name in named if name not in classes]
    if unknown:
        fail("train.oversample.classes", f"must name training classes {classes}", unknown)
    if named and len(named) == len(classes):
        fail("train.oversample.classes", "must leave at least one training class out", named)
    return [classes.index(name) for name in named]


def check_threshold(params: Params, classes: list[str]) -> None:
    """Refuse `evaluate.threshold: tuned` unless the task is binary and the primary metric
    scores labels (a threshold changes nothing else)."""
    if params.evaluate.threshold != "tuned":
        return
    if len(classes) != 2:
        fail("evaluate.threshold", f"'tuned' needs a binary task, not classes {classes}", "tuned")
    primary = params.evaluate.primary_metric
    if metrics.METRICS[primary].needs != "labels":
        fail(
            "evaluate.threshold",
            f"'tuned' needs evaluate.primary_metric to score labels; {primary!r} reads the "
            "probabilities, which no threshold changes",
            "tuned",
        )


def tuned_threshold(params: Params, model: torch.nn.Module, data: Data, classes: list[str]) -> dict:
    """The threshold on the rarer training class's probability that maximises
    `evaluate.primary_metric` on validation (`metrics.tune_threshold`)."""
    probs = calibration.softmax(predict(model.eval(), data.val.x))  # as evaluate scores val
    positive = metrics.minority_class(data.train.labels, classes)
    return metrics.tune_threshold(
        params.evaluate.primary_metric, data.val.labels, probs, classes, positive
    )
