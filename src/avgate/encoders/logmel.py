"""`logmel`: per-second mean and standard deviation of a log-mel spectrogram.

The spectrogram is torchaudio's `MelSpectrogram` (Hann window, centred reflect-padded frames,
power 2, HTK mel filters without norm) computed in fewer passes: the power is re^2 + im^2 in one
fused op instead of a complex abs, and the statistics are two-pass sums instead of Welford's
`std`. It agrees with torchaudio to float32 rounding (tests/test_encoders.py) at ~2.5x the speed,
which matters because it runs next to the decoding (bench/embed.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio

from avgate import media
from avgate.declare import PARAMS_FILE, ConfigError, bound, param
from avgate.encoders.base import Encoder, fit_waveform, register, resolve_device

LOG_FLOOR = 1e-6
SUB_BATCH = 16  # clips per transform on the CPU: the intermediates stay in the cache


@dataclass(frozen=True)
class LogmelOptions:
    sample_rate: int = param(16000, "audio is resampled to this rate (Hz)", bound(">= 1"))
    n_mels: int = param(64, "mel bands", bound(">= 1"))
    n_fft: int = param(400, "FFT window in samples", bound(">= 1"))
    hop_length: int = param(160, "samples between frames; must divide sample_rate", bound(">= 1"))
    segments: int = param(
        1,
        "slices of each second averaged separately (1: mean and std only); must divide the "
        "frames of a second",
        bound(">= 1"),
    )


@register("logmel")
class LogmelEncoder(Encoder):
    """Log-mel statistics per second: the mean of each of `segments` equal slices of the second,
    then the standard deviation over the whole second; `dim` = (segments + 1) * n_mels.

    `segments: 1` summarises a second by mean and spread; more slices keep the order of sounds
    inside it, which short events such as spoken words need.
    """

    options_type = LogmelOptions
    options: LogmelOptions
    modality = "audio"
    batched = True  # `load` decodes (in DataLoader workers), `embed` transforms a batch of clips
    light = True  # the transform may run in the workers too: see stages/embed.py `in_main`

    def __init__(self, options: LogmelOptions, device: str = "cpu", name: str = "") -> None:
        super().__init__(options, device, name)
        sample_rate, hop_length = options.sample_rate, options.hop_length
        if sample_rate % hop_length:
            raise ConfigError(
                f"{PARAMS_FILE}: {self.key}.hop_length {hop_length} must divide sample_rate "
                f"{sample_rate} so that every second holds whole frames"
            )
        if (sample_rate // hop_length) % options.segments:
            raise ConfigError(
                f"{PARAMS_FILE}: {self.key}.segments {options.segments} must divide the "
                f"{sample_rate // hop_length} frames of a second"
            )
        self.segments = options.segments
        self.sample_rate = sample_rate
        self.n_mels = options.n_mels
        self.n_fft = options.n_fft
        self.hop_length = hop_length
        self.dim = (self.segments + 1) * self.n_mels
        self.device = resolve_device(device, "embed")
        self.window = torch.hann_window(self.n_fft, device=self.device)
        self.filters = (
            torchaudio.functional.melscale_fbanks(
                self.n_fft // 2 + 1, 0.0, sample_rate / 2, self.n_mels, sample_rate
            )
            .T.contiguous()
            .to(self.device)
        )  # (n_mels, bins)

    def identity(self) -> dict:
        return {
            **super().identity(),
            "weights": "none (fixed transform)",
            "torchaudio": torchaudio.__version__,
            "transform": "fused power, two-pass statistics",
        }

    def load(self, path: str | Path, n_seconds: int) -> np.ndarray:
        """The clip's audio at `sample_rate`, cut or zero-padded to `n_seconds`."""
        audio = media.decode_audio(path, self.sample_rate)
        return fit_waveform(audio, n_seconds * self.sample_rate)

    def embed(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        """(n_seconds, dim) rows of each loaded clip; clips of equal length share a transform, up
        to SUB_BATCH of them on the CPU, where larger batches fall out of the cache.

        Batching changes no bit: each clip's spectrogram is computed on its own row.
        """
        out: list[np.ndarray | None] = [None] * len(batch)
        lengths: dict[int, list[int]] = {}
        for i, audio in enumerate(batch):
            lengths.setdefault(len(audio), []).append(i)
        step = SUB_BATCH if self.device.type == "cpu" else len(batch)
        for length, same in lengths.items():
            for start in range(0, len(same), step):
                members = same[start : start + step]
                stacked = torch.from_numpy(np.stack([batch[i] for i in members]))
                features = self._features(stacked.to(self.device), length // self.sample_rate)
                for i, rows in zip(members, features, strict=True):
                    out[i] = rows
        return out

    def _features(self, audio: torch.Tensor, n_seconds: int) -> np.ndarray:
        """(clips, n_seconds, dim) features of (clips, samples) audio."""
        with torch.inference_mode():
            logmel = self.logmel(audio)
            clips, per_second = len(audio), self.sample_rate // self.hop_length
            frames = logmel[:, :, : n_seconds * per_second].reshape(
                clips, self.n_mels, n_seconds, per_second
            )
            mean = frames.mean(dim=3, keepdim=True)
            spread = (frames - mean).square_().sum(dim=3).div_(per_second - 1).sqrt_()
            if self.segments == 1:
                means = mean[..., 0].permute(0, 2, 1)
            else:
                slices = frames.reshape(clips, self.n_mels, n_seconds, self.segments, -1)
                means = slices.mean(dim=4).permute(0, 2, 3, 1)
            means = means.reshape(clips, n_seconds, self.segments * self.n_mels)
            return torch.cat([means, spread.permute(0, 2, 1)], dim=2).cpu().numpy()

    def logmel(self, audio: torch.Tensor) -> torch.Tensor:
        """(clips, n_mels, frames) natural-log mel power of (clips, samples) audio."""
        spectrum = torch.view_as_real(
            torch.stft(
                audio,
                self.n_fft,
                self.hop_length,
                window=self.window,
                center=True,
                pad_mode="reflect",
                return_complex=True,
            )
        )
        power = torch.addcmul(spectrum[..., 0].square(), spectrum[..., 1], spectrum[..., 1])
        return torch.matmul(self.filters, power).add_(LOG_FLOOR).log_()
