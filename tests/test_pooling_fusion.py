import pytest
import torch
from torch import nn

from avgate.config import Params
from avgate.declare import ConfigError
from avgate.finetune.none.head import build_head, load, save
from avgate.models.fused import Block
from avgate.models.fusion import ConcatFusion, GatedFusion
from avgate.models.pooling import AttentionPooling, LayerWeightedSum, LinearHead, MeanPooling


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def test_attention_pooling_starts_as_the_mean_and_ignores_padding():
    frames = torch.randn(3, 7, 8)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 4:] = False
    pool = AttentionPooling(8)
    assert pool(frames).shape == (3, 8)
    torch.testing.assert_close(pool(frames), frames.mean(dim=1))
    torch.testing.assert_close(pool(frames, mask), MeanPooling()(frames, mask))

    nn.init.normal_(pool.score.weight)  # as after training: unequal weights
    weights = pool.weights(frames, mask)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))
    assert torch.all(weights[1, 4:] == 0)
    padded = frames.clone()
    padded[1, 4:] = 1e6
    assert torch.equal(pool(padded, mask), pool(frames, mask))


def test_mean_pooling_averages_only_real_frames():
    frames = torch.randn(2, 5, 4)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    pooled = MeanPooling()(frames, mask)
    torch.testing.assert_close(pooled[0], frames[0].mean(dim=0))
    torch.testing.assert_close(pooled[1], frames[1, :2].mean(dim=0))


def test_layer_weighted_sum_is_the_layer_mean_at_init_and_reads_layers_layer_major():
    n_layers, dim = 3, 4
    x = torch.randn(2, 5, n_layers * dim)
    weighted = LayerWeightedSum(n_layers, dim)
    assert weighted(x).shape == (2, 5, dim)
    torch.testing.assert_close(weighted(x), x.unflatten(-1, (n_layers, dim)).mean(dim=-2))

    with torch.no_grad():
        weighted.logits.copy_(torch.tensor([-50.0, 50.0, -50.0]))
    torch.testing.assert_close(weighted(x), x[..., dim : 2 * dim])
    with pytest.raises(ValueError, match="3 layers x 4 features = 12"):
        weighted(torch.randn(2, 10))


def test_layer_weights_train():
    weighted = LayerWeightedSum(2, 3)
    x = torch.randn(4, 6)
    (weighted(x) * x[:, :3]).sum().backward()
    assert weighted.logits.grad is not None and weighted.logits.grad.abs().sum() > 0


def test_linear_head_shape():
    assert LinearHead(6, 4)(torch.randn(2, 3, 6)).shape == (2, 3, 4)


def test_concat_fusion_follows_the_order_of_dims():
    audio, visual = torch.randn(2, 3), torch.randn(2, 5)
    fusion = ConcatFusion({"visual": 5, "audio": 3})
    fused = fusion({"audio": audio, "visual": visual})
    assert fused.shape == (2, fusion.out_dim) == (2, 8)
    assert torch.equal(fused[:, :5], visual) and torch.equal(fused[:, 5:], audio)
    with pytest.raises(KeyError, match="visual"):
        fusion({"audio": audio})
    with pytest.raises(ValueError, match="audio: expected 3 features"):
        fusion({"audio": visual, "visual": visual})


class Fused(nn.Module):
    """Gated fusion followed by a linear head."""

    def __init__(self, dims: dict[str, int]) -> None:
        super().__init__()
        self.fusion = GatedFusion(dims, out_dim=6)
        self.head = LinearHead(6, 3)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.fusion(features))


def test_closed_visual_gate_gives_exactly_the_audio_only_model():
    audio, visual = torch.randn(4, 5), torch.randn(4, 7)
    model = Fused({"audio": 5, "visual": 7})
    with torch.no_grad():
        model.fusion.gate_logits["audio"].fill_(1.3)
    assert model.fusion.gates() == {"audio": pytest.approx(0.7858, abs=1e-4), "visual": 0.5}
    both = model({"audio": audio, "visual": visual})
    assert both.shape == (4, 3)

    model.fusion.close("visual")
    assert model.fusion.gates()["visual"] == 0.0
    closed = model({"audio": audio, "visual": visual})
    assert not torch.allclose(closed, both)

    audio_only = Fused({"audio": 5})
    audio_only.load_state_dict(
        {k: v for k, v in model.state_dict().items() if "visual" not in k and "is_open" not in k},
        strict=False,
    )
    assert torch.equal(closed, audio_only({"audio": audio}))
    assert torch.equal(closed, model({"audio": audio, "visual": torch.full_like(visual, 1e30)}))
    assert torch.equal(closed, model({"audio": audio}))  # closed: its features are not needed


def test_gate_state_is_saved_and_can_be_reopened():
    features = {"audio": torch.randn(2, 3), "visual": torch.randn(2, 3)}
    fusion = GatedFusion({"audio": 3, "visual": 3}, out_dim=2)
    both = fusion(features)
    fusion.close("visual")
    restored = GatedFusion({"audio": 3, "visual": 3}, out_dim=2)
    restored.load_state_dict(fusion.state_dict())
    assert restored.open_modalities() == ["audio"]
    assert torch.equal(restored(features), fusion(features))

    restored.reopen("visual")
    assert torch.equal(restored(features), both)
    restored.close("audio")
    restored.close("visual")
    with pytest.raises(RuntimeError, match="every gate"):
        restored(features)
    with pytest.raises(KeyError, match="unknown modality 'text'"):
        restored.close("text")


def test_closed_modality_gets_no_gradient():
    fusion = GatedFusion({"audio": 3, "visual": 3}, out_dim=2)
    fusion.close("visual")
    fusion({"audio": torch.randn(2, 3), "visual": torch.randn(2, 3)}).sum().backward()
    assert fusion.projections["audio"].weight.grad is not None
    assert fusion.gate_logits["audio"].grad is not None
    assert fusion.projections["visual"].weight.grad is None
    assert fusion.gate_logits["visual"].grad is None


def test_closed_modalities_param_builds_a_head_that_never_reads_them(tmp_path):
    """`train.closed_modalities`: the built head's gate stays shut, so the audio columns change
    nothing, and the saved state rebuilds it shut; a modality the inputs lack is refused."""
    blocks = [Block("logmel", "audio", ((0, 4),)), Block("frames", "visual", ((4, 7),))]
    train = {"fusion": "gated", "closed_modalities": ["audio"], "dropout": 0.0, "hidden": 8}
    params = Params.from_dict({"train": train})
    torch.manual_seed(0)
    model, architecture = build_head(params.train, blocks, 7, 3)
    x = torch.randn(5, 7)
    other = x.clone()
    other[:, :4] = torch.randn(5, 4) * 10
    model.eval()
    assert torch.equal(model(x), model(other))
    assert model.fusion.gates()["audio"] == 0.0

    save(model, tmp_path)
    description = {"architecture": architecture, "in_dim": 7, "classes": list("abc"), "hidden": 8}
    assert torch.equal(load(params, tmp_path, description)(x), model(x))

    wrong = Params.from_dict({"train": {**train, "closed_modalities": ["speech"]}})
    with pytest.raises(ConfigError, match=r"train.closed_modalities must name modalities"):
        build_head(wrong.train, blocks, 7, 3)
    with pytest.raises(ConfigError, match=r"train.closed_modalities needs train.fusion: gated"):
        Params.from_dict({"train": {"closed_modalities": ["audio"]}})
