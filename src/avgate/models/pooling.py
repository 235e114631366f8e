"""Trainable pieces that turn encoder outputs into class scores: pooling over time, learned
weighting of layers, and a linear head.

Pooling takes frames `(batch, time, dim)` and an optional `mask` `(batch, time)` that is true
for real frames and false for padding; every row of a mask needs at least one real frame.

>>> import torch
>>> frames = torch.randn(2, 5, 8)
>>> LinearHead(8, 3)(AttentionPooling(8)(frames)).shape
torch.Size([2, 3])
"""

from __future__ import annotations

import torch
from torch import nn


class MeanPooling(nn.Module):
    """Mean over time of the real frames: `(B, T, D) -> (B, D)`.

    >>> x = torch.tensor([[[1.0], [3.0], [100.0]]])
    >>> MeanPooling()(x, mask=torch.tensor([[True, True, False]]))
    tensor([[2.]])
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return x.mean(dim=-2)
        weights = mask.to(x.dtype).unsqueeze(-1)
        return (x * weights).sum(dim=-2) / weights.sum(dim=-2)


class AttentionPooling(nn.Module):
    """Weighted mean over time, the weights a softmax of a learned linear score per frame:
    `(B, T, D) -> (B, D)`. The score starts at zero, so at initialisation this is the mean.

    >>> x = torch.tensor([[[1.0, 0.0], [3.0, 2.0]]])
    >>> AttentionPooling(2)(x)
    tensor([[2., 1.]], grad_fn=<SumBackward1>)
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def weights(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attention weights `(B, T)`, zero on padding, summing to 1 over time."""
        scores = self.score(x).squeeze(-1)
        if mask is not None:
            scores = scores.masked_fill(~mask.bool(), float("-inf"))
        return scores.softmax(dim=-1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return (self.weights(x, mask).unsqueeze(-1) * x).sum(dim=-2)


class LayerWeightedSum(nn.Module):
    """Softmax-weighted sum of stacked layer outputs: `(..., n_layers * layer_dim)` laid out
    layer-major (layer 0's features first) `-> (..., layer_dim)`.

    The weights start equal, so at initialisation the output is the mean of the layers.

    >>> x = torch.tensor([[1.0, 2.0, 3.0, 6.0]])  # layer 0 = [1, 2], layer 1 = [3, 6]
    >>> LayerWeightedSum(n_layers=2, layer_dim=2)(x)
    tensor([[2., 4.]], grad_fn=<ViewBackward0>)
    """

    def __init__(self, n_layers: int, layer_dim: int) -> None:
        super().__init__()
        self.n_layers, self.layer_dim = n_layers, layer_dim
        self.logits = nn.Parameter(torch.zeros(n_layers))

    def layer_weights(self) -> torch.Tensor:
        """The current weight of each layer (non-negative, summing to 1)."""
        return self.logits.softmax(dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.n_layers * self.layer_dim:
            raise ValueError(
                f"expected {self.n_layers} layers x {self.layer_dim} features = "
                f"{self.n_layers * self.layer_dim} in the last dimension, got {x.shape[-1]}"
            )
        layers = x.unflatten(-1, (self.n_layers, self.layer_dim))
        return torch.einsum("...ld,l->...d", layers, self.layer_weights())


class LinearHead(nn.Module):
    """One linear layer from pooled features to class logits: `(..., in_dim) -> (..., n_classes)`.

    >>> LinearHead(4, 3)(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
    """

    def __init__(self, in_dim: int, n_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)
