"""Mini-batch training of a classification head with early stopping on validation loss."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


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


def pin_determinism(seed: int, num_threads: int) -> None:
    """Same seed, same params, same machine -> bit-identical results on CPU.

    Deterministic-algorithm mode only changes CUDA kernels, and switching it on imports
    torch._inductor (1.7 s a stage), so it is set only where CUDA is present.
    """
    torch.manual_seed(seed)
    torch.set_num_threads(num_threads)
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


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    config: FitConfig,
    on_epoch: Callable[[int, dict[str, float]], None] = lambda epoch, logs: None,
) -> FitResult:
    """Train with Adam; keep the weights of the epoch with the best `config.selection_metric`
    (lowest validation loss, or highest validation accuracy; ties keep the earlier epoch).

    Stops after `patience` epochs without improvement. Batches are shuffled by a generator seeded
    from `config.seed`, so the same seed gives the same weights.
    """
    generator = torch.Generator().manual_seed(config.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    x, y = train
    sign = SELECTION_METRICS[config.selection_metric]
    best, best_loss, best_epoch = -float("inf"), float("inf"), 0
    best_state = copy.deepcopy(model.state_dict())
    epoch = 0
    for epoch in range(1, config.max_epochs + 1):
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
        on_epoch(epoch, logs)
        if sign * logs[config.selection_metric] > best:
            best, best_loss, best_epoch = sign * logs[config.selection_metric], val_loss, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    return FitResult(best_epoch, best_loss, sign * best, epochs_run=epoch)
