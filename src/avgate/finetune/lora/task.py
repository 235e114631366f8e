"""LoRA fine-tuning as a task of the one loop: batches of whole clips in an order drawn from the
loop's generator, cross-entropy over their windows (bfloat16 autocast on CUDA when asked),
AdamW over the adapters and the head, validation over every val window.

A checkpoint holds the trainable weights and the buffers only: the frozen base weights come
from the base checkpoint, which the run's fingerprint pins.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from avgate.finetune.lora.classifier import AudioClassifier
from avgate.finetune.lora.clips import Batch, ClipWindows, loader, window_logits
from avgate.training.task import Task


class LoraTask(Task):
    """`model` (adapters and head trainable) on the clips of `train`, validated on `val`;
    `clip_ids` names each split's clips for error messages."""

    lr_key = "train.lora.lr"
    weight_decay = 0.01  # AdamW's default, recorded in head.json

    def __init__(
        self,
        model: AudioClassifier,
        train: ClipWindows,
        val: ClipWindows,
        clip_ids: dict[str, np.ndarray],
        lr: float,
        batch_clips: int,
        workers: int,
        amp: bool,
        device: torch.device,
    ) -> None:
        self.model, self.train, self.val, self.clip_ids = model, train, val, clip_ids
        self.lr, self.batch_clips, self.workers = lr, batch_clips, workers
        self.amp, self.device = amp and device.type == "cuda", device
        self.val_logits = self.val_targets = torch.zeros(0)

    def optimiser(self) -> torch.optim.Optimizer:
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.AdamW(trainable, lr=self.lr, weight_decay=self.weight_decay)

    def batches(self, generator: torch.Generator) -> DataLoader:
        order = torch.randperm(len(self.train), generator=generator).tolist()
        return loader(self.train, self.batch_clips, self.workers, order)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def loss(self, batch: Batch) -> torch.Tensor:
        x, y, _ = batch
        with self._autocast():
            logits = self.model(x.to(self.device))
            return nn.functional.cross_entropy(logits, y.to(self.device))

    def rows(self, batch: Batch) -> int:
        return len(batch[1])

    def validate(self) -> dict[str, float]:
        batches = loader(self.val, self.batch_clips, self.workers)
        self.val_logits, self.val_targets = window_logits(self.model, batches, self.device)
        loss = nn.functional.cross_entropy(self.val_logits, self.val_targets).item()
        accuracy = (self.val_logits.argmax(dim=1) == self.val_targets).float().mean().item()
        return {"val_loss": loss, "val_accuracy": accuracy}

    def describe(self, split: str, batch: Batch | None) -> str:
        clips = self.clip_ids[split]
        shown = clips if batch is None else clips[batch[2].numpy()]
        more = ", ..." if len(shown) > 5 else ""
        return f"{split} clips {', '.join(map(str, shown[:5]))}{more}"

    def blame(self, split: str, batch: Batch | None) -> str:
        """For validation, the clips of the windows whose loss is not finite."""
        if split != "val" or batch is not None or not len(self.val_logits):
            return self.describe(split, batch)
        losses = nn.functional.cross_entropy(self.val_logits, self.val_targets, reduction="none")
        windows = (~torch.isfinite(losses)).nonzero().flatten().numpy()
        clip_of_window = np.repeat(np.arange(len(self.val)), self.val.seconds)
        positions = np.unique(clip_of_window[windows]) if len(windows) else np.arange(len(self.val))
        return self.describe(split, (torch.zeros(0), torch.zeros(0), torch.from_numpy(positions)))

    def state(self) -> dict[str, torch.Tensor]:
        """Trainable parameters and buffers: what training can change."""
        keep = {n for n, p in self.model.named_parameters() if p.requires_grad}
        keep |= {n for n, _ in self.model.named_buffers()}
        return {k: v for k, v in self.model.state_dict().items() if k in keep}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Put a `state()` into the model; RuntimeError if it does not fit."""
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        trainable = {n for n, p in self.model.named_parameters() if p.requires_grad}
        if unexpected or trainable & set(missing):
            raise RuntimeError(
                f"the saved state does not fit the model: unexpected {unexpected}, "
                f"missing trainable {sorted(trainable & set(missing))}"
            )
