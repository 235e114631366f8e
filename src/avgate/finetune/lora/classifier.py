"""The classifier LoRA fine-tunes: a Hugging Face audio encoder, pooling over time, a linear head.

>>> POOLINGS
('mean', 'attention')
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel

from avgate.models.pooling import AttentionPooling, LinearHead, MeanPooling

POOLINGS = ("mean", "attention")


def load_encoder(path: Path) -> PreTrainedModel:
    """The encoder saved at `path` in float32 (the encoder half of an encoder-decoder model)."""
    model = AutoModel.from_pretrained(path, dtype=torch.float32)
    return model.get_encoder() if model.config.is_encoder_decoder else model


class AudioClassifier(nn.Module):
    """Encoder -> last hidden state -> pooling over time -> linear head -> logits.

    `featurize` maps waveforms `(B, samples)` to the encoder's input (e.g. log-mel frames for
    AST or Whisper); without it the waveforms go in as they are (WavLM, wav2vec 2.0, HuBERT).
    Clips in a batch have equal length (no padding mask). Only the first `audio_share` of the
    hidden positions are pooled: those that hold the audio where the feature extractor pads
    every input (Whisper: 1 s of 30 s, see `hf_audio.audio_share`).
    """

    def __init__(
        self,
        encoder: nn.Module,
        n_classes: int,
        pooling: str = "mean",
        featurize: Callable[[torch.Tensor], torch.Tensor] | None = None,
        audio_share: float = 1.0,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        dim = encoder.config.hidden_size
        self.encoder = encoder
        self.input_name = encoder.main_input_name
        self.featurize = featurize
        self.n_classes, self.pooling, self.audio_share = n_classes, pooling, audio_share
        self.pool = AttentionPooling(dim) if pooling == "attention" else MeanPooling()
        self.head = LinearHead(dim, n_classes)

    def encoder_inputs(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
        """The keyword arguments the encoder takes for these waveforms."""
        inputs = waveforms if self.featurize is None else self.featurize(waveforms)
        return {self.input_name: inputs}

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.readout(self.encoder(**self.encoder_inputs(waveforms)).last_hidden_state)

    def readout(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits from the encoder's last hidden state `(B, positions, dim)`: the positions that
        hold the audio, pooled, then the head."""
        hidden = hidden[:, : math.ceil(hidden.shape[1] * self.audio_share)]
        return self.head(self.pool(hidden))

    def per_second_logits(self, windows: torch.Tensor) -> torch.Tensor:
        """Logits of each 1-s window: `(B, seconds, samples_per_second) -> (B, seconds, C)`."""
        return self(windows.flatten(0, 1)).unflatten(0, windows.shape[:2])
