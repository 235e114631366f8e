"""Training of one seed's head on the fused embeddings, through the one loop.

The stage hands over the train and val rows (features, labels, clip index) and the encoders'
column blocks; the head is standardised with the training rows, trained with Adam on shuffled
mini-batches and early-stopped on `train.selection_metric`. A killed run resumes from its
checkpoint when the params, the seed, the classes and the exact tensors are unchanged.
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

from avgate.config import Params
from avgate.finetune.none.head import build_head
from avgate.models.fused import Block
from avgate.training.callbacks import Callback
from avgate.training.checkpoint import Checkpointing, fingerprint
from avgate.training.determinism import pin_determinism
from avgate.training.finite import Rows
from avgate.training.labels import classes_of, encode
from avgate.training.loop import FitConfig, fit
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
    task = TensorClassification(
        model,
        Split(x, y, Rows("train", row_names(data.train))),
        Split(xv, yv, Rows("val", row_names(data.val))),
        p.lr,
        p.weight_decay,
        p.batch_size,
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
    return Trained(model, description, result)
