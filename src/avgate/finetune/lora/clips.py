"""Clips as the LoRA model sees them: 1-s windows decoded from the raw audio at the feature
extractor's sampling rate and prepared by that extractor, lazily in DataLoader workers,
`batch_clips` clips (all their seconds) a batch.

Each window has a label: event tasks its second's label (from segments.parquet, read by the
stage), clip tasks the clip's label (a clip's logits are then the mean of its seconds' logits).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from transformers import AutoFeatureExtractor

from avgate.declare import PARAMS_FILE, ConfigError
from avgate.encoders.hf_audio import fit_waveform
from avgate.finetune.lora.base import Base
from avgate.finetune.lora.classifier import AudioClassifier
from avgate.media import decode_audio, seconds_in

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # windows, targets, clip positions


class Featurizer:
    """1-s windows `(seconds, samples)` -> the encoder's input for each window, prepared by the
    model's own feature extractor (picklable, so it runs in DataLoader workers)."""

    def __init__(self, base: Base, input_name: str) -> None:
        try:
            self.extractor = AutoFeatureExtractor.from_pretrained(base.source)
        except (OSError, ValueError, KeyError) as error:
            raise ConfigError(
                f"{PARAMS_FILE}: embed.{base.name}.model (train.lora.encoder) "
                f"{base.source!r} has no usable feature extractor: {error}"
            ) from error
        if input_name not in self.extractor.model_input_names:
            raise ConfigError(
                f"{PARAMS_FILE}: embed.{base.name}.model (train.lora.encoder): its feature "
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
    """One split's clips in the order given, and one row per second: `index` (clip_id, t) with
    `labels`, the label each second is trained and scored on (None where labels are not read,
    as for the sealed test split)."""

    clip_ids: np.ndarray
    clip_labels: np.ndarray | None
    paths: list[str]
    sha256: list[str]
    seconds: list[int]
    index: pd.DataFrame
    labels: np.ndarray | None


def split_clips(
    clips: pd.DataFrame,
    kind: str,
    second_labels: Callable[[pd.DataFrame], np.ndarray] | None,
) -> SplitClips:
    """The clips of one split (manifest rows: clip_id, path, sha256, duration_s, label) and the
    label of each of their seconds: `second_labels(index)` for event tasks, the clip's label
    for clip tasks; no labels at all when `second_labels` is None."""
    clips = clips.reset_index(drop=True)
    seconds = [seconds_in(d) for d in clips["duration_s"]]
    index = pd.DataFrame(
        {
            "clip_id": np.repeat(clips["clip_id"].to_numpy(), seconds),
            "t": np.concatenate([np.arange(n) for n in seconds]) if seconds else [],
        }
    )
    clip_labels = labels = None
    if second_labels is not None:
        clip_labels = clips["label"].to_numpy()
        labels = second_labels(index) if kind == "event" else np.repeat(clip_labels, seconds)
    return SplitClips(
        clips["clip_id"].to_numpy(),
        clip_labels,
        clips["path"].tolist(),
        clips["sha256"].tolist(),
        seconds,
        index,
        labels,
    )


class ClipWindows(Dataset):
    """Item i: clip i's windows as the encoder's input `(seconds, ...)`, their targets, and i."""

    def __init__(self, clips: SplitClips, targets: torch.Tensor, featurize: Featurizer) -> None:
        self.paths, self.seconds = clips.paths, clips.seconds
        self.starts = np.cumsum([0, *clips.seconds])
        self.targets = targets
        self.featurize = featurize

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        rate, seconds = self.featurize.sample_rate, self.seconds[i]
        wave = fit_waveform(decode_audio(self.paths[i], rate), seconds * rate)
        windows = self.featurize(wave.reshape(seconds, rate))
        return torch.from_numpy(windows), self.targets[self.starts[i] : self.starts[i + 1]], i


def _stack(items: list[tuple[torch.Tensor, torch.Tensor, int]]) -> Batch:
    return (
        torch.cat([x for x, _, _ in items]),
        torch.cat([y for _, y, _ in items]),
        torch.tensor([i for _, _, i in items], dtype=torch.long),
    )


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
        for x, y, _ in batches:
            logits.append(model(x.to(device)).float().cpu())
            targets.append(y)
    return torch.cat(logits), torch.cat(targets)


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
