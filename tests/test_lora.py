"""LoRA on tiny, randomly initialised encoders saved to and loaded from temp folders."""

import copy
import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors import safe_open
from torch import nn
from transformers import (
    ASTConfig,
    AutoModel,
    ViTConfig,
    Wav2Vec2Config,
    WavLMConfig,
    WhisperConfig,
)

from avgate.declare import ConfigError
from avgate.finetune.lora.adapters import (
    TARGET_PRESETS,
    load_adapter,
    parameter_report,
    resolve_targets,
    save_adapter,
    wrap_lora,
)
from avgate.finetune.lora.checks import (
    EQUIVALENCE_TOLERANCE,
    check_forward_equivalence,
    check_gradient_flow,
    check_trainable,
)
from avgate.finetune.lora.classifier import AudioClassifier, load_encoder
from avgate.finetune.lora.task import LoraTask
from avgate.training.callbacks import Callback
from avgate.training.checkpoint import Checkpointing
from avgate.training.determinism import seed_everything
from avgate.training.loop import FitConfig, fit, train_epoch
from avgate.training.task import Task

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
CONV = dict(
    conv_dim=(16, 16),
    conv_stride=(5, 4),
    conv_kernel=(10, 4),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
)
NO_DROPOUT = dict(
    hidden_dropout=0.0,
    attention_dropout=0.0,
    activation_dropout=0.0,
    feat_proj_dropout=0.0,
    layerdrop=0.0,
    apply_spec_augment=False,
)
SAMPLES, N_CLASSES = 1600, 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def saved(tmp_path_factory, name: str, config) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp(name)
    AutoModel.from_config(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def wavlm_path(tmp_path_factory):
    """WavLM with its default dropout, LayerDrop and SpecAugment: training is random."""
    return saved(tmp_path_factory, "wavlm", WavLMConfig(**TINY, **CONV))


@pytest.fixture(scope="module")
def plain_path(tmp_path_factory):
    """WavLM without any randomness in training."""
    return saved(tmp_path_factory, "plain", WavLMConfig(**TINY, **CONV, **NO_DROPOUT))


@pytest.fixture
def data():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(4, SAMPLES, generator=generator), torch.tensor([0, 1, 2, 1])


def classifier(path, preset="attention", pooling="attention", dropout=0.1, seed=0):
    torch.manual_seed(seed)
    model = AudioClassifier(load_encoder(path), N_CLASSES, pooling)
    return wrap_lora(model, resolve_targets(model.encoder, preset), r=4, alpha=8, dropout=dropout)


def logits(model: nn.Module, waveforms: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(waveforms)


def lora_module_count(model: nn.Module) -> int:
    return sum(hasattr(module, "lora_A") for module in model.modules())


class GivenBatches(Task):
    """`(inputs, labels)` batches in the order given, cross-entropy: one pass of the loop."""

    def __init__(self, model: nn.Module, batches: list, optimiser) -> None:
        self.model, self.given, self._optimiser = model, batches, optimiser

    def optimiser(self):
        return self._optimiser

    def batches(self, generator: torch.Generator) -> list:
        return self.given

    def loss(self, batch) -> torch.Tensor:
        return nn.functional.cross_entropy(self.model(batch[0]), batch[1])

    def rows(self, batch) -> int:
        return len(batch[1])

    def validate(self) -> dict[str, float]:
        return {"val_loss": 0.0, "val_accuracy": 0.0}


class BatchLosses(Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_batch_end(self, epoch: int, rows: int, loss: float) -> None:
        self.losses.append(loss)


def train_steps(model: nn.Module, batches: list, optimizer, accumulate: int = 1) -> list[float]:
    """One pass of the loop's `train_epoch` over `batches`; each batch's loss."""
    losses = BatchLosses()
    task = GivenBatches(model, batches, optimizer)
    train_epoch(task, optimizer, torch.Generator(), 1, accumulate, losses)
    return losses.losses


ENCODERS = {
    "wavlm": WavLMConfig(**TINY, **CONV),
    "wav2vec2": Wav2Vec2Config(**TINY, **CONV),
    "ast": ASTConfig(**TINY, max_length=100, num_mel_bins=16),
    "whisper": WhisperConfig(
        d_model=32,
        encoder_layers=2,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_mel_bins=16,
        max_source_positions=50,
    ),
}


FEATURIZE = {  # waveforms (B, 1600) -> the encoder's input
    "ast": lambda w: w.unflatten(-1, (100, 16)),
    "whisper": lambda w: w.unflatten(-1, (16, 100)),
}


@pytest.mark.parametrize(("preset", "per_layer"), [("attention", 4), ("attention_mlp", 6)])
@pytest.mark.parametrize("arch", sorted(ENCODERS))
def test_presets_resolve_to_modules_the_forward_reaches(tmp_path_factory, arch, preset, per_layer):
    encoder = load_encoder(saved(tmp_path_factory, arch, ENCODERS[arch]))
    targets = resolve_targets(encoder, preset)
    assert targets == TARGET_PRESETS[preset][encoder.config.model_type]
    model = AudioClassifier(encoder, N_CLASSES, featurize=FEATURIZE.get(arch))
    wrap_lora(model, targets, r=2, alpha=4, dropout=0.0)
    assert lora_module_count(model) == per_layer * 2  # 2 layers; Whisper: the encoder's only
    check_trainable(model)
    check_gradient_flow(model, torch.randn(2, SAMPLES))
    assert all(p.grad is None for p in model.parameters())


def test_plain_peft_on_wavlm_attention_never_reaches_the_adapters():
    """The upstream bug `wrap_lora` routes around: WavLM reads q_proj.weight itself."""
    model = AudioClassifier(AutoModel.from_config(WavLMConfig(**TINY, **CONV)), N_CLASSES)
    model.encoder = get_peft_model(model.encoder, LoraConfig(target_modules=["q_proj"], r=2))
    with pytest.raises(RuntimeError, match=r"never reaches: \[.*q_proj\.lora_A"):
        check_gradient_flow(model, torch.randn(2, SAMPLES))


def test_unknown_preset_or_architecture_is_a_params_error():
    wavlm = AutoModel.from_config(WavLMConfig(**TINY, **CONV))
    with pytest.raises(ConfigError, match=r"train\.lora\.targets must be one of \['attention'"):
        resolve_targets(wavlm, "everything")
    vit = AutoModel.from_config(ViTConfig(**TINY))
    with pytest.raises(ConfigError, match=r"train\.lora\.targets has no preset for .*'vit'.*wavlm"):
        resolve_targets(vit, "attention")
    unlike_wavlm = nn.Sequential(nn.Linear(2, 2))
    unlike_wavlm.config = types.SimpleNamespace(model_type="wavlm")
    with pytest.raises(ConfigError, match=r"names modules \['q_proj', .*this wavlm model lacks"):
        resolve_targets(unlike_wavlm, "attention")


@pytest.mark.parametrize("preset", ["attention", "attention_mlp"])
def test_only_adapters_and_head_train_and_the_counts_are_right(plain_path, preset):
    base_total = sum(p.numel() for p in load_encoder(plain_path).parameters())
    model = classifier(plain_path, preset)
    c, r, layers = model.encoder.config, 4, 2
    adapters = layers * 4 * r * (c.hidden_size + c.hidden_size)
    if preset == "attention_mlp":
        adapters += layers * 2 * r * (c.hidden_size + c.intermediate_size)
    head = (c.hidden_size + 1) + (c.hidden_size + 1) * N_CLASSES  # attention score + linear
    report = parameter_report(model)
    assert report == {
        "total": base_total + adapters + head,
        "trainable": adapters + head,
        "adapter": adapters,
        "head": head,
        "base_trained": 0,
        "unexpected": [],
    }
    for name, p in model.named_parameters():
        assert p.requires_grad == ("lora_" in name or name.startswith(("pool.", "head.")))
    check_trainable(model)


def test_an_unfrozen_base_weight_fails_the_check(plain_path):
    model = classifier(plain_path)
    name = "encoder.base_model.model.encoder.layers.0.feed_forward.output_dense.weight"
    model.get_parameter(name).requires_grad_(True)
    assert parameter_report(model)["unexpected"] == [name]
    with pytest.raises(RuntimeError, match="feed_forward.output_dense.weight"):
        check_trainable(model)


def test_train_base_trains_the_named_module_in_full_and_reloads(plain_path, data, tmp_path):
    """`train.lora.train_base`: a declared exception to the freeze, counted apart (the go/no-go
    check backbone_frozen fails on it), saved and reloaded with the adapters."""
    torch.manual_seed(0)
    model = AudioClassifier(load_encoder(plain_path), N_CLASSES, "attention")
    targets = resolve_targets(model.encoder, "attention")
    wrap_lora(model, targets, r=4, alpha=8, dropout=0.0, train_base=["feature_projection"])
    projection = load_encoder(plain_path).feature_projection
    report = parameter_report(model)
    assert report["base_trained"] == sum(p.numel() for p in projection.parameters()) > 0
    assert report["trainable"] == report["adapter"] + report["head"] + report["base_trained"]
    check_trainable(model)  # declared: the run starts
    equivalence = check_forward_equivalence(model, data[0], plain_path)
    assert equivalence["mean_abs_logit_diff"] < EQUIVALENCE_TOLERANCE  # unchanged at start

    train_steps(model, [data] * 2, torch.optim.AdamW(model.parameters(), lr=1e-2))
    trained = dict(model.named_parameters())
    copy = next(n for n in trained if "modules_to_save" in n and n.endswith("projection.weight"))
    assert not torch.equal(trained[copy], projection.projection.weight)
    save_adapter(model, tmp_path / "adapter")
    loaded = load_adapter(plain_path, tmp_path / "adapter")
    assert torch.equal(logits(loaded, data[0]), logits(model, data[0]))


def test_adapted_output_equals_the_base_output_at_initialisation(plain_path, data):
    torch.manual_seed(0)
    model = AudioClassifier(load_encoder(plain_path), N_CLASSES, "attention")
    before = logits(model, data[0])
    wrap_lora(model, resolve_targets(model.encoder, "attention_mlp"), r=4, alpha=8, dropout=0.1)
    # LoRA B starts at zero; WavLM's attention then takes its unfused projection path, whose sums
    # may round differently in the last bit (6e-8 with the pinned CPU kernels)
    assert (logits(model, data[0]) - before).abs().max() < EQUIVALENCE_TOLERANCE


def test_training_changes_adapters_and_head_but_no_base_weight(wavlm_path, data):
    model = classifier(wavlm_path, "attention_mlp")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)  # frozen weights included
    losses = train_steps(model, [data] * 3, optimizer)
    assert len(losses) == 3 and all(np.isfinite(losses))
    after = model.state_dict()
    for name, p in model.named_parameters():
        assert torch.equal(after[name], before[name]) != p.requires_grad, name

    equivalence = check_forward_equivalence(model, data[0], wavlm_path)
    assert equivalence["max_abs_hidden_diff"] < EQUIVALENCE_TOLERANCE
    assert equivalence["mean_abs_logit_diff"] < EQUIVALENCE_TOLERANCE
    reference = AudioClassifier(load_encoder(wavlm_path), N_CLASSES, "attention")
    reference.pool.load_state_dict(model.pool.state_dict())
    reference.head.load_state_dict(model.head.state_dict())
    assert not torch.allclose(logits(model, data[0]), logits(reference, data[0]))


def test_saved_adapter_gives_identical_logits(wavlm_path, data, tmp_path):
    model = classifier(wavlm_path, "attention_mlp")
    train_steps(model, [data] * 2, torch.optim.AdamW(model.parameters(), lr=1e-2))
    save_adapter(model, tmp_path / "adapter")
    names = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "head.safetensors"} <= names

    config = json.loads((tmp_path / "adapter/adapter_config.json").read_text())
    assert config["target_modules"] == sorted(config["target_modules"])  # not a set's order
    with safe_open(tmp_path / "adapter/head.safetensors", framework="pt") as f:
        assert list(f.metadata()) == ["classifier"]  # one key: no order to vary by process
    loaded = load_adapter(wavlm_path, tmp_path / "adapter")
    assert loaded.pooling == "attention" and loaded.n_classes == N_CLASSES
    assert torch.equal(logits(loaded, data[0]), logits(model, data[0]))
    assert parameter_report(loaded)["trainable"] == 0  # loaded for inference


def test_per_second_logits_are_the_logits_of_each_window(plain_path):
    model = classifier(plain_path)
    windows = torch.randn(2, 3, SAMPLES)
    per_second = logits(model, windows[:, 0])  # eval mode
    with torch.no_grad():
        out = model.per_second_logits(windows)
    assert out.shape == (2, 3, N_CLASSES)
    torch.testing.assert_close(out[:, 0], per_second)


def test_two_accumulated_half_batches_equal_one_full_batch(plain_path, data):
    full = classifier(plain_path, dropout=0.0)
    halves = copy.deepcopy(full)
    start = {k: v.clone() for k, v in full.state_dict().items()}
    x, y = data
    train_steps(full, [(x, y)] * 2, torch.optim.SGD(full.parameters(), lr=0.5))
    sgd = torch.optim.SGD(halves.parameters(), lr=0.5)
    losses = train_steps(halves, [(x[:2], y[:2]), (x[2:], y[2:])] * 2, sgd, accumulate=2)
    assert len(losses) == 4
    after = halves.state_dict()
    for name, value in full.state_dict().items():
        torch.testing.assert_close(value, after[name], rtol=1e-5, atol=1e-6, msg=name)
    moved = {name for name, value in after.items() if not torch.equal(value, start[name])}
    trainable = {name for name, p in halves.named_parameters() if p.requires_grad}
    assert {n for n in trainable if "lora_B" in n or n.startswith("head.")} <= moved <= trainable


def linear_data(n: int):
    generator = torch.Generator().manual_seed(2)
    return [(torch.randn(2, 4, generator=generator), torch.tensor([0, 1])) for _ in range(n)]


def test_a_short_last_group_steps_on_its_own_mean():
    torch.manual_seed(0)
    grouped, stepwise = nn.Linear(4, 2), nn.Linear(4, 2)
    stepwise.load_state_dict(grouped.state_dict())
    b1, b2, b3 = linear_data(3)
    train_steps(grouped, [b1, b2, b3], torch.optim.SGD(grouped.parameters(), lr=0.5), accumulate=2)
    sgd = torch.optim.SGD(stepwise.parameters(), lr=0.5)
    train_steps(stepwise, [(torch.cat([b1[0], b2[0]]), torch.cat([b1[1], b2[1]])), b3], sgd)
    for a, b in zip(grouped.parameters(), stepwise.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="accumulate"):
        train_steps(grouped, [b1], sgd, accumulate=0)


def test_amp_is_off_on_cpu():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    cpu = torch.device("cpu")
    task = LoraTask(model, None, None, {}, 0.5, 2, 0, amp=True, device=cpu)
    x, y = linear_data(1)[0]
    assert task.amp is False
    with torch.no_grad():
        plain = nn.functional.cross_entropy(model(x), y)
        assert torch.equal(task.loss((x, y, torch.tensor([0, 1]))), plain)
    assert task.loss((x, y, torch.tensor([0, 1]))).dtype == torch.float32


class Waves(torch.utils.data.Dataset):
    """One waveform per clip (1 window each), in memory: what `ClipWindows` gives the loader."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y, self.seconds = x, y, [1] * len(x)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i : i + 1], self.y[i : i + 1], i


def lora_fit(path, seed: int, epochs: int, checkpoint: Checkpointing | None):
    """A tiny LoRA run through the one loop: WavLM with dropout, LayerDrop and SpecAugment, so
    training draws on torch's, numpy's and the batch-order generators."""
    seed_everything(seed, 1)
    model = classifier(path, "attention_mlp", seed=seed)
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, SAMPLES, generator=generator), torch.tensor([0, 1, 2, 1, 0, 2])
    ids = np.array([f"clip{i}" for i in range(6)])
    clips = {"train": ids[:4], "val": ids[4:]}
    cpu = torch.device("cpu")
    task = LoraTask(model, Waves(x[:4], y[:4]), Waves(x[4:], y[4:]), clips, 1e-2, 2, 0, False, cpu)
    config = FitConfig(epochs, seed=0, selection_metric="val_accuracy")
    return model, fit(task, config, checkpoint=checkpoint)


def test_a_resumed_lora_run_ends_with_the_uninterrupted_runs_bytes(wavlm_path, tmp_path):
    straight, done = lora_fit(wavlm_path, seed=0, epochs=4, checkpoint=None)
    checkpoint = Checkpointing(tmp_path / "last.pt", key="k")
    lora_fit(wavlm_path, seed=0, epochs=2, checkpoint=checkpoint)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left
    resumed, result = lora_fit(wavlm_path, seed=7, epochs=4, checkpoint=checkpoint)  # other init
    assert result.resumed_from_epoch == 2 and result.epochs_run == 4
    assert (result.best_epoch, result.best_val_loss) == (done.best_epoch, done.best_val_loss)
    expected = straight.state_dict()
    for name, value in resumed.state_dict().items():
        assert torch.equal(value, expected[name]), name
    other, _ = lora_fit(wavlm_path, seed=7, epochs=4, checkpoint=None)
    assert not all(torch.equal(v, expected[k]) for k, v in other.state_dict().items())


def test_whisper_pools_only_the_positions_that_hold_the_audio(tmp_path_factory, tmp_path):
    """Whisper pads every input to 30 s: averaging the padding would drown the second."""
    from transformers import Wav2Vec2FeatureExtractor, WhisperFeatureExtractor

    from avgate.encoders.hf_audio import audio_share

    assert audio_share(WhisperFeatureExtractor(), 16000) == pytest.approx(1 / 30)
    assert audio_share(Wav2Vec2FeatureExtractor(), 16000) == 1.0
    path = saved(tmp_path_factory, "whisper", ENCODERS["whisper"])
    model = AudioClassifier(
        load_encoder(path), N_CLASSES, featurize=FEATURIZE["whisper"], audio_share=0.2
    )
    waves = torch.randn(2, SAMPLES)
    with torch.no_grad():
        hidden = model.encoder(**model.encoder_inputs(waves)).last_hidden_state
        expected = model.head(hidden[:, : int(np.ceil(hidden.shape[1] * 0.2))].mean(dim=1))
        everything = model.head(hidden.mean(dim=1))
    assert torch.allclose(logits(model, waves), expected, atol=1e-6)
    assert not torch.allclose(expected, everything, atol=1e-3)
    wrapped = wrap_lora(model, resolve_targets(model.encoder, "attention"), 2, 4, 0.0)
    save_adapter(wrapped, tmp_path / "adapter")
    loaded = load_adapter(path, tmp_path / "adapter", featurize=FEATURIZE["whisper"])
    assert loaded.audio_share == 0.2
    assert torch.equal(logits(loaded, waves), logits(wrapped, waves))


@pytest.mark.parametrize("arch", ["ast", "whisper"])
def test_spectrogram_encoders_train_their_adapters_and_reload(tmp_path_factory, tmp_path, arch):
    """AST and Whisper take log-mel frames: LoRA trains and saves them like WavLM."""
    path = saved(tmp_path_factory, f"{arch}-train", ENCODERS[arch])
    torch.manual_seed(0)
    model = AudioClassifier(load_encoder(path), N_CLASSES, "mean", FEATURIZE[arch])
    model = wrap_lora(model, resolve_targets(model.encoder, "attention_mlp"), 4, 8, 0.0)
    waves = torch.randn(4, SAMPLES, generator=torch.Generator().manual_seed(1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = train_steps(model, [(waves, torch.tensor([0, 1, 2, 1]))] * 3,
                         torch.optim.AdamW(model.parameters(), lr=1e-2))  # fmt: skip
    assert all(np.isfinite(losses))
    after = model.state_dict()
    for name, p in model.named_parameters():
        assert torch.equal(after[name], before[name]) != p.requires_grad, name
    save_adapter(model, tmp_path / "adapter")
    loaded = load_adapter(path, tmp_path / "adapter", featurize=FEATURIZE[arch])
    assert torch.equal(logits(loaded, waves), logits(model, waves))
