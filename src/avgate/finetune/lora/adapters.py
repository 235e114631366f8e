"""LoRA adapters (peft) on the encoder of an `AudioClassifier`: which layers, wrapping, parameter
counts, and saving and loading the adapters with the head.

The encoder's own weights never change: only the adapters (`lora_*` parameters) and the head
(`pool.*`, `head.*`) train (`checks.check_trainable` fails a run where anything else would),
unless `train.lora.train_base` names encoder modules to train in full (peft's
`modules_to_save`): the report counts those apart (`base_trained`), and the go/no-go check
`backbone_frozen` fails such a run.

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

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils import parametrize

from avgate.declare import PARAMS_FILE, ConfigError
from avgate.finetune.lora.classifier import AudioClassifier, load_encoder

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
HEAD_FILE = "head.safetensors"
HEAD_METADATA = "classifier"  # one metadata key (JSON): safetensors writes several in any order
CONFIG_FILE = "adapter_config.json"
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
    classifier: AudioClassifier,
    targets: list[str],
    r: int,
    alpha: int,
    dropout: float,
    train_base: list[str] | None = None,
) -> AudioClassifier:
    """Put LoRA adapters on `targets` of the encoder (in place); base weights frozen, head not,
    except the encoder modules named in `train_base`, which train in full."""
    if isinstance(classifier.encoder, PeftModel):
        raise ValueError("the encoder already has LoRA adapters")
    config = LoraConfig(
        target_modules=list(targets),
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        bias="none",
        modules_to_save=list(train_base) if train_base else None,
    )
    classifier.encoder = get_peft_model(classifier.encoder, config)
    _route_weight_reads(classifier.encoder)
    for name in HEAD_MODULES:
        getattr(classifier, name).requires_grad_(True)
    return classifier


BASE_TRAINED = "modules_to_save"  # peft's name for the trained copies of `train_base` modules


def _is_adapter(name: str) -> bool:
    return any(part.startswith("lora_") for part in name.split("."))


def _is_head(name: str) -> bool:
    return name.split(".")[0] in HEAD_MODULES


def _is_base_trained(name: str) -> bool:
    return BASE_TRAINED in name.split(".")


def parameter_report(model: nn.Module) -> dict[str, Any]:
    """Parameter counts (total, trainable, adapter, head, and `base_trained`: encoder modules
    trained in full by request) and the names of trainable parameters that are none of these
    (`unexpected`, which must be empty)."""
    params = dict(model.named_parameters())
    trainable = {name: p for name, p in params.items() if p.requires_grad}
    declared = (_is_adapter, _is_head, _is_base_trained)
    return {
        "total": sum(p.numel() for p in params.values()),
        "trainable": sum(p.numel() for p in trainable.values()),
        "adapter": sum(p.numel() for n, p in trainable.items() if _is_adapter(n)),
        "head": sum(p.numel() for n, p in trainable.items() if _is_head(n)),
        "base_trained": sum(p.numel() for n, p in trainable.items() if _is_base_trained(n)),
        "unexpected": [n for n in trainable if not any(kind(n) for kind in declared)],
    }


def save_adapter(model: AudioClassifier, folder: Path) -> None:
    """Adapter weights and `adapter_config.json` (peft), and the head as safetensors; the same
    model gives the same bytes in any process (see `_sort_targets`, `HEAD_METADATA`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(folder)
    _sort_targets(folder / CONFIG_FILE)
    head = {
        f"{name}.{key}": value.detach().contiguous()
        for name in HEAD_MODULES
        for key, value in getattr(model, name).state_dict().items()
    }
    classifier = {
        "n_classes": model.n_classes,
        "pooling": model.pooling,
        "audio_share": model.audio_share,
    }
    metadata = {HEAD_METADATA: json.dumps(classifier, sort_keys=True)}
    save_file(head, folder / HEAD_FILE, metadata=metadata)


def _sort_targets(path: Path) -> None:
    """peft writes `target_modules` from a set, in an order that changes with the process's hash
    seed: sort it, so that one model is one file."""
    config = json.loads(path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


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
        classifier = json.loads(f.metadata()[HEAD_METADATA])
    model = AudioClassifier(
        load_encoder(base_path),
        int(classifier["n_classes"]),
        classifier["pooling"],
        featurize,
        float(classifier["audio_share"]),
    )
    model.encoder = PeftModel.from_pretrained(model.encoder, folder, is_trainable=trainable)
    _route_weight_reads(model.encoder)
    head = load_file(folder / HEAD_FILE)
    for name in HEAD_MODULES:
        state = {k.removeprefix(f"{name}."): v for k, v in head.items() if k.startswith(f"{name}.")}
        getattr(model, name).load_state_dict(state)
        getattr(model, name).requires_grad_(trainable)
    return model
