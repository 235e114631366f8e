"""A trained LoRA model in models/seed<k>/: the adapters and head (`ADAPTER`, written by
`save_adapter`), read back on the base weights it was trained on."""

from __future__ import annotations

from pathlib import Path

from avgate.config import Params
from avgate.errors import StageError
from avgate.finetune.lora.adapters import load_adapter, save_adapter
from avgate.finetune.lora.base import base_identity, base_model
from avgate.finetune.lora.classifier import AudioClassifier

ADAPTER = "adapter"  # models/seed<k>/adapter


def save(model: AudioClassifier, folder: Path) -> None:
    """The adapters and head into `folder / ADAPTER`."""
    save_adapter(model, folder / ADAPTER)


def load(params: Params, folder: Path, description: dict) -> AudioClassifier:
    """The classifier saved in `folder` (frozen, eval mode); refuses a base model whose weights
    differ from those it was trained on (`description`, head.json)."""
    base = base_model(params)
    model = load_adapter(base.path, folder / ADAPTER)
    identity = base_identity(base, model.encoder.get_base_model())
    if identity != description["base_identity"]:
        raise StageError(
            f"{folder}: trained on base weights {description['base_identity']}, but "
            f"embed.{base.name}.model now has {identity}; re-run `dvc repro train`"
        )
    return model.eval()
