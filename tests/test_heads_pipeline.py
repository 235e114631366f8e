"""Heads and fusion chosen by params, through train and evaluate: a linear head over gated
audio-visual fusion, with a learned weighted sum over the hidden layers of a (tiny, random) WavLM
stored with every layer; the plain MLP over concatenation stays the default."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from avgate.config import Params
from avgate.declare import ConfigError
from avgate.finetune import none
from avgate.layout.results import model_dir
from avgate.models.fused import FusedHead
from avgate.stages.train import evaluate, summarize
from tests.conftest import run_until_train, train_every_seed, write_params

SMALL_WAVLM = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                   intermediate_size=64, conv_dim=(16, 16), conv_kernel=(40, 8),
                   conv_stride=(40, 8), num_conv_pos_embeddings=16,
                   num_conv_pos_embedding_groups=2, num_buckets=16)  # fmt: skip


@pytest.fixture(scope="module")
def wavlm(tmp_path_factory) -> str:
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

    folder = tmp_path_factory.mktemp("wavlm")
    torch.manual_seed(0)
    WavLMModel(WavLMConfig(**SMALL_WAVLM)).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(folder)
    return str(folder)


def test_linear_head_over_gated_fusion_with_layer_weights(project, wavlm):
    params = write_params(project, {
        "embed": {"encoders": {"wavlm": "hf_audio", "frames": "frames"}, "device": "cpu",
                  "wavlm": {"model": wavlm, "layer": "all"}},
        "train": {"head": "linear", "fusion": "gated", "seeds": [0]},
    })  # fmt: skip
    run_until_train(params)
    train_every_seed(params)
    description = json.loads((project / "models/seed0/head.json").read_text())
    arch = description["architecture"]
    assert (arch["kind"], arch["head"], arch["fusion"]) == ("fused", "linear", "gated")
    assert [(b["encoder"], b["n_layers"]) for b in arch["blocks"]] == [("wavlm", 3), ("frames", 1)]
    assert set(description["gates"]) == {"audio", "visual"}
    model = none.load(params, model_dir(0), description)
    assert isinstance(model, FusedHead)
    weights = model.layers["wavlm"][0].layer_weights()
    assert weights.shape == (3,) and torch.isclose(weights.sum(), torch.tensor(1.0))
    assert not torch.allclose(weights, torch.full((3,), 1 / 3))  # the weights were learned
    table = pd.read_parquet(project / "predictions/seed0/test.parquet")
    metrics = json.loads((project / "predictions/seed0/metrics.json").read_text())
    assert np.isfinite(table.filter(like="logit_").to_numpy()).all()
    assert {"audio_muted", "visual_muted"} <= set(metrics["modality_ablation_val"])
    again = evaluate.run(params, 0)
    assert again["val"] == metrics["val"] and "test" not in metrics
    summarize.run(params)


def test_default_head_is_the_plain_mlp(project):
    params = write_params(project, {"train": {"seeds": [0]}})
    run_until_train(params)
    train_every_seed(params)
    description = json.loads((project / "models/seed0/head.json").read_text())
    assert description["architecture"] == {"kind": "mlp"} and description["gates"] is None


@pytest.mark.parametrize(
    ("section", "message"),
    [({"head": "attention"}, "train.head"), ({"fusion": "sum"}, "train.fusion"),
     ({"finetune": "lora", "lora": {"encoder": "nope"}}, "train.lora.encoder")],
)  # fmt: skip
def test_bad_head_params_name_the_key(section, message):
    with pytest.raises(ConfigError, match=message):
        Params.from_dict({"train": section})
