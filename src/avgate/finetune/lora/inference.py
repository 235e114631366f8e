"""Raw logits of a trained LoRA model for one split's clips: a row per (clip_id, t) for event
tasks, a row per clip (the mean of its seconds' logits) for clip tasks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from avgate.config import Params
from avgate.encoders.hf_audio import resolve_device
from avgate.finetune.lora.base import base_model
from avgate.finetune.lora.classifier import AudioClassifier
from avgate.finetune.lora.clips import (
    ClipWindows,
    Featurizer,
    SplitClips,
    clip_means,
    loader,
    window_logits,
)
from avgate.training.determinism import deterministic_cuda


def predict(
    params: Params, model: AudioClassifier, clips: SplitClips
) -> tuple[pd.DataFrame, np.ndarray]:
    """The index of the rows scored and their float32 logits (see the module doc)."""
    deterministic_cuda()
    featurize = Featurizer(base_model(params), model.input_name)
    dataset = ClipWindows(clips, torch.zeros(len(clips.index), dtype=torch.long), featurize)
    device = resolve_device(params.embed.device, "embed")
    batches = loader(dataset, params.train.lora.batch_clips, params.embed.workers)
    logits = window_logits(model.to(device), batches, device)[0].numpy()
    if params.task.kind == "event":
        return clips.index, logits
    return pd.DataFrame({"clip_id": clips.clip_ids}), clip_means(logits, clips.seconds)
