"""Encoder registry: a name in `embed.encoders` -> an object that embeds each second of a clip.

Every encoder has `name`, `modality` ('audio' or 'visual'), `dim`, `identity()` (what goes into
the cache's meta.json) and `embed_seconds(path, n_seconds) -> float32 array (n_seconds, dim)`.

>>> from avgate.config import EmbedParams
>>> build("logmel", EmbedParams()).dim
128
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from avgate.config import ConfigError, EmbedParams
from avgate.encoders.frames import FramesEncoder
from avgate.encoders.logmel import LogmelEncoder


class Encoder(Protocol):
    name: str
    modality: str
    dim: int

    def identity(self) -> dict: ...

    def embed_seconds(self, path: str | Path, n_seconds: int) -> np.ndarray: ...


REGISTRY: dict[str, Callable[[EmbedParams], Encoder]] = {
    "logmel": lambda p: LogmelEncoder(**vars(p.logmel)),
    "frames": lambda p: FramesEncoder(**vars(p.frames)),
}


def build(name: str, params: EmbedParams) -> Encoder:
    """The encoder called `name`, configured from the `embed` params section."""
    if name not in REGISTRY:
        raise ConfigError(
            f"params.yaml: embed.encoders names unknown encoder {name!r}; known: {sorted(REGISTRY)}"
        )
    return REGISTRY[name](params)
