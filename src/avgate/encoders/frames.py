"""`frames`: per-second visual statistics of decoded frames, no weights needed.

The clip's background is its per-pixel median frame; pixels that differ from it by more than
`fg_threshold` (any channel, values in [0, 1]) are foreground. Per frame: the foreground share,
its mean colour and per-channel colour histogram, the mean absolute difference from the
background in each cell of a grid x grid layout, the mean absolute change from the previous
frame, the frame's global mean colour and per-channel spread, and the foreground's fine detail:
the mean absolute brightness difference between foreground pixels 1 and 2 pixels apart along
rows, columns and both diagonals (8 numbers: lines give large differences across them and none
along them, flat colour none at all). The frames of one second are averaged. Every count is a
share or a mean, so the same options at any `size` give the same `dim`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avgate import media
from avgate.declare import PARAMS_FILE, ConfigError, bound, param
from avgate.encoders.base import Encoder, register

DETAIL_STEPS = ((0, 1), (1, 0), (1, 1), (1, -1))  # (rows, columns): along rows, columns, diagonals
DETAIL_LAGS = (1, 2)  # pixels apart


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
    """Frame statistics per second: dim = 3 * hist_bins + grid**2 + 19. No model: each DataLoader
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
        self.dim = 3 * self.hist_bins + self.grid**2 + 11 + len(DETAIL_STEPS) * len(DETAIL_LAGS)

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
                detail(pixels.mean(axis=3), foreground),
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


def detail(brightness: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """Fine oriented detail of (n, height, width) frames: for each step of DETAIL_STEPS at each
    lag of DETAIL_LAGS, the mean absolute brightness difference over the pairs of pixels that
    far apart in that direction that are both foreground (0 where there are none); (n, 8)."""
    columns = []
    for lag in DETAIL_LAGS:
        for rows, cols in DETAIL_STEPS:
            here, there = _pairs(rows * lag, cols * lag)
            both = foreground[here] & foreground[there]
            gap = np.abs(brightness[here] - brightness[there]) * both
            columns.append(gap.sum(axis=(1, 2)) / np.maximum(both.sum(axis=(1, 2)), 1))
    return np.stack(columns, axis=1)


def _pairs(rows: int, cols: int) -> tuple[tuple, tuple]:
    """Indices (here, there) such that frames[there] lies `rows` down and `cols` right of
    frames[here], pixel for pixel."""
    (row_here, row_there), (col_here, col_there) = _span(rows), _span(cols)
    return (..., row_here, col_here), (..., row_there, col_there)


def _span(step: int) -> tuple[slice, slice]:
    """Slices (a, b) of one axis such that element i of b lies `step` after element i of a."""
    if step >= 0:
        return slice(None, -step or None), slice(step, None)
    return slice(-step, None), slice(None, step)
