"""Fusion of per-modality features, given as a dict from modality name to `(..., dim)` tensor.

>>> import torch
>>> features = {"audio": torch.ones(2, 3), "visual": torch.ones(2, 5)}
>>> ConcatFusion({"audio": 3, "visual": 5})(features).shape
torch.Size([2, 8])
>>> GatedFusion({"audio": 3, "visual": 5}, out_dim=4)(features).shape
torch.Size([2, 4])
"""

from __future__ import annotations

import torch
from torch import nn


def _check(features: dict[str, torch.Tensor], dims: dict[str, int], names: list[str]) -> None:
    for name in names:
        if name not in features:
            raise KeyError(f"fusion needs modality {name!r}; got {sorted(features)}")
        if features[name].shape[-1] != dims[name]:
            raise ValueError(f"{name}: expected {dims[name]} features, got {features[name].shape}")


class ConcatFusion(nn.Module):
    """Concatenation in the order of `dims` (modality -> feature size); `out_dim` is the sum."""

    def __init__(self, dims: dict[str, int]) -> None:
        super().__init__()
        self.dims = dict(dims)
        self.out_dim = sum(self.dims.values())

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        _check(features, self.dims, list(self.dims))
        return torch.cat([features[name] for name in self.dims], dim=-1)


class GatedFusion(nn.Module):
    """Additive gated fusion: `sum_m gate_m * W_m x_m`, with `W_m` a linear projection to
    `out_dim` and `gate_m = sigmoid(g_m)` a learned scalar in (0, 1) (0.5 at initialisation).

    `close(m)` sets modality `m`'s gate to exactly 0: its term is left out of the sum, so its
    features are not needed and the output equals the path through the open modalities alone.
    The open/closed state is a buffer, saved with the weights.

    >>> fusion = GatedFusion({"audio": 2, "visual": 2}, out_dim=2)
    >>> fusion.close("visual")
    >>> fusion.gates()
    {'audio': 0.5, 'visual': 0.0}
    >>> fusion({"audio": torch.ones(1, 2)}).shape
    torch.Size([1, 2])
    """

    def __init__(self, dims: dict[str, int], out_dim: int) -> None:
        super().__init__()
        self.dims = dict(dims)
        self.out_dim = out_dim
        self.projections = nn.ModuleDict({name: nn.Linear(d, out_dim) for name, d in dims.items()})
        self.gate_logits = nn.ParameterDict({name: nn.Parameter(torch.zeros(())) for name in dims})
        self.register_buffer("is_open", torch.ones(len(self.dims), dtype=torch.bool))

    def _index(self, modality: str) -> int:
        if modality not in self.dims:
            raise KeyError(f"unknown modality {modality!r}; known: {sorted(self.dims)}")
        return list(self.dims).index(modality)

    def close(self, modality: str) -> None:
        """Set the gate of `modality` to exactly 0."""
        self.is_open[self._index(modality)] = False

    def reopen(self, modality: str) -> None:
        """Give `modality` its learned gate again."""
        self.is_open[self._index(modality)] = True

    def open_modalities(self) -> list[str]:
        return [name for i, name in enumerate(self.dims) if self.is_open[i]]

    def gate(self, modality: str) -> torch.Tensor:
        """The gate value of `modality`: 0 when closed, else sigmoid of its learned logit."""
        if not self.is_open[self._index(modality)]:
            return torch.zeros((), device=self.is_open.device)
        return torch.sigmoid(self.gate_logits[modality])

    def gates(self) -> dict[str, float]:
        """Every gate's current value, for reports."""
        return {name: self.gate(name).item() for name in self.dims}

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        names = self.open_modalities()
        if not names:
            raise RuntimeError("every gate of the fusion is closed")
        _check(features, self.dims, names)
        fused = self.gate(names[0]) * self.projections[names[0]](features[names[0]])
        for name in names[1:]:
            fused = fused + self.gate(name) * self.projections[name](features[name])
        return fused
