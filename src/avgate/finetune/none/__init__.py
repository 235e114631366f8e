"""`train.finetune: none`: a head (`train.head`, `train.fusion`) trained on the cached, fused
embeddings of `embed.encoders`, early-stopped on the selection metric, saved as safetensors.

>>> sorted(name for name in __all__)
['Data', 'WEIGHTS', 'build_head', 'load', 'predict', 'row_names', 'save', 'train']
"""

from avgate.finetune.none.fitting import Data, row_names, train
from avgate.finetune.none.head import WEIGHTS, build_head, load, predict, save

__all__ = ["WEIGHTS", "Data", "build_head", "load", "predict", "row_names", "save", "train"]
