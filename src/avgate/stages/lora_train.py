"""Training and evaluation of one seed with `train.finetune: lora`: LoRA adapters on the
pretrained audio encoder of `embed.<train.lora.encoder>`, trained end to end from the raw audio.

Every clip is cut into 1-s windows at the feature extractor's sampling rate and prepared by that
extractor. Each window gets a label: event tasks its second's label from `segments.parquet`,
clip tasks the clip's label (a clip's logits are then the mean of its seconds' logits). Clips
are decoded lazily in DataLoader workers, `train.lora.batch_clips` clips (all their seconds) a
batch.

After every epoch the trainable weights, the optimiser, the RNG states and the best epoch so far
go to `data/checkpoints/train/seed<seed>/` (outside the DVC outputs): a killed run resumes there
when nothing that decides the result has changed, and ends with the weights an uninterrupted run
ends with. The folder is deleted once `models/seed<seed>/` is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from dvclive import Live
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
from transformers import AutoFeatureExtractor, PreTrainedModel

from avgate import disk
from avgate.config import Params
from avgate.declare import PARAMS_FILE, ConfigError
from avgate.encoders.hf_audio import (
    audio_share,
    fit_waveform,
    resolve_device,
    versions,
    weights_identity,
)
from avgate.errors import StageError
from avgate.files import atomic_dir, read_json, write_json
from avgate.media import decode_audio, seconds_in
from avgate.models.fit import SELECTION_METRICS, load_state, pin_determinism
from avgate.models.lora import (
    AudioClassifier,
    check_forward_equivalence,
    check_gradient_flow,
    check_trainable,
    load_adapter,
    load_checkpoint,
    load_encoder,
    parameter_report,
    resolve_targets,
    save_adapter,
    save_checkpoint,
    train_steps,
    wrap_lora,
)
from avgate.stages.inputs import DESCRIPTION, live_dir, model_dir, second_labels, usable_clips
from avgate.stages.profile import recorded
from avgate.stages.train import encode, finite_or_none

ADAPTER = "adapter"  # models/seed<seed>/adapter: what `save_adapter` writes
CHECKPOINTS = Path("data/checkpoints/train")
LAST, PROGRESS = "last.pt", "progress.pt"
CHECK_WINDOWS = 2  # windows of the first training clip the pre-training checks run on


def checkpoint_dir(seed: int) -> Path:
    """Where a seed's unfinished training run keeps its checkpoint.

    >>> checkpoint_dir(3).as_posix()
    'data/checkpoints/train/seed3'
    """
    return CHECKPOINTS / f"seed{seed}"


@dataclass(frozen=True)
class Base:
    """The pretrained encoder: its `embed` section name and its hub id or local folder."""

    name: str
    source: str
    revision: str

    @property
    def path(self) -> Path:
        return Path(self.source)


def base_model(params: Params) -> Base:
    """The `embed.<train.lora.encoder>` section's hf-audio model; ConfigError otherwise."""
    name = params.train.lora.encoder
    section = params.embed.models.get(name)
    if section is None:
        raise ConfigError(
            f"{PARAMS_FILE}: train.lora.encoder must name an embed.<name> section with an "
            f"hf-audio encoder, got {name!r}; sections: {sorted(params.embed.models)}"
        )
    kind, _, source = str(section["encoder"]).partition(":")
    if kind != "hf-audio" or not source:
        raise ConfigError(
            f"{PARAMS_FILE}: train.lora.encoder {name!r} must name an hf-audio encoder, but "
            f"embed.{name}.encoder is {section['encoder']!r}; use hf-audio:<hub id or folder>"
        )
    revision = section.get("revision", "main")
    if revision != "main":
        raise ConfigError(
            f"{PARAMS_FILE}: train.lora.encoder {name!r}: embed.{name}.revision {revision!r} "
            "cannot be pinned for fine-tuning; save that revision to a local folder and name it"
        )
    return Base(name, source, revision)


def load_base(base: Base) -> PreTrainedModel:
    """The base encoder in float32; a load failure names the params key."""
    try:
        return load_encoder(base.path)
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(
            f"{PARAMS_FILE}: embed.{base.name}.encoder (train.lora.encoder) {base.source!r} "
            f"could not be loaded: {error}"
        ) from error


def base_identity(base: Base, encoder: PreTrainedModel) -> dict:
    """What identifies the base weights (hash of a local folder's weight files, or hub id)."""
    return weights_identity(
        base.source, base.revision, getattr(encoder.config, "_commit_hash", None)
    )


class Featurizer:
    """1-s windows `(seconds, samples)` -> the encoder's input for each window, prepared by the
    model's own feature extractor (picklable, so it runs in DataLoader workers)."""

    def __init__(self, base: Base, input_name: str) -> None:
        try:
            self.extractor = AutoFeatureExtractor.from_pretrained(base.source)
        except (OSError, ValueError, KeyError) as error:
            raise ConfigError(
                f"{PARAMS_FILE}: embed.{base.name}.encoder (train.lora.encoder) "
                f"{base.source!r} has no usable feature extractor: {error}"
            ) from error
        if input_name not in self.extractor.model_input_names:
            raise ConfigError(
                f"{PARAMS_FILE}: embed.{base.name}.encoder (train.lora.encoder): its feature "
                f"extractor makes {self.extractor.model_input_names}; the model takes "
                f"{input_name!r}"
            )
        self.input_name = input_name
        self.sample_rate = int(self.extractor.sampling_rate)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        prepared = self.extractor(
            list(windows), sampling_rate=self.sample_rate, return_tensors="np"
        )
        return np.asarray(prepared[self.input_name], dtype=np.float32)


@dataclass(frozen=True)
class SplitClips:
    """One split's usable clips in clip_id order, and one row per second: `index` (clip_id, t)
    with `labels`, the label each second is trained and scored on."""

    clip_ids: np.ndarray
    clip_labels: np.ndarray
    paths: list[str]
    sha256: list[str]
    seconds: list[int]
    index: pd.DataFrame
    labels: np.ndarray


def split_clips(params: Params, split: str) -> SplitClips:
    """The clips of `split` and the label of each of their seconds (see the module doc)."""
    clips = usable_clips(params)
    clips = clips[clips["split"] == split].reset_index(drop=True)
    seconds = [seconds_in(d) for d in clips["duration_s"]]
    index = pd.DataFrame(
        {
            "clip_id": np.repeat(clips["clip_id"].to_numpy(), seconds),
            "t": np.concatenate([np.arange(n) for n in seconds]) if seconds else [],
        }
    )
    if params.task.kind == "event":
        labels = second_labels(params, index)
    else:
        labels = np.repeat(clips["label"].to_numpy(), seconds)
    return SplitClips(
        clips["clip_id"].to_numpy(),
        clips["label"].to_numpy(),
        clips["path"].tolist(),
        clips["sha256"].tolist(),
        seconds,
        index,
        labels,
    )


class ClipWindows(Dataset):
    """Item i: clip i's windows as the encoder's input `(seconds, ...)`, and their targets."""

    def __init__(self, clips: SplitClips, targets: torch.Tensor, featurize: Featurizer) -> None:
        self.paths, self.seconds = clips.paths, clips.seconds
        self.starts = np.cumsum([0, *clips.seconds])
        self.targets = targets
        self.featurize = featurize

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rate, seconds = self.featurize.sample_rate, self.seconds[i]
        wave = fit_waveform(decode_audio(self.paths[i], rate), seconds * rate)
        windows = self.featurize(wave.reshape(seconds, rate))
        return torch.from_numpy(windows), self.targets[self.starts[i] : self.starts[i + 1]]


def _stack(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([x for x, _ in items]), torch.cat([y for _, y in items])


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)


def loader(
    dataset: ClipWindows, batch_clips: int, workers: int, order: list[int] | None = None
) -> DataLoader:
    """Batches of `batch_clips` clips (all their windows) in `order` (default: as stored).

    Its own generator keeps the DataLoader from drawing on the global RNG."""
    return DataLoader(
        dataset,
        batch_size=batch_clips,
        sampler=order,
        num_workers=workers,
        collate_fn=_stack,
        worker_init_fn=_one_thread,
        generator=torch.Generator(),
    )


def window_logits(
    model: AudioClassifier, batches: DataLoader, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 logits of every window (eval mode, on CPU) and the windows' targets."""
    model.eval()
    logits, targets = [torch.zeros(0, model.n_classes)], [torch.zeros(0, dtype=torch.long)]
    with torch.inference_mode():
        for x, y in batches:
            logits.append(model(x.to(device)).float().cpu())
            targets.append(y)
    return torch.cat(logits), torch.cat(targets)


def deterministic_cuda() -> None:
    """cuBLAS is deterministic (as `pin_determinism` demands on CUDA) only with a fixed
    workspace, which must be set before its first use."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def seed_everything(seed: int, num_threads: int) -> None:
    """Seed torch, numpy (SpecAugment's masks) and Python's RNG; pin threads."""
    deterministic_cuda()
    pin_determinism(seed, num_threads)
    np.random.seed(seed)
    random.seed(seed)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the trainable parameters, on CPU."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def restore_trainable(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy `state` (from `trainable_state`) into the model's parameters."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in state:
                param.copy_(state[name])


@dataclass
class Progress:
    """Epochs done, their logged metrics, and the best epoch so far with its weights."""

    fingerprint: str
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_value: float = -math.inf  # the selection metric signed so that higher is better
    best_val_loss: float = math.inf
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)

    def record(self, logs: dict[str, float], model: torch.nn.Module, metric: str) -> None:
        """Add one epoch's metrics; keep its weights if it beats the best (ties: the earlier)."""
        self.epoch += 1
        self.history.append(logs)
        value = SELECTION_METRICS[metric] * logs[metric]
        if value > self.best_value:
            self.best_epoch, self.best_value = self.epoch, value
            self.best_val_loss = logs["val_loss"]
            self.best_state = trainable_state(model)


def save_progress(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    progress: Progress,
) -> None:
    """Checkpoint (`last.pt`) and progress (`progress.pt`) after an epoch, each atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / LAST, model, optimizer, progress.epoch, generator)
    buffer = io.BytesIO()
    torch.save(vars(progress), buffer)
    disk.write_bytes(folder / PROGRESS, buffer.getbuffer(), "the LoRA training progress")


def resume(
    folder: Path,
    key: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> Progress:
    """The progress of the checkpoint in `folder`, restored into model, optimizer and RNGs, if
    its fingerprint is `key`; otherwise the folder is removed and the progress is fresh. Both
    files load weights-only: one holding anything else is named in a warning and discarded."""
    last, saved = folder / LAST, folder / PROGRESS
    if last.exists() and saved.exists():
        state, checkpoint = load_state(saved), load_state(last)
        if (
            state is not None
            and checkpoint is not None
            and state.get("fingerprint") == key
            and checkpoint.get("epoch") == state.get("epoch")
        ):
            load_checkpoint(last, model, optimizer, generator)
            return Progress(**state)
    shutil.rmtree(folder, ignore_errors=True)
    return Progress(key)


def fingerprint(
    params: Params, seed: int, identity: dict, data: list[SplitClips], device: str
) -> str:
    """Hash of everything that decides the trained weights: a checkpoint resumes only if equal."""
    facts = {
        "seed": seed,
        "task": dataclasses.asdict(params.task),
        "lora": dataclasses.asdict(params.train.lora),
        "selection_metric": params.train.selection_metric,
        "num_threads": params.train.num_threads,
        "section": params.embed.models[params.train.lora.encoder],
        "weights": identity,
        "device": device,
        "versions": versions("torch", "transformers", "peft"),
        "data": [
            [d.sha256, d.seconds, d.index["clip_id"].tolist(), d.labels.tolist()] for d in data
        ],
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


def train_epoch(
    model: AudioClassifier,
    dataset: ClipWindows,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    params: Params,
    device: torch.device,
    desc: str = "lora",
) -> tuple[float, int]:
    """One pass over the clips in an order drawn from `generator`: mean loss per window, and
    the number of windows. A bar over the batches shows on a terminal (none in a log)."""
    lora = params.train.lora
    order = torch.randperm(len(dataset), generator=generator).tolist()
    sizes: list[int] = []
    batches = math.ceil(len(dataset) / lora.batch_clips)

    def counted() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        with tqdm(total=batches, desc=desc, unit="batch", disable=None, leave=False) as bar:
            for x, y in loader(dataset, lora.batch_clips, params.embed.workers, order):
                sizes.append(len(y))
                yield x, y
                bar.update()

    losses = train_steps(model, counted(), optimizer, lora.accumulate, lora.amp, device)
    return float(np.dot(losses, sizes) / sum(sizes)), sum(sizes)


def validate(
    model: AudioClassifier, dataset: ClipWindows, params: Params, device: torch.device
) -> tuple[float, float]:
    """Cross-entropy and accuracy over the windows of `dataset`."""
    batches = loader(dataset, params.train.lora.batch_clips, params.embed.workers)
    logits, targets = window_logits(model, batches, device)
    loss = torch.nn.functional.cross_entropy(logits, targets).item()
    return loss, (logits.argmax(dim=1) == targets).float().mean().item()


def fit_epochs(
    model: AudioClassifier,
    data: tuple[ClipWindows, ClipWindows],
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    progress: Progress,
    params: Params,
    seed: int,
    device: torch.device,
) -> int:
    """Run the epochs `progress` still lacks, logging each with dvclive and checkpointing
    after it; returns the windows trained on."""
    windows = 0
    with Live(str(live_dir(seed)), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        for logs in progress.history:  # a resumed run's log equals an uninterrupted run's
            log_epoch(live, logs)
        for _ in range(progress.epoch, params.train.lora.epochs):
            desc = f"lora seed {seed} epoch {len(progress.history) + 1}/{params.train.lora.epochs}"
            train_loss, n = train_epoch(model, data[0], optimizer, generator, params, device, desc)
            val_loss, val_accuracy = validate(model, data[1], params, device)
            logs = {"train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_accuracy}
            log_epoch(live, logs)
            progress.record(logs, model, params.train.selection_metric)
            save_progress(checkpoint_dir(seed), model, optimizer, generator, progress)
            windows += n
        live.summary["best_epoch"] = progress.best_epoch
    return windows


def log_epoch(live: Live, logs: dict[str, float]) -> None:
    for name, value in logs.items():
        live.log_metric(name, value)
    live.next_step()


def training_data(
    params: Params, featurize: Featurizer
) -> tuple[list[str], list[SplitClips], tuple[ClipWindows, ClipWindows]]:
    """The classes (sorted training labels), the train and val clips, and their windows."""
    clips = [split_clips(params, "train"), split_clips(params, "val")]
    classes = sorted(set(clips[0].labels))
    train_set, val_set = (
        ClipWindows(c, encode(c.labels, classes, name), featurize)
        for c, name in zip(clips, ("train", "val"), strict=True)
    )
    return classes, clips, (train_set, val_set)


def label_counts(params: Params, clips: SplitClips) -> dict[str, int]:
    """How often each label occurs among the rows evaluate scores (seconds, or clips)."""
    labels = clips.labels if params.task.kind == "event" else clips.clip_labels
    return dict(sorted(Counter(labels.tolist()).items()))


def run_checks(model: AudioClassifier, inputs: torch.Tensor, base: Base) -> float:
    """Fail unless only adapters and head train and every adapter gets a gradient; return the
    forward-equivalence difference (adapters off vs the base checkpoint)."""
    try:
        check_trainable(model)
        check_gradient_flow(model, inputs)
    except RuntimeError as error:
        raise StageError(f"train.lora on embed.{base.name}: {error}") from error
    return check_forward_equivalence(model, inputs, base.path)


def describe(
    params: Params, seed: int, model: AudioClassifier, progress: Progress, facts: dict
) -> dict:
    """head.json: what was trained, how, and the best epoch; `facts` adds the rest."""
    lora, metric = params.train.lora, params.train.selection_metric
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
        "best_epoch": progress.best_epoch,
        "best_val_loss": finite_or_none(progress.best_val_loss),
        "epochs_run": progress.epoch,
        "selection_metric": metric,
        "best_selection_value": finite_or_none(SELECTION_METRICS[metric] * progress.best_value),
        "trainable_parameters": counts["trainable"],
        "total_parameters": counts["total"],
        "adapter_parameters": counts["adapter"],
        "head_parameters": counts["head"],
    }


def train(params: Params, seed: int) -> dict:
    """Fine-tune one seed's adapters and head from the raw audio; write models/seed<seed>/
    (adapter/ and head.json) and dvclive/train/seed<seed>/."""
    lora, base = params.train.lora, base_model(params)
    seed_everything(seed, params.train.num_threads)
    encoder = load_base(base)
    targets = resolve_targets(encoder, lora.targets)
    featurize = Featurizer(base, encoder.main_input_name)
    classes, clips, data = training_data(params, featurize)
    identity = base_identity(base, encoder)
    model_type = encoder.config.model_type
    share = audio_share(featurize.extractor, featurize.sample_rate)
    model = AudioClassifier(encoder, len(classes), lora.pooling, audio_share=share)
    model = wrap_lora(model, targets, lora.r, lora.alpha, lora.dropout)
    equivalence = run_checks(model, data[0][0][0][:CHECK_WINDOWS], base)
    device = resolve_device(params.embed.device, "embed")
    model.to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lora.lr)
    generator = torch.Generator().manual_seed(seed)
    key = fingerprint(params, seed, identity, clips, device.type)
    progress = resume(checkpoint_dir(seed), key, model, optimizer, generator)
    resumed_from = progress.epoch
    # timings go to data/profiles: models/ and the dvclive log stay reproducible
    with recorded(f"train/seed{seed}") as profile:
        started = time.perf_counter()
        windows = fit_epochs(model, data, optimizer, generator, progress, params, seed, device)
        seconds = time.perf_counter() - started
        profile.update(
            samples_per_s=round(windows / seconds, 1),
            device=str(device),
            resumed_from_epoch=resumed_from,
        )
    restore_trainable(model, progress.best_state)
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
        "weight_decay": optimizer.defaults["weight_decay"],
        "train_label_counts": label_counts(params, clips[0]),
        "forward_equivalence_max_abs_diff": equivalence,
    }
    description = describe(params, seed, model, progress, facts)
    with atomic_dir(model_dir(seed)) as tmp:
        save_adapter(model, tmp / ADAPTER)
        write_json(tmp / DESCRIPTION, description)
    shutil.rmtree(checkpoint_dir(seed), ignore_errors=True)
    return description


def load_trained(params: Params, seed: int) -> tuple[AudioClassifier, dict, Base]:
    """A seed's trained classifier (frozen, eval mode) and its description; refuses a base
    model whose weights differ from those it was trained on."""
    base = base_model(params)
    description = read_json(model_dir(seed) / DESCRIPTION)
    model = load_adapter(base.path, model_dir(seed) / ADAPTER)
    identity = base_identity(base, model.encoder.get_base_model())
    if identity != description["base_identity"]:
        raise StageError(
            f"{model_dir(seed)}: trained on base weights {description['base_identity']}, but "
            f"embed.{base.name}.encoder now has {identity}; re-run `dvc repro train`"
        )
    return model.eval(), description, base


def predict(
    params: Params, seed: int, split: str
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, list[str]]:
    """Index, labels, raw logits and classes of `split` for one seed's fine-tuned model:
    event tasks a row per (clip_id, t), clip tasks a row per clip_id (mean of its seconds)."""
    deterministic_cuda()
    model, description, base = load_trained(params, seed)
    featurize = Featurizer(base, model.input_name)
    clips = split_clips(params, split)
    dataset = ClipWindows(clips, torch.zeros(len(clips.index), dtype=torch.long), featurize)
    device = resolve_device(params.embed.device, "embed")
    batches = loader(dataset, params.train.lora.batch_clips, params.embed.workers)
    logits = window_logits(model.to(device), batches, device)[0].numpy()
    classes = description["classes"]
    if params.task.kind == "event":
        return clips.index, clips.labels, logits, classes
    return (
        pd.DataFrame({"clip_id": clips.clip_ids}),
        clips.clip_labels,
        clip_means(logits, clips.seconds),
        classes,
    )


def clip_means(logits: np.ndarray, seconds: list[int]) -> np.ndarray:
    """The mean of each clip's rows; clips hold `seconds` consecutive rows each.

    >>> clip_means(np.array([[1.0], [3.0], [5.0]], np.float32), [2, 1]).tolist()
    [[2.0], [5.0]]
    """
    if not seconds:
        return logits[:0]
    starts = np.cumsum([0, *seconds[:-1]])
    return (np.add.reduceat(logits, starts, axis=0) / np.asarray(seconds)[:, None]).astype(
        np.float32
    )
