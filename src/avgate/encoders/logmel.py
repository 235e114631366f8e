"""`logmel`: per-second mean and standard deviation of a torchaudio log-mel spectrogram."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchaudio

from avgate import media
from avgate.config import ConfigError

LOG_FLOOR = 1e-6


class LogmelEncoder:
    """Log-mel statistics per second: the mean of each of `segments` equal slices of the second,
    then the standard deviation over the whole second; `dim` = (segments + 1) * n_mels.

    `segments: 1` summarises a second by mean and spread; more slices keep the order of sounds
    inside it, which short events such as spoken words need.
    """

    name = "logmel"
    modality = "audio"

    def __init__(
        self, sample_rate: int, n_mels: int, n_fft: int, hop_length: int, segments: int
    ) -> None:
        if sample_rate % hop_length:
            raise ConfigError(
                f"params.yaml: embed.logmel.hop_length {hop_length} must divide sample_rate "
                f"{sample_rate} so that every second holds whole frames"
            )
        if segments < 1 or (sample_rate // hop_length) % segments:
            raise ConfigError(
                f"params.yaml: embed.logmel.segments {segments} must divide the "
                f"{sample_rate // hop_length} frames of a second"
            )
        self.segments = segments
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.dim = (segments + 1) * n_mels
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels
        )

    def identity(self) -> dict:
        return {
            "encoder": self.name,
            "weights": "none (fixed transform)",
            "torchaudio": torchaudio.__version__,
            "sample_rate": self.sample_rate,
            "n_mels": self.n_mels,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "segments": self.segments,
        }

    def embed_seconds(self, path: str | Path, n_seconds: int) -> np.ndarray:
        audio = media.decode_audio(path, self.sample_rate)
        samples = n_seconds * self.sample_rate
        audio = np.pad(audio[:samples], (0, max(0, samples - len(audio))))
        with torch.inference_mode():
            mel = self.mel(torch.from_numpy(audio))
            logmel = torch.log(mel + LOG_FLOOR)
        per_second = self.sample_rate // self.hop_length
        frames = logmel[:, : n_seconds * per_second].reshape(self.n_mels, n_seconds, per_second)
        slices = frames.reshape(self.n_mels, n_seconds, self.segments, -1).mean(dim=3)
        means = slices.permute(1, 2, 0).reshape(n_seconds, self.segments * self.n_mels)
        return torch.cat([means, frames.std(dim=2).T], dim=1).numpy().astype(np.float32)
