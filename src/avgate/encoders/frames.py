"""`frames`: per-second visual statistics of decoded frames, no weights needed.

The clip's background is its per-pixel median frame; pixels that differ from it by more than
`fg_threshold` (any channel, values in [0, 1]) are foreground. Per frame: the foreground share,
its mean colour and per-channel colour histogram, the mean absolute difference from the
background in each cell of a grid x grid layout, the mean absolute change from the previous
frame, and the frame's global mean colour and per-channel spread. The frames of one second are
averaged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avgate import media
from avgate.declare import ConfigError


class FramesEncoder:
    """Frame statistics per second: dim = 3 * hist_bins + grid**2 + 11."""

    name = "frames"
    modality = "visual"

    def __init__(self, fps: int, size: int, grid: int, hist_bins: int, fg_threshold: float) -> None:
        if size % grid:
            raise ConfigError(f"params.yaml: embed.frames.grid {grid} must divide size {size}")
        self.fps = fps
        self.size = size
        self.grid = grid
        self.hist_bins = hist_bins
        self.fg_threshold = fg_threshold
        self.dim = 3 * hist_bins + grid**2 + 11

    def identity(self) -> dict:
        return {
            "encoder": self.name,
            "weights": "none (fixed statistics)",
            "fps": self.fps,
            "size": self.size,
            "grid": self.grid,
            "hist_bins": self.hist_bins,
            "fg_threshold": self.fg_threshold,
        }

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

    def embed_seconds(self, path: str | Path, n_seconds: int) -> np.ndarray:
        frames = media.decode_frames(path, self.fps, (self.size, self.size))
        frames = media.fit_length(frames, n_seconds * self.fps)
        features = self.frame_features(frames)
        return features.reshape(n_seconds, self.fps, self.dim).mean(axis=1).astype(np.float32)
