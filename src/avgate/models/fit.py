"""Mini-batch training of a classification head with early stopping on validation loss."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from avgate.numerics import pin_torch


@dataclass(frozen=True)
class FitConfig:
    lr: float
    weight_decay: float
    batch_size: int
    max_epochs: int
    patience: int
    seed: int
    selection_metric: str = "val_loss"  # or "val_accuracy": what picks the epoch to keep


SELECTION_METRICS = {"val_loss": -1.0, "val_accuracy": 1.0}  # sign: +1 maximise, -1 minimise


@dataclass(frozen=True)
class FitResult:
    best_epoch: int
    best_val_loss: float
    best_selection_value: float
    epochs_run: int
    resumed_from_epoch: int = 0


def pin_determinism(seed: int, num_threads: int) -> None:
    """Same seed, same params -> bit-identical results on CPU, on any x86-64 machine when the
    process pinned its kernels first (`avgate.numerics`).

    Deterministic-algorithm mode only changes CUDA kernels, and switching it on imports
    torch._inductor (1.7 s a stage), so it is set only where CUDA is present.
    """
    torch.manual_seed(seed)
    pin_torch(num_threads)
    if torch.cuda.is_available():
        torch.use_deterministic_algorithms(True)


def evaluate_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on (x, y), in eval mode."""
    model.eval()
    with torch.inference_mode():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    return loss, accuracy


@dataclass(frozen=True)
class Checkpointing:
    """Where `fit` saves its state after every epoch, and the key a saved state must carry to
    be resumed (a fingerprint of everything that decides the run)."""

    path: Path
    key: str


def _save_state(checkpoint: Checkpointing, state: dict) -> None:
    checkpoint.path.parent.mkdir(parents=True, exist_ok=True)
    temp = checkpoint.path.with_name(f".{checkpoint.path.name}.tmp")
    torch.save(state, temp)
    os.replace(temp, checkpoint.path)


def _load_state(checkpoint: Checkpointing | None) -> dict | None:
    if checkpoint is None or not checkpoint.path.exists():
        return None
    state = torch.load(checkpoint.path, weights_only=False)
    return state if state.get("key") == checkpoint.key else None


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    config: FitConfig,
    on_epoch: Callable[[int, dict[str, float]], None] = lambda epoch, logs: None,
    checkpoint: Checkpointing | None = None,
) -> FitResult:
    """Train with Adam; keep the weights of the epoch with the best `config.selection_metric`
    (lowest validation loss, or highest validation accuracy; ties keep the earlier epoch).

    Stops after `patience` epochs without improvement. Batches are shuffled by a generator seeded
    from `config.seed`, so the same seed gives the same weights. With `checkpoint`, the whole
    state (weights, optimiser, random generators, best epoch, the epochs' logs) is saved after
    every epoch, and a saved state with the same key is resumed: `on_epoch` is replayed for the
    epochs already run, and the result equals an uninterrupted run's.
    """
    generator = torch.Generator().manual_seed(config.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    x, y = train
    sign = SELECTION_METRICS[config.selection_metric]
    best, best_loss, best_epoch = -float("inf"), float("inf"), 0
    best_state = copy.deepcopy(model.state_dict())
    history: list[dict[str, float]] = []
    start = 1
    saved = _load_state(checkpoint)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        best, best_loss, best_epoch = saved["best"], saved["best_loss"], saved["best_epoch"]
        best_state, history = saved["best_state"], saved["history"]
        for epoch, logs in enumerate(history, start=1):
            on_epoch(epoch, logs)
        start = len(history) + 1
    stopped = start > 1 and start - 1 - best_epoch >= config.patience
    for epoch in range(start, config.max_epochs + 1):
        if stopped:
            break
        model.train()
        total = 0.0
        for batch in torch.randperm(len(x), generator=generator).split(config.batch_size):
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        val_loss, val_accuracy = evaluate_loss(model, *val)
        logs = {"train_loss": total / len(x), "val_loss": val_loss, "val_accuracy": val_accuracy}
        history.append(logs)
        on_epoch(epoch, logs)
        if sign * logs[config.selection_metric] > best:
            best, best_loss, best_epoch = sign * logs[config.selection_metric], val_loss, epoch
            best_state = copy.deepcopy(model.state_dict())
        else:
            stopped = epoch - best_epoch >= config.patience
        if checkpoint is not None:
            _save_state(
                checkpoint,
                {
                    "key": checkpoint.key,
                    "model": model.state_dict(),
                    "optimiser": optimiser.state_dict(),
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "best": best,
                    "best_loss": best_loss,
                    "best_epoch": best_epoch,
                    "best_state": best_state,
                    "history": history,
                },
            )
    model.load_state_dict(best_state)
    return FitResult(
        best_epoch, best_loss, sign * best, epochs_run=len(history), resumed_from_epoch=start - 1
    )
