"""Trainable heads on fused embeddings.

>>> import torch
>>> head = MLPHead(in_dim=4, hidden=8, n_classes=3, dropout=0.0)
>>> head(torch.zeros(2, 4)).shape
torch.Size([2, 3])
"""

from __future__ import annotations

import torch
from torch import nn


def set_standardisation(module: nn.Module, x: torch.Tensor) -> None:
    """Fill `module`'s `mean` and `scale` buffers from training features `x` (n, d); constant
    features get scale 1."""
    std = x.std(dim=0)
    module.mean.copy_(x.mean(dim=0))
    module.scale.copy_(torch.where(std > 0, std, torch.ones_like(std)))


class MLPHead(nn.Module):
    """Standardise features with training statistics, then Linear-ReLU-Dropout-Linear.

    The standardisation statistics are buffers, so they are saved with the weights.
    """

    def __init__(self, in_dim: int, hidden: int, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("scale", torch.ones(in_dim))
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )

    def set_standardisation(self, x: torch.Tensor) -> None:
        """Take mean and scale from the training features (constant features get scale 1)."""
        set_standardisation(self, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.scale)
