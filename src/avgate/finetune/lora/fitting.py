"""Training of one seed with `train.finetune: lora`: LoRA adapters and a head on the pretrained
audio encoder of `embed.<train.lora.encoder>`, trained end to end from the raw audio through the
one loop, for `train.lora.epochs` epochs (the best by `train.selection_metric` kept).

Before the first step the freeze audit, the gradient-flow check and the forward equivalence at
initialisation run (`checks`). A killed run resumes from its checkpoint when nothing that
decides the result has changed (`fingerprint`), and ends with the bytes an uninterrupted run
ends with.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avgate.config import Params
from avgate.encoders.hf_audio import audio_share, resolve_device, versions
from avgate.errors import StageError
from avgate.finetune.lora.adapters import parameter_report, resolve_targets, wrap_lora
from avgate.finetune.lora.base import Base, base_identity, base_model, load_base
from avgate.finetune.lora.checks import (
    check_forward_equivalence,
    check_gradient_flow,
    check_trainable,
)
from avgate.finetune.lora.classifier import AudioClassifier
from avgate.finetune.lora.clips import ClipWindows, Featurizer, SplitClips
from avgate.finetune.lora.task import LoraTask
from avgate.training.bars import BatchBar
from avgate.training.callbacks import Callback
from avgate.training.checkpoint import Checkpointing, fingerprint
from avgate.training.determinism import seed_everything
from avgate.training.labels import classes_of, encode
from avgate.training.loop import FitConfig, fit
from avgate.training.result import FitResult, Trained, finite_or_none

CHECK_WINDOWS = 2  # windows of the first training clip the pre-training checks run on


@dataclass(frozen=True)
class Data:
    """What the stage reads for this mode: the labelled train and val clips."""

    train: SplitClips
    val: SplitClips


def run_checks(model: AudioClassifier, inputs: torch.Tensor, base: Base) -> dict[str, float]:
    """Fail unless only adapters and head train and every adapter gets a gradient; return the
    forward-equivalence differences (adapters off vs the base checkpoint)."""
    try:
        check_trainable(model)
        check_gradient_flow(model, inputs)
    except RuntimeError as error:
        raise StageError(f"train.lora on embed.{base.name}: {error}") from error
    return check_forward_equivalence(model, inputs, base.path)


def run_fingerprint(params: Params, seed: int, identity: dict, data: Data, device: str) -> str:
    """Hash of everything that decides the trained weights: a checkpoint resumes only if equal."""
    facts = {
        "seed": seed,
        "task": dataclasses.asdict(params.task),
        "lora": dataclasses.asdict(params.train.lora),
        "selection_metric": params.train.selection_metric,
        "num_threads": params.train.num_threads,
        "section": params.embed.sections[params.train.lora.encoder],
        "weights": identity,
        "device": device,
        "versions": versions("torch", "transformers", "peft"),
        "data": [
            [d.sha256, d.seconds, d.index["clip_id"].tolist(), _labels(d).tolist()]
            for d in (data.train, data.val)
        ],
    }
    return fingerprint(facts)


def _labels(clips: SplitClips) -> np.ndarray:
    if clips.labels is None:
        raise ValueError("training needs labelled clips")
    return clips.labels


def label_counts(params: Params, clips: SplitClips) -> dict[str, int]:
    """How often each label occurs among the rows evaluate scores (seconds, or clips)."""
    labels = _labels(clips) if params.task.kind == "event" else clips.clip_labels
    return dict(sorted(Counter(np.asarray(labels).tolist()).items()))


def describe(
    params: Params, seed: int, model: AudioClassifier, result: FitResult, facts: dict
) -> dict:
    """head.json: what was trained, how, and the best epoch; `facts` adds the rest."""
    lora = params.train.lora
    counts = parameter_report(model)
    return {
        "kind": params.task.kind,
        "finetune": "lora",
        **facts,
        "targets": lora.targets,
        "r": lora.r,
        "alpha": lora.alpha,
        "dropout": lora.dropout,
        "pooling": lora.pooling,
        "lr": lora.lr,
        "batch_clips": lora.batch_clips,
        "accumulate": lora.accumulate,
        "amp": lora.amp,
        "seed": seed,
        "best_epoch": result.best_epoch,
        "best_val_loss": finite_or_none(result.best_val_loss),
        "epochs_run": result.epochs_run,
        "selection_metric": params.train.selection_metric,
        "best_selection_value": finite_or_none(result.best_selection_value),
        "trainable_parameters": counts["trainable"],
        "total_parameters": counts["total"],
        "adapter_parameters": counts["adapter"],
        "head_parameters": counts["head"],
        "base_trained_parameters": counts["base_trained"],
    }


def train(
    params: Params, seed: int, data: Data, checkpoint: Path, callbacks: Sequence[Callback] = ()
) -> Trained:
    """Fine-tune one seed's adapters and head from the raw audio (see the module doc);
    `checkpoint` is the file a killed run resumes from."""
    lora, base = params.train.lora, base_model(params)
    seed_everything(seed, params.train.num_threads)
    encoder = load_base(base)
    targets = resolve_targets(encoder, lora.targets)
    featurize = Featurizer(base, encoder.main_input_name)
    classes = classes_of(_labels(data.train))
    train_set, val_set = (
        ClipWindows(clips, encode(_labels(clips), classes, name), featurize)
        for clips, name in ((data.train, "train"), (data.val, "val"))
    )
    identity = base_identity(base, encoder)
    model_type = encoder.config.model_type
    share = audio_share(featurize.extractor, featurize.sample_rate)
    model = AudioClassifier(encoder, len(classes), lora.pooling, audio_share=share)
    model = wrap_lora(model, targets, lora.r, lora.alpha, lora.dropout, lora.train_base)
    equivalence = run_checks(model, train_set[0][0][:CHECK_WINDOWS], base)
    device = resolve_device(params.embed.device, "embed")
    model.to(device)
    task = LoraTask(
        model,
        train_set,
        val_set,
        {"train": data.train.clip_ids, "val": data.val.clip_ids},
        lora.lr,
        lora.batch_clips,
        params.embed.workers,
        lora.amp,
        device,
    )
    config = FitConfig(
        lora.epochs, seed, selection_metric=params.train.selection_metric,
        accumulate=lora.accumulate,
    )  # fmt: skip
    key = run_fingerprint(params, seed, identity, data, device.type)
    hooks = [*callbacks, BatchBar(f"lora seed {seed}")]
    result = fit(task, config, hooks, Checkpointing(checkpoint, key))
    facts = {
        "classes": classes,
        "encoder": base.name,
        "base_model": base.source,
        "base_identity": identity,
        "model_type": model_type,
        "sample_rate": featurize.sample_rate,
        "window_s": 1,
        "target_modules": targets,
        "optimizer": "AdamW",
        "weight_decay": task.weight_decay,
        "train_label_counts": label_counts(params, data.train),
        "forward_equivalence_max_abs_diff": equivalence["max_abs_hidden_diff"],
        "forward_equivalence_mean_abs_logit_diff": equivalence["mean_abs_logit_diff"],
    }
    description = describe(params, seed, model, result, facts)
    return Trained(model, description, result, {"device": str(device)})
