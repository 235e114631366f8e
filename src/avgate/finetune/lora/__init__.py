"""`train.finetune: lora`: LoRA adapters (peft) and a pooling head on the pretrained audio encoder
of `embed.<train.lora.encoder>`, trained from the raw audio through the one loop.

- `base`: which encoder (an hf-audio `embed` section), loaded in float32, its weights' identity;
- `classifier`: encoder -> pooling over time -> linear head;
- `adapters`: target presets per architecture, wrapping, parameter counts, save and load;
- `checks`: freeze audit, gradient flow, forward equivalence at initialisation;
- `clips`: 1-s windows from the raw audio, prepared by the model's feature extractor;
- `task`: the task the loop trains; `fitting`: one seed, start to end;
- `store`: the adapters in models/seed<k>/; `inference`: logits per second or per clip.

>>> sorted(__all__)
['ADAPTER', 'Data', 'SplitClips', 'load', 'predict', 'save', 'split_clips', 'train']
"""

from avgate.finetune.lora.clips import SplitClips, split_clips
from avgate.finetune.lora.fitting import Data, train
from avgate.finetune.lora.inference import predict
from avgate.finetune.lora.store import ADAPTER, load, save

__all__ = ["ADAPTER", "Data", "SplitClips", "load", "predict", "save", "split_clips", "train"]
