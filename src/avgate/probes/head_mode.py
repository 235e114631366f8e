"""What the probes that train a head share (`overfit`, `resume`, `efficiency`): the head mode's
inputs as the train stage hands them over, params changed for a probe's run, and how a trained
head scores a split. They train through `avgate.finetune.none` and its one loop, never a loop of
their own; a LoRA run (`train.finetune: lora`) re-encodes the audio every epoch, too costly for a
probe, so they do not apply to it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from avgate.config import Params
from avgate.finetune.none import Data, predict
from avgate.layout.inputs import Examples, encoder_blocks, examples
from avgate.training.labels import encode
from avgate.training.tensors import loss_and_accuracy


def not_head_mode(params: Params) -> str | None:
    """Why a head-training probe does not apply (a LoRA run), or None."""
    if params.train.finetune == "none":
        return None
    return (
        f"train.finetune is {params.train.finetune}: this probe trains heads on cached embeddings "
        "(finetune: none); a LoRA run re-encodes the audio every epoch, too costly for a probe"
    )


def head_data(params: Params) -> Data:
    """The train and val rows and the column blocks, as the train stage reads them."""
    return Data(examples(params, "train"), examples(params, "val"), encoder_blocks(params))


def with_train(params: Params, **changes: Any) -> Params:
    """`params` with `train.<key>` replaced by each of `changes` (unchecked: a probe may set
    `patience` to `max_epochs`, which no params.yaml holds)."""
    return dataclasses.replace(params, train=dataclasses.replace(params.train, **changes))


def scores(model: torch.nn.Module, rows: Examples, classes: list[str]) -> dict[str, float]:
    """Mean cross-entropy (`loss`) and accuracy of `model` (eval mode) on `rows`."""
    logits = torch.from_numpy(predict(model.eval(), rows.x))
    plain = loss_and_accuracy(logits, encode(rows.labels, classes, "probe"))
    return {"loss": plain["val_loss"], "accuracy": plain["val_accuracy"]}
