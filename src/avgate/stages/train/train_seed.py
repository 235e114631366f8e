"""Training of one seed (run by the `train` stage) in the mode `train.finetune` names: a head on
the cached embeddings (`avgate.finetune.none`) or LoRA adapters on a pretrained audio encoder
(`avgate.finetune.lora`), both through the one loop of `avgate.training`.

This module reads the mode's inputs, hands them over with the checkpoint file and the callbacks
(an epoch bar on a terminal, dvclive logging with dvcyaml=False: the stage must not rewrite
dvc.yaml), and writes what the mode returns: models/seed<seed>/ (the weights and head.json) and
dvclive/train/seed<seed>/. The checkpoint folder (data/checkpoints/train/seed<seed>/, outside the
DVC outputs) is deleted once the model is written.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from avgate.config import Params
from avgate.files import atomic_dir, write_json
from avgate.layout.clips import usable_clips
from avgate.layout.inputs import encoder_blocks, examples, live_dir
from avgate.layout.labels import second_labels
from avgate.layout.results import DESCRIPTION, model_dir
from avgate.profiles import recorded
from avgate.training.bars import EpochBar
from avgate.training.callbacks import Callback
from avgate.training.live import DvcLiveLog

if TYPE_CHECKING:
    from avgate.finetune.lora import SplitClips

CHECKPOINTS = Path("data/checkpoints/train")
CHECKPOINT = "last.pt"


def checkpoint_path(seed: int) -> Path:
    """A seed's training state after its last epoch: a killed run resumes from it.

    >>> checkpoint_path(3).as_posix()
    'data/checkpoints/train/seed3/last.pt'
    """
    return CHECKPOINTS / f"seed{seed}" / CHECKPOINT


def callbacks(seed: int) -> list[Callback]:
    """What every seed's run reports: a bar over its epochs and its dvclive log."""
    return [DvcLiveLog(live_dir(seed)), EpochBar(f"train seed {seed}")]


def lora_clips(params: Params, split: str, labelled: bool = True) -> SplitClips:
    """The usable clips of `split` as the LoRA mode reads them, with the label of each second
    when `labelled` (never for the sealed test split)."""
    from avgate.finetune.lora import split_clips

    clips = usable_clips(params)
    labels = (lambda index: second_labels(params, index)) if labelled else None
    return split_clips(clips[clips["split"] == split], params.task.kind, labels)


def run(params: Params, seed: int) -> dict:
    """Train one seed; write models/seed<seed>/ and dvclive/train/seed<seed>/; return head.json."""
    # timings go to data/profiles: models/ and the dvclive log stay reproducible
    with recorded(f"train/seed{seed}") as profile:
        checkpoint, hooks = checkpoint_path(seed), callbacks(seed)
        if params.train.finetune == "lora":
            from avgate.finetune import lora as mode  # peft and transformers only when needed

            data = mode.Data(lora_clips(params, "train"), lora_clips(params, "val"))
            trained = mode.train(params, seed, data, checkpoint, hooks)
        else:
            from avgate.finetune import none as mode

            heads = mode.Data(examples(params, "train"), examples(params, "val"),
                              encoder_blocks(params))  # fmt: skip
            trained = mode.train(params, seed, heads, checkpoint, hooks)
        result = trained.result
        profile.update(
            samples_per_s=result.rows_per_second(),
            resumed_from_epoch=result.resumed_from_epoch,
            **trained.facts,
        )
        with atomic_dir(model_dir(seed)) as tmp:
            mode.save(trained.model, tmp)
            write_json(tmp / DESCRIPTION, trained.description)
        shutil.rmtree(checkpoint.parent, ignore_errors=True)
    return trained.description
