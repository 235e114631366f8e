"""A head over several encoders' embeddings: per-encoder layer weighting, fusion, classifier.

The input is the fused feature row the stages build (each encoder's columns side by side; for
clip tasks the seconds' means then their maxima). `Block`s say which columns belong to which
encoder, its modality, and, for encoders stored with every hidden layer, the layer layout, which
a `LayerWeightedSum` reduces to one vector. Blocks are then fused by concatenation or by
`GatedFusion` (one learned gate per modality), and classified by an MLP or a linear layer.
Inputs are standardised with training statistics kept as buffers, as in `MLPHead`.

>>> blocks = [Block("logmel", "audio", ((0, 4),)), Block("frames", "visual", ((4, 6),))]
>>> head = FusedHead(blocks, n_classes=3, head="linear", fusion="gated", hidden=8, dropout=0.0)
>>> head(torch.zeros(2, 6)).shape
torch.Size([2, 3])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from avgate.models.fusion import ConcatFusion, GatedFusion
from avgate.models.heads import MLPHead, set_standardisation
from avgate.models.pooling import LayerWeightedSum, LinearHead


@dataclass(frozen=True)
class Block:
    """One encoder's columns: `spans` of (start, stop), `n_layers` > 1 for stacked layers."""

    encoder: str
    modality: str
    spans: tuple[tuple[int, int], ...]
    n_layers: int = 1

    @property
    def width(self) -> int:
        return sum(stop - start for start, stop in self.spans)

    def out_dim(self) -> int:
        return self.width // self.n_layers

    def to_dict(self) -> dict:
        return asdict(self) | {"spans": [list(s) for s in self.spans]}

    @classmethod
    def from_dict(cls, data: dict) -> Block:
        return cls(
            data["encoder"],
            data["modality"],
            tuple(tuple(s) for s in data["spans"]),
            data.get("n_layers", 1),
        )


class FusedHead(nn.Module):
    """Standardise, weight layers per block, fuse the modalities, classify."""

    def __init__(
        self,
        blocks: list[Block],
        n_classes: int,
        head: str,
        fusion: str,
        hidden: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.blocks = list(blocks)
        in_dim = sum(b.width for b in blocks)
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("scale", torch.ones(in_dim))
        self.layers = nn.ModuleDict(
            {b.encoder: _span_weighting(b) for b in blocks if b.n_layers > 1}
        )
        dims = _modality_dims(blocks)
        self.fusion = ConcatFusion(dims) if fusion == "concat" else GatedFusion(dims, hidden)
        fused = self.fusion.out_dim if fusion == "concat" else hidden
        if head == "linear":
            self.classifier: nn.Module = LinearHead(fused, n_classes)
        else:
            self.classifier = nn.Sequential(
                nn.Linear(fused, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, n_classes),
            )

    def set_standardisation(self, x: torch.Tensor) -> None:
        set_standardisation(self, x)

    def modality_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each modality's features after standardisation and layer weighting."""
        x = (x - self.mean) / self.scale
        parts: dict[str, list[torch.Tensor]] = {}
        for block in self.blocks:
            spans = [x[..., start:stop] for start, stop in block.spans]
            if block.n_layers > 1:
                spans = [self.layers[block.encoder][i](s) for i, s in enumerate(spans)]
            parts.setdefault(block.modality, []).extend(spans)
        return {m: torch.cat(p, dim=-1) for m, p in parts.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.fusion(self.modality_features(x)))


def _span_weighting(block: Block) -> nn.ModuleList:
    """One LayerWeightedSum per span (means and maxima of clip tasks weight the same way)."""
    start, stop = block.spans[0]
    shared = LayerWeightedSum(block.n_layers, (stop - start) // block.n_layers)
    return nn.ModuleList([shared] * len(block.spans))


def _modality_dims(blocks: list[Block]) -> dict[str, int]:
    dims: dict[str, int] = {}
    for block in blocks:
        dims[block.modality] = dims.get(block.modality, 0) + block.out_dim()
    return dims


def rebuild_head(
    architecture: dict, in_dim: int, n_classes: int, hidden: int, dropout: float
) -> torch.nn.Module:
    """The untrained module `architecture` (from head.json) describes."""
    if architecture["kind"] == "mlp":
        return MLPHead(in_dim, hidden, n_classes, dropout)
    blocks = [Block.from_dict(b) for b in architecture["blocks"]]
    return FusedHead(
        blocks, n_classes, architecture["head"], architecture["fusion"], hidden, dropout
    )
