"""Training of one seed (run by the `train` stage): an MLP head on the fused embeddings,
early-stopped on validation loss.

Logs every epoch with dvclive (dvcyaml=False: the stage must not rewrite dvc.yaml) and saves
the best weights as safetensors next to a JSON description of the head.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from dvclive import Live
from safetensors.torch import save_file
from tqdm import tqdm

from avgate.config import Params
from avgate.errors import StageError
from avgate.files import atomic_dir, write_json
from avgate.models.fit import Checkpointing, FitConfig, fit, pin_determinism
from avgate.models.fused import rebuild_head
from avgate.models.heads import MLPHead
from avgate.stages.inputs import (
    DESCRIPTION,
    WEIGHTS,
    Examples,
    encoder_blocks,
    examples,
    live_dir,
    model_dir,
)
from avgate.stages.profile import recorded


def encode(labels: np.ndarray, classes: list[str], split: str) -> torch.Tensor:
    """Class indices of `labels`; refuses labels the training split never saw."""
    lookup = {c: i for i, c in enumerate(classes)}
    unseen = sorted(set(labels) - set(lookup))
    if unseen:
        raise StageError(f"labels {unseen} occur in {split} but not in train; re-split the data")
    return torch.tensor([lookup[label] for label in labels], dtype=torch.long)


def build_head(params: Params, in_dim: int, n_classes: int) -> tuple[torch.nn.Module, dict]:
    """The head `train.head` / `train.fusion` ask for, and the description that rebuilds it.

    The plain MLP on concatenated features stays `MLPHead`; any other choice, or an encoder
    stored with every hidden layer, is a `FusedHead` over the encoders' column blocks.
    """
    p = params.train
    blocks = encoder_blocks(params)
    if p.head == "mlp" and p.fusion == "concat" and all(b.n_layers == 1 for b in blocks):
        return MLPHead(in_dim, p.hidden, n_classes, p.dropout), {"kind": "mlp"}
    architecture = {
        "kind": "fused",
        "head": p.head,
        "fusion": p.fusion,
        "blocks": [b.to_dict() for b in blocks],
    }
    return rebuild_head(architecture, in_dim, n_classes, p.hidden, p.dropout), architecture


def run(params: Params, seed: int) -> dict:
    """Train one seed's head; write models/seed<seed>/ and dvclive/train/seed<seed>/."""
    if params.train.finetune == "lora":
        from avgate.stages import lora_train  # it imports this module; peft only when needed

        return lora_train.train(params, seed)
    # timings go to data/profiles: models/ and the dvclive log stay reproducible
    with recorded(f"train/seed{seed}") as profile:
        return _train_head(params, seed, profile)


def _train_head(params: Params, seed: int, profile: dict) -> dict:
    pin_determinism(seed, params.train.num_threads)
    train, val = examples(params, "train"), examples(params, "val")
    classes = sorted(set(train.labels))
    x, y = torch.from_numpy(train.x), encode(train.labels, classes, "train")
    xv, yv = torch.from_numpy(val.x), encode(val.labels, classes, "val")
    p = params.train
    model, architecture = build_head(params, int(x.shape[1]), len(classes))
    model.set_standardisation(x)
    config = FitConfig(
        p.lr, p.weight_decay, p.batch_size, p.max_epochs, p.patience, seed, p.selection_metric
    )
    live = Live(str(live_dir(seed)), dvcyaml=False, save_dvc_exp=False, report=None)
    bar = epoch_bar(seed, p.max_epochs)
    with live, bar:

        def log(epoch: int, logs: dict[str, float]) -> None:
            for name, value in logs.items():
                live.log_metric(name, value)
            live.next_step()
            bar.update()
            bar.set_postfix(
                loss=f"{logs['train_loss']:.3f}",
                val_loss=f"{logs['val_loss']:.3f}",
                val_acc=f"{logs['val_accuracy']:.3f}",
            )

        started = time.perf_counter()
        checkpoint = Checkpointing(
            checkpoint_path(seed), fingerprint(params, seed, classes, (x, y), (xv, yv))
        )
        names = row_names(train), row_names(val)
        result = fit(model, (x, y), (xv, yv), config, log, checkpoint, names)
        seconds = time.perf_counter() - started
        ran = result.epochs_run - result.resumed_from_epoch
        profile["samples_per_s"] = round(len(x) * ran / seconds, 1)
        profile["resumed_from_epoch"] = result.resumed_from_epoch
        live.summary["best_epoch"] = result.best_epoch
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
        "train_label_counts": dict(sorted(Counter(train.labels.tolist()).items())),
        "best_epoch": result.best_epoch,
        "best_val_loss": finite_or_none(result.best_val_loss),
        "selection_metric": p.selection_metric,
        "best_selection_value": finite_or_none(result.best_selection_value),
        "epochs_run": result.epochs_run,
        "trainable_parameters": sum(t.numel() for t in model.parameters() if t.requires_grad),
        "total_parameters": sum(t.numel() for t in model.parameters()),
    }
    with atomic_dir(model_dir(seed)) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp / WEIGHTS)
        write_json(tmp / DESCRIPTION, description)
    shutil.rmtree(checkpoint_path(seed).parent, ignore_errors=True)
    return description


def row_names(data: Examples) -> list[str]:
    """A name for each row of `data`: its clip id, with `@<t>s` for a second of an event task."""
    clips = data.index["clip_id"].astype(str)
    if "t" in data.index:
        return (clips + "@" + data.index["t"].astype(str) + "s").tolist()
    return clips.tolist()


def finite_or_none(value: float) -> float | None:
    """`value`, or None (JSON null) when no epoch ran and it is still infinite."""
    return value if math.isfinite(value) else None


def epoch_bar(seed: int, max_epochs: int) -> tqdm:
    """A bar over the epochs of one seed on a terminal (the ETA assumes no early stop); nothing
    in a log without a TTY, where the stage prints one line per seed instead."""
    return tqdm(total=max_epochs, desc=f"train seed {seed}", unit="epoch", disable=None,
                leave=False, dynamic_ncols=True)  # fmt: skip


def checkpoint_path(seed: int) -> Path:
    """The head's training state after its last epoch: a killed run resumes from it."""
    return Path("data/checkpoints/train") / f"seed{seed}" / "head.pt"


def fingerprint(params: Params, seed: int, classes: list[str], *data: tuple) -> str:
    """What decides a training run: its params, seed, classes and the exact tensors."""
    digest = hashlib.sha256(
        json.dumps([asdict(params.train), asdict(params.task), seed, classes]).encode()
    )
    for tensors in data:
        for tensor in tensors:
            digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()
