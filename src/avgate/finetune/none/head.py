"""The head `train.head` / `train.fusion` ask for, its description in head.json, and its weights
as safetensors.

The plain MLP on concatenated features stays `MLPHead`; any other choice, or an encoder stored
with every hidden layer, is a `FusedHead` over the encoders' column blocks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from avgate.config import Params, TrainParams
from avgate.declare import fail
from avgate.models.fused import Block, rebuild_head
from avgate.models.heads import MLPHead

WEIGHTS = "head.safetensors"  # in models/seed<k>/, next to head.json


def build_head(
    train: TrainParams, blocks: list[Block], in_dim: int, n_classes: int
) -> tuple[nn.Module, dict]:
    """The untrained head and the architecture description that rebuilds it; the gates of
    `train.closed_modalities` closed (the state is a buffer: the saved weights keep it)."""
    if train.head == "mlp" and train.fusion == "concat" and all(b.n_layers == 1 for b in blocks):
        return MLPHead(in_dim, train.hidden, n_classes, train.dropout), {"kind": "mlp"}
    architecture = {
        "kind": "fused",
        "head": train.head,
        "fusion": train.fusion,
        "blocks": [b.to_dict() for b in blocks],
    }
    model = rebuild_head(architecture, in_dim, n_classes, train.hidden, train.dropout)
    modalities = sorted({b.modality for b in blocks})
    for modality in train.closed_modalities:
        if modality not in modalities:
            fail("train.closed_modalities", f"must name modalities of the inputs {modalities}",
                 train.closed_modalities)  # fmt: skip
        model.fusion.close(modality)
    return model, architecture


def save(model: nn.Module, folder: Path) -> None:
    """The head's weights (and standardisation) as `folder / WEIGHTS`."""
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / WEIGHTS)


def load(params: Params, folder: Path, description: dict) -> nn.Module:
    """The head saved in `folder` and described by `description` (head.json), in eval mode
    (`params` unused: head.json says all; the signature is every mode's)."""
    architecture = description.get("architecture", {"kind": "mlp"})
    model = rebuild_head(
        architecture, description["in_dim"], len(description["classes"]), description["hidden"], 0.0
    )
    model.load_state_dict(load_file(folder / WEIGHTS))
    return model.eval()


def predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """Raw logits of `model` for features `x`."""
    with torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
