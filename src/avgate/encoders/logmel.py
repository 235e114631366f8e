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
    batched = True  # `embed` takes a batch of loaded clips: a worker transforms its whole chunk
    runs_model = False  # cheap enough to run in the DataLoader workers, next to the decoding

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

    def load(self, path: str | Path, n_seconds: int) -> np.ndarray:
        """The clip's audio at `sample_rate`, cut or zero-padded to `n_seconds`."""
        audio = media.decode_audio(path, self.sample_rate)
        samples = n_seconds * self.sample_rate
        return np.pad(audio[:samples], (0, max(0, samples - len(audio))))

    def embed(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        """(n_seconds, dim) rows of each loaded clip; clips of equal length share one transform.

        Batching changes no bit: each clip's spectrogram is computed on its own row.
        """
        out: list[np.ndarray | None] = [None] * len(batch)
        lengths: dict[int, list[int]] = {}
        for i, audio in enumerate(batch):
            lengths.setdefault(len(audio), []).append(i)
        for length, members in lengths.items():
            stacked = torch.from_numpy(np.stack([batch[i] for i in members]))
            features = self._features(stacked, length // self.sample_rate)
            for i, rows in zip(members, features, strict=True):
                out[i] = rows
        return out

    def embed_seconds(self, path: str | Path, n_seconds: int) -> np.ndarray:
        return self.embed([self.load(path, n_seconds)])[0]

    def _features(self, audio: torch.Tensor, n_seconds: int) -> np.ndarray:
        """(clips, n_seconds, dim) features of (clips, samples) audio."""
        with torch.inference_mode():
            logmel = torch.log(self.mel(audio) + LOG_FLOOR)
        clips, per_second = len(audio), self.sample_rate // self.hop_length
        frames = logmel[:, :, : n_seconds * per_second].reshape(
            clips, self.n_mels, n_seconds, per_second
        )
        slices = frames.reshape(clips, self.n_mels, n_seconds, self.segments, -1).mean(dim=4)
        means = slices.permute(0, 2, 3, 1).reshape(clips, n_seconds, self.segments * self.n_mels)
        spread = frames.std(dim=3).permute(0, 2, 1)
        return torch.cat([means, spread], dim=2).numpy().astype(np.float32)
