"""LoRA adapters (peft) on a frozen Hugging Face audio encoder, with a trainable pooling head.

The encoder's own weights never change: only the adapters (`lora_*` parameters) and the head
(`pool.*`, `head.*`) train. `check_trainable` fails a run where anything else would, and
`check_forward_equivalence` shows that with the adapters switched off the encoder computes
exactly what the base checkpoint computes, and `check_gradient_flow` that every adapter is
reached by the forward pass.

WavLM's attention never calls its q/k/v/out projections: it hands their `.weight` to
`F.multi_head_attention_forward`, which bypasses peft's wrappers (huggingface/transformers#48773),
so those adapters would get no gradient. `wrap_lora` and `load_adapter` route them through a
parametrization of the base weight (`W + B @ A * scaling`) instead; LoRA dropout does not apply
to these modules.

>>> sorted(TARGET_PRESETS)
['attention', 'attention_mlp']
>>> TARGET_PRESETS["attention"]["wavlm"]
['q_proj', 'k_proj', 'v_proj', 'out_proj']
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import random
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils import parametrize
from transformers import AutoModel, PreTrainedModel

from avgate import disk
from avgate.declare import PARAMS_FILE, ConfigError
from avgate.models.pooling import AttentionPooling, LinearHead, MeanPooling

_WAV2VEC2_ATTENTION = ["q_proj", "k_proj", "v_proj", "out_proj"]
_WAV2VEC2_MLP = ["intermediate_dense", "output_dense"]
_ATTENTION = {
    "wavlm": _WAV2VEC2_ATTENTION,
    "wav2vec2": _WAV2VEC2_ATTENTION,
    "hubert": _WAV2VEC2_ATTENTION,
    "audio-spectrogram-transformer": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "whisper": ["q_proj", "k_proj", "v_proj", "out_proj"],
}
_MLP = {
    "wavlm": _WAV2VEC2_MLP,
    "wav2vec2": _WAV2VEC2_MLP,
    "hubert": _WAV2VEC2_MLP,
    "audio-spectrogram-transformer": ["fc1", "fc2"],
    "whisper": ["fc1", "fc2"],
}
# preset -> config.model_type -> module-name suffixes (peft's matching: whole dotted components)
TARGET_PRESETS: dict[str, dict[str, list[str]]] = {
    "attention": _ATTENTION,
    "attention_mlp": {arch: names + _MLP[arch] for arch, names in _ATTENTION.items()},
}
# model_type -> targets whose weight the encoder reads instead of calling the module
WEIGHT_READ_TARGETS = {"wavlm": _WAV2VEC2_ATTENTION}
POOLINGS = ("mean", "attention")
HEAD_FILE = "head.safetensors"
HEAD_MODULES = ("pool", "head")


def _targets_error(rule: str, value: object) -> ConfigError:
    return ConfigError(f"{PARAMS_FILE}: train.lora.targets {rule}, got {value!r}")


def _matches(module_name: str, target: str) -> bool:
    return module_name == target or module_name.endswith("." + target)


def resolve_targets(encoder: nn.Module, preset: str) -> list[str]:
    """Module names of `preset` for this encoder's `config.model_type`, each checked to match
    at least one module of `encoder`."""
    if preset not in TARGET_PRESETS:
        raise _targets_error(f"must be one of {sorted(TARGET_PRESETS)}", preset)
    arch = encoder.config.model_type
    by_arch = TARGET_PRESETS[preset]
    if arch not in by_arch:
        known = sorted(by_arch)
        raise _targets_error(f"has no preset for model type {arch!r}; known: {known}", preset)
    names = [name for name, _ in encoder.named_modules()]
    missing = [t for t in by_arch[arch] if not any(_matches(n, t) for n in names)]
    if missing:
        raise _targets_error(f"names modules {missing} that this {arch} model lacks", preset)
    return list(by_arch[arch])


def load_encoder(path: Path) -> PreTrainedModel:
    """The encoder saved at `path` in float32 (the encoder half of an encoder-decoder model)."""
    model = AutoModel.from_pretrained(path, dtype=torch.float32)
    return model.get_encoder() if model.config.is_encoder_decoder else model


class AudioClassifier(nn.Module):
    """Encoder -> last hidden state -> pooling over time -> linear head -> logits.

    `featurize` maps waveforms `(B, samples)` to the encoder's input (e.g. log-mel frames for
    AST or Whisper); without it the waveforms go in as they are (WavLM, wav2vec 2.0, HuBERT).
    Clips in a batch have equal length (no padding mask). Only the first `audio_share` of the
    hidden positions are pooled: those that hold the audio where the feature extractor pads
    every input (Whisper: 1 s of 30 s, see `hf_audio.audio_share`).
    """

    def __init__(
        self,
        encoder: nn.Module,
        n_classes: int,
        pooling: str = "mean",
        featurize: Callable[[torch.Tensor], torch.Tensor] | None = None,
        audio_share: float = 1.0,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        dim = encoder.config.hidden_size
        self.encoder = encoder
        self.input_name = encoder.main_input_name
        self.featurize = featurize
        self.n_classes, self.pooling, self.audio_share = n_classes, pooling, audio_share
        self.pool = AttentionPooling(dim) if pooling == "attention" else MeanPooling()
        self.head = LinearHead(dim, n_classes)

    def encoder_inputs(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
        """The keyword arguments the encoder takes for these waveforms."""
        inputs = waveforms if self.featurize is None else self.featurize(waveforms)
        return {self.input_name: inputs}

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(**self.encoder_inputs(waveforms)).last_hidden_state
        hidden = hidden[:, : math.ceil(hidden.shape[1] * self.audio_share)]
        return self.head(self.pool(hidden))

    def per_second_logits(self, windows: torch.Tensor) -> torch.Tensor:
        """Logits of each 1-s window: `(B, seconds, samples_per_second) -> (B, seconds, C)`."""
        return self(windows.flatten(0, 1)).unflatten(0, windows.shape[:2])


class _LoraDelta(nn.Module):
    """Parametrization of a LoRA layer's base weight: `W + B @ A * scaling` of each active
    adapter, or `W` itself while adapters are disabled or merged."""

    def __init__(self, layer: LoraLayer) -> None:
        super().__init__()
        object.__setattr__(self, "layer", layer)  # a reference, not a submodule

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        if layer.disable_adapters or layer.merged:
            return weight
        for name in layer.active_adapters:
            if name in layer.lora_A:
                weight = weight + layer.get_delta_weight(name)
        return weight


def _route_weight_reads(encoder: PeftModel) -> None:
    """Make the adapters of modules whose `.weight` is read directly part of that weight."""
    suffixes = WEIGHT_READ_TARGETS.get(encoder.get_base_model().config.model_type, ())
    layers = [
        module
        for name, module in encoder.named_modules()
        if isinstance(module, LoraLayer) and any(_matches(name, s) for s in suffixes)
    ]
    for layer in layers:
        parametrize.register_parametrization(layer.get_base_layer(), "weight", _LoraDelta(layer))


def wrap_lora(
    classifier: AudioClassifier, targets: list[str], r: int, alpha: int, dropout: float
) -> AudioClassifier:
    """Put LoRA adapters on `targets` of the encoder (in place); base weights frozen, head not."""
    if isinstance(classifier.encoder, PeftModel):
        raise ValueError("the encoder already has LoRA adapters")
    config = LoraConfig(
        target_modules=list(targets), r=r, lora_alpha=alpha, lora_dropout=dropout, bias="none"
    )
    classifier.encoder = get_peft_model(classifier.encoder, config)
    _route_weight_reads(classifier.encoder)
    for name in HEAD_MODULES:
        getattr(classifier, name).requires_grad_(True)
    return classifier


def _is_adapter(name: str) -> bool:
    return any(part.startswith("lora_") for part in name.split("."))


def _is_head(name: str) -> bool:
    return name.split(".")[0] in HEAD_MODULES


def parameter_report(model: nn.Module) -> dict[str, Any]:
    """Parameter counts (total, trainable, adapter, head) and the names of trainable
    parameters that are neither adapter nor head (`unexpected`, which should be empty)."""
    params = dict(model.named_parameters())
    trainable = {name: p for name, p in params.items() if p.requires_grad}
    return {
        "total": sum(p.numel() for p in params.values()),
        "trainable": sum(p.numel() for p in trainable.values()),
        "adapter": sum(p.numel() for n, p in trainable.items() if _is_adapter(n)),
        "head": sum(p.numel() for n, p in trainable.items() if _is_head(n)),
        "unexpected": [n for n in trainable if not (_is_adapter(n) or _is_head(n))],
    }


def check_trainable(model: nn.Module) -> None:
    """Raise RuntimeError if any parameter outside the adapters and the head requires grad."""
    offenders = parameter_report(model)["unexpected"]
    if offenders:
        raise RuntimeError(f"base weights would train (must be frozen): {offenders}")


def check_gradient_flow(model: nn.Module, waveforms: torch.Tensor) -> None:
    """Raise RuntimeError naming trainable parameters that get no gradient from one forward and
    backward pass on `waveforms` (an adapter the forward never reaches). Runs in eval mode, so
    no dropout or LayerDrop skips a layer; call it before training, as it clears gradients."""
    was_training = model.training
    model.eval()
    try:
        model(waveforms).sum().backward()
        dead = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if dead:
        raise RuntimeError(f"trainable parameters the forward pass never reaches: {dead}")


EQUIVALENCE_TOLERANCE = 1e-5  # float32 kernels may order a sum differently: 7.2e-7 seen on AVX-512


def check_forward_equivalence(
    model: AudioClassifier, waveforms: torch.Tensor, base_path: Path
) -> float:
    """Max abs difference between the encoder's output with its adapters disabled and the
    output of a fresh load of the base checkpoint at `base_path` (both in eval mode)."""
    if not isinstance(model.encoder, PeftModel):
        raise TypeError("the classifier's encoder has no LoRA adapters")
    reference = load_encoder(base_path).eval()
    was_training = model.training
    model.eval()
    inputs = model.encoder_inputs(waveforms)
    try:
        with torch.inference_mode(), model.encoder.disable_adapter():
            disabled = model.encoder(**inputs).last_hidden_state
            base = reference(**inputs).last_hidden_state
    finally:
        model.train(was_training)
    return (disabled - base).abs().max().item()


def save_adapter(model: AudioClassifier, folder: Path) -> None:
    """Adapter weights and `adapter_config.json` (peft), and the head as safetensors."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(folder)
    head = {
        f"{name}.{key}": value.detach().contiguous()
        for name in HEAD_MODULES
        for key, value in getattr(model, name).state_dict().items()
    }
    metadata = {
        "n_classes": str(model.n_classes),
        "pooling": model.pooling,
        "audio_share": repr(model.audio_share),
    }
    save_file(head, folder / HEAD_FILE, metadata=metadata)


def load_adapter(
    base_path: Path,
    folder: Path,
    featurize: Callable[[torch.Tensor], torch.Tensor] | None = None,
    trainable: bool = False,
) -> AudioClassifier:
    """The classifier saved by `save_adapter` in `folder`, on the base encoder at `base_path`;
    adapters and head are frozen unless `trainable`."""
    folder = Path(folder)
    with safe_open(folder / HEAD_FILE, framework="pt") as f:
        metadata = f.metadata()
    model = AudioClassifier(
        load_encoder(base_path),
        int(metadata["n_classes"]),
        metadata["pooling"],
        featurize,
        float(metadata.get("audio_share", 1.0)),
    )
    model.encoder = PeftModel.from_pretrained(model.encoder, folder, is_trainable=trainable)
    _route_weight_reads(model.encoder)
    head = load_file(folder / HEAD_FILE)
    for name in HEAD_MODULES:
        state = {k.removeprefix(f"{name}."): v for k, v in head.items() if k.startswith(f"{name}.")}
        getattr(model, name).load_state_dict(state)
        getattr(model, name).requires_grad_(trainable)
    return model


def _groups(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while group := list(itertools.islice(iterator, size)):
        yield group


def _autocast(enabled: bool) -> contextlib.AbstractContextManager:
    return torch.autocast("cuda", dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def train_steps(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    accumulate: int = 1,
    amp: bool = False,
    device: torch.device | str = "cpu",
) -> list[float]:
    """Train on `(inputs, labels)` batches with cross-entropy, one optimizer step per
    `accumulate` batches (a shorter last group steps too); returns each batch's loss.

    Each loss is divided by its group's size, so a step on k equal batches is a step on their
    union. Batches are moved to `device` (the model must be there already); autocast
    (bfloat16) is on only when `amp` and `device` is CUDA.
    """
    if accumulate < 1:
        raise ValueError(f"accumulate must be at least 1, got {accumulate}")
    device = torch.device(device)
    use_amp = amp and device.type == "cuda"
    model.train()
    losses = []
    for group in _groups(batches, accumulate):
        optimizer.zero_grad(set_to_none=True)
        for inputs, labels in group:
            with _autocast(use_amp):
                loss = nn.functional.cross_entropy(model(inputs.to(device)), labels.to(device))
            (loss / len(group)).backward()
            losses.append(loss.item())
        optimizer.step()
    return losses


def _rng_state(generator: torch.Generator | None) -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
        "generator": None if generator is None else generator.get_state(),
    }


def _set_rng_state(state: dict[str, Any], generator: torch.Generator | None) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if generator is not None:
        generator.set_state(state["generator"])


def _resumable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters and buffers: what training can change (frozen weights come from
    the base checkpoint)."""
    keep = {n for n, p in model.named_parameters() if p.requires_grad}
    keep |= {n for n, _ in model.named_buffers()}
    return {k: v for k, v in model.state_dict().items() if k in keep}


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    generator: torch.Generator | None = None,
) -> None:
    """Write what resuming needs (trainable weights, buffers, optimizer, epoch, the torch /
    CUDA / numpy / Python RNG states and `generator`'s) atomically: temp file + rename."""
    path = Path(path)
    state = {
        "model": _resumable_state(model),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "rng": _rng_state(generator),
    }
    buffer = io.BytesIO()  # the exact size, checked against the free space before writing
    torch.save(state, buffer)
    disk.write_bytes(path, buffer.getbuffer(), "a LoRA checkpoint")


def load_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator | None = None,
) -> int:
    """Restore a `save_checkpoint` into a freshly built model and optimizer (and restore the
    RNG states); returns the saved epoch."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if unexpected or trainable & set(missing):
        raise RuntimeError(
            f"{path}: checkpoint does not fit the model: unexpected {unexpected}, "
            f"missing trainable {sorted(trainable & set(missing))}"
        )
    optimizer.load_state_dict(state["optimizer"])
    _set_rng_state(state["rng"], generator)
    return state["epoch"]
