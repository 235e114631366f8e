"""`SecondsData`: the per-second rows an eventness method fits on and scores.

>>> data = SecondsData(
...     clip_ids=np.array(["b", "a", "a"]),
...     seconds=np.array([0, 1, 0]),
...     audio=np.zeros((3, 2)),
...     labels=np.array(["background", "dog", "background"]),
... )
>>> data.events().tolist(), [rows.tolist() for rows in clip_rows(data.clip_ids, data.seconds)]
([False, True, False], [[2, 1], [0]])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

BACKGROUND = "background"


@dataclass(frozen=True, eq=False)
class SecondsData:
    """One row per (clip, second), in any order.

    `clip_ids` (n,) and `seconds` (n,) name the rows (each pair once); `audio` (n, d_audio) and
    `visual` (n, d_visual) are finite per-second embeddings (the embed stage's rows, e.g. the
    log-mel means and spreads of each second); `labels` (n,) the per-second labels, `background`
    where no event sounds. Methods that need visual rows or labels ask for them through
    `visual_rows` and `events`, which name what is missing.
    """

    clip_ids: np.ndarray
    seconds: np.ndarray
    audio: np.ndarray
    visual: np.ndarray | None = None
    labels: np.ndarray | None = None
    background: str = BACKGROUND

    def __post_init__(self) -> None:
        n = len(self.clip_ids)
        if self.audio.ndim != 2:
            raise ValueError(f"audio must be (rows, features), got shape {self.audio.shape}")
        if self.visual is not None and self.visual.ndim != 2:
            raise ValueError(f"visual must be (rows, features), got shape {self.visual.shape}")
        sizes = {"seconds": self.seconds, "audio": self.audio, "visual": self.visual,
                 "labels": self.labels}  # fmt: skip
        for field, values in sizes.items():
            if values is not None and len(values) != n:
                raise ValueError(f"{field} has {len(values)} rows, clip_ids {n}")
        for field in ("audio", "visual"):
            values = getattr(self, field)
            if values is not None and not np.isfinite(values).all():
                rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
                raise ValueError(
                    f"{field} holds NaN or Inf in {len(rows)} rows, the first of clip "
                    f"{str(self.clip_ids[rows[0]])!r} second {self.seconds[rows[0]]}"
                )
        pairs = pd.MultiIndex.from_arrays([self.clip_ids, self.seconds])
        if pairs.has_duplicates:
            clip, second = pairs[pairs.duplicated()][0]
            raise ValueError(f"clip {str(clip)!r} second {second} appears more than once")

    def events(self) -> np.ndarray:
        """(n,) bool: the rows whose label is not `background`."""
        if self.labels is None:
            raise ValueError("these rows carry no labels; fitting this method needs them")
        return np.asarray(self.labels) != self.background

    def visual_rows(self) -> np.ndarray:
        """The visual features; ValueError when the rows carry none."""
        if self.visual is None:
            raise ValueError("these rows carry no visual features; this method needs them")
        return self.visual


def clip_rows(clip_ids: np.ndarray, seconds: np.ndarray) -> list[np.ndarray]:
    """Row indices of each clip in time order, clips in sorted id order."""
    _, codes = np.unique(np.asarray(clip_ids), return_inverse=True)
    order = np.lexsort((np.asarray(seconds), codes))
    starts = np.flatnonzero(np.diff(codes[order])) + 1
    return np.split(order, starts)
