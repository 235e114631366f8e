"""`energy`: how loud each second is, from declared columns of the audio rows; no training.

The second's log-energy is the mean of `columns` = [start, stop) of its audio row: for `logmel`
rows, [0, n_mels] (with `segments` > 1: [0, segments * n_mels]) are the per-second means of the
log-mel bands, so their mean is the second's mean log-mel power. With `onset`, the score adds the
rise from the clip's previous second, max(0, e[t] - e[t-1]) (0 at a clip's first second): the
first second of an event then outranks its loud middle, which puts a top-1 anchor on the
onset; without it (the default) every loud second scores alike, which suits events lasting
several seconds, as on AVE.

>>> data = SecondsData(np.array(["a"] * 3), np.arange(3), np.array([[0.0, 9], [2, 9], [2, 9]]))
>>> Energy(EnergyOptions(columns=[0, 1])).score(data).tolist()
[0.0, 2.0, 2.0]
>>> Energy(EnergyOptions(columns=[0, 1], onset=True)).score(data).tolist()
[0.0, 4.0, 2.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avgate.declare import Rule, param
from avgate.eventness.base import EventnessMethod, register
from avgate.eventness.data import SecondsData, clip_rows

COLUMN_RANGE = Rule(
    "empty, or [start, stop] with 0 <= start < stop",
    "be empty or [start, stop] with 0 <= start < stop",
    lambda value: not value or (len(value) == 2 and 0 <= value[0] < value[1]),
)


@dataclass(frozen=True)
class EnergyOptions:
    columns: list[int] = param(
        [],
        "[start, stop): the audio columns averaged into a second's log-energy (empty: all); "
        "logmel: [0, n_mels]",
        COLUMN_RANGE,
    )
    onset: bool = param(False, "add the rise in energy from the clip's previous second")


@register("energy")
class Energy(EventnessMethod):
    """Mean of the declared audio columns, plus the onset rise when asked."""

    options_type = EnergyOptions
    options: EnergyOptions

    def fit(self, train: SecondsData) -> None:
        """Nothing to learn."""

    def score(self, data: SecondsData) -> np.ndarray:
        energy = self.log_energy(data.audio)
        if not self.options.onset:
            return energy
        rise = np.zeros_like(energy)
        for rows in clip_rows(data.clip_ids, data.seconds):
            rise[rows[1:]] = np.maximum(np.diff(energy[rows]), 0.0)
        return energy + rise

    def log_energy(self, audio: np.ndarray) -> np.ndarray:
        """(n,) mean of the declared columns of each row."""
        start, stop = self.options.columns or (0, audio.shape[1])
        if stop > audio.shape[1]:
            raise ValueError(
                f"eventness.energy.columns {self.options.columns} reach past the "
                f"{audio.shape[1]} audio feature columns"
            )
        return audio[:, start:stop].astype(np.float64).mean(axis=1)
