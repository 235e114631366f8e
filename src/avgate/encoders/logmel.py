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
    """Log-mel statistics per second: `dim` = 2 * n_mels (means, then standard deviations)."""

    name = "logmel"
    modality = "audio"

    def __init__(self, sample_rate: int, n_mels: int, n_fft: int, hop_length: int) -> None:
        if sample_rate % hop_length:
            raise ConfigError(
                f"params.yaml: embed.logmel.hop_length {hop_length} must divide sample_rate "
                f"{sample_rate} so that every second holds whole frames"
            )
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.dim = 2 * n_mels
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
        stats = torch.cat([frames.mean(dim=2), frames.std(dim=2)], dim=0)
        return stats.T.contiguous().numpy().astype(np.float32)
