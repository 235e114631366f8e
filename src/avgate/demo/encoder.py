"""A stand-in "pretrained" audio encoder for the demo: a small WavLM with random weights.

Nothing here reaches the Hugging Face hub, so the demo cannot download WavLM. This writes a
WavLM of the real architecture (convolutional front end at 50 frames per second, transformer
layers, gated relative position bias), small and randomly initialised from `seed`, with its
feature extractor, in the `save_pretrained` layout. The encoder sections and LoRA fine-tuning
then load it exactly as they would load `microsoft/wavlm-base-plus`: its numbers say nothing
about WavLM's quality, only that the machinery runs end to end.

>>> import tempfile
>>> folder = write_demo_wavlm(Path(tempfile.mkdtemp()) / "wavlm", seed=0)
>>> sorted(p.name for p in folder.iterdir())
['config.json', 'model.safetensors', 'preprocessor_config.json']
"""

from __future__ import annotations

from pathlib import Path

import torch

ARCHITECTURE = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=128,
    conv_dim=(32, 32),
    conv_kernel=(40, 8),
    conv_stride=(40, 8),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
    num_buckets=32,
)
SAMPLE_RATE = 16000


def write_demo_wavlm(folder: Path, seed: int) -> Path:
    """Save the seeded random WavLM and its feature extractor into `folder`."""
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = WavLMModel(WavLMConfig(**ARCHITECTURE))
    finally:
        torch.random.set_rng_state(generator_state)
    model.save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=SAMPLE_RATE).save_pretrained(folder)
    return folder
