"""The pretrained encoder LoRA adapts: the `embed.<train.lora.encoder>` section's hf-audio model,
its loading, and the identity of its weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transformers import PreTrainedModel

from avgate.config import Params
from avgate.declare import PARAMS_FILE, ConfigError
from avgate.encoders.hf_audio import HFAudioEncoder
from avgate.encoders.hf_common import weights_identity
from avgate.finetune.lora.classifier import load_encoder


@dataclass(frozen=True)
class Base:
    """The pretrained encoder: its `embed` section name and its hub id or local folder."""

    name: str
    source: str
    revision: str

    @property
    def path(self) -> Path:
        return Path(self.source)


def base_model(params: Params) -> Base:
    """The `embed.<train.lora.encoder>` section's hf_audio model; ConfigError otherwise."""
    name = params.train.lora.encoder
    options = HFAudioEncoder.options_in(params.embed.encoders, params.embed.sections, name)
    if options.revision != "main":
        raise ConfigError(
            f"{PARAMS_FILE}: train.lora.encoder {name!r}: embed.{name}.revision "
            f"{options.revision!r} cannot be pinned for fine-tuning; save that revision to a "
            "local folder and name it"
        )
    return Base(name, options.model, options.revision)


def load_base(base: Base) -> PreTrainedModel:
    """The base encoder in float32; a load failure names the params key."""
    try:
        return load_encoder(base.path)
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(
            f"{PARAMS_FILE}: embed.{base.name}.model (train.lora.encoder) {base.source!r} "
            f"could not be loaded: {error}"
        ) from error


def base_identity(base: Base, encoder: PreTrainedModel) -> dict:
    """What identifies the base weights (hash of a local folder's weight files, or hub id)."""
    return weights_identity(
        base.source, base.revision, getattr(encoder.config, "_commit_hash", None)
    )
