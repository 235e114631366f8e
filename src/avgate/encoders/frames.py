"""`frames`: per-second visual statistics of decoded frames, no weights needed.

The clip's background is its per-pixel median frame; pixels that differ from it by more than
`fg_threshold` (any channel, values in [0, 1]) are foreground. Per frame: the foreground share,
its mean colour and per-channel colour histogram, the mean absolute difference from the
background in each cell of a grid x grid layout, the mean absolute change from the previous
frame, and the frame's global mean colour and per-channel spread. The frames of one second are
averaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avgate import media
from avgate.declare import PARAMS_FILE, ConfigError, bound, param
from avgate.encoders.base import Encoder, register


@dataclass(frozen=True)
class FramesOptions:
    fps: int = param(4, "frames read per second", bound(">= 1"))
    size: int = param(32, "frames resized to size x size pixels", bound(">= 1"))
    grid: int = param(
        4, "grid x grid cells of the foreground layout; must divide size", bound(">= 1")
    )
    hist_bins: int = param(8, "colour histogram bins per channel", bound(">= 1"))
    fg_threshold: float = param(
        0.15, "a pixel this far from the clip's median frame is foreground", bound("[0, 1]")
    )


@register("frames")
class FramesEncoder(Encoder):
    """Frame statistics per second: dim = 3 * hist_bins + grid**2 + 11. No model: each DataLoader
    worker decodes and summarises whole clips."""

    options_type = FramesOptions
    options: FramesOptions
    modality = "visual"

    def __init__(self, options: FramesOptions, device: str = "cpu", name: str = "") -> None:
        super().__init__(options, device, name)
        if options.size % options.grid:
            raise ConfigError(
                f"{PARAMS_FILE}: {self.key}.grid {options.grid} must divide size {options.size}"
            )
        self.fps = options.fps
        self.size = options.size
        self.grid = options.grid
        self.hist_bins = options.hist_bins
        self.fg_threshold = options.fg_threshold
        self.dim = 3 * self.hist_bins + self.grid**2 + 11

    def identity(self) -> dict:
        return {**super().identity(), "weights": "none (fixed statistics)"}

    def frame_features(self, frames: np.ndarray) -> np.ndarray:
        """Features of each frame of a uint8 (n, size, size, 3) clip: float32 (n, dim)."""
        n, area = len(frames), self.size * self.size
        pixels = frames.astype(np.float32) / 255.0
        difference = np.abs(pixels - np.median(pixels, axis=0))
        foreground = difference.max(axis=3) > self.fg_threshold
        share = foreground.mean(axis=(1, 2))
        colour_sum = (pixels * foreground[..., None]).sum(axis=(1, 2))
        colour = colour_sum / np.maximum(foreground.sum(axis=(1, 2)), 1)[:, None]
        bins = np.minimum((pixels * self.hist_bins).astype(np.int64), self.hist_bins - 1)
        histogram = np.zeros((n, 3, self.hist_bins), dtype=np.float32)
        for c in range(3):
            for i in range(n):
                counts = np.bincount(bins[i, ..., c][foreground[i]], minlength=self.hist_bins)
                histogram[i, c] = counts / area
        cell = self.size // self.grid
        layout = difference.mean(axis=3).reshape(n, self.grid, cell, self.grid, cell)
        previous = np.concatenate([pixels[:1], pixels[:-1]])
        motion = np.abs(pixels - previous).mean(axis=(1, 2, 3))
        return np.concatenate(
            [
                share[:, None],
                colour,
                histogram.reshape(n, -1),
                layout.mean(axis=(2, 4)).reshape(n, -1),
                motion[:, None],
                pixels.mean(axis=(1, 2)),
                pixels.std(axis=(1, 2)),
            ],
            axis=1,
        )

    def load(self, path: str | Path, n_seconds: int) -> np.ndarray:
        """uint8 frames (n_seconds * fps, size, size, 3), the last repeated or cut to fit."""
        frames = media.decode_frames(path, self.fps, (self.size, self.size))
        return media.fit_length(frames, n_seconds * self.fps)

    def embed(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        """Each clip's frame features averaged per second: float32 (n_seconds, dim)."""
        return [
            self.frame_features(frames)
            .reshape(len(frames) // self.fps, self.fps, self.dim)
            .mean(axis=1)
            .astype(np.float32)
            for frames in batch
        ]
