"""The guarantees checked before LoRA trains: only adapters and head train (the freeze audit),
every adapter gets a gradient, and with the adapters off the encoder computes exactly what the
base checkpoint computes (forward equivalence at initialisation, measured on the hidden states
and on the logits the head reads from them; head.json records both for the go/no-go checks)."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import PeftModel
from torch import nn

from avgate.finetune.lora.adapters import parameter_report
from avgate.finetune.lora.classifier import AudioClassifier, load_encoder

EQUIVALENCE_TOLERANCE = 1e-5  # float32 kernels may order a sum differently: 7.2e-7 seen on AVX-512


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


def check_forward_equivalence(
    model: AudioClassifier, waveforms: torch.Tensor, base_path: Path
) -> dict[str, float]:
    """The encoder with its adapters disabled against a fresh load of the base checkpoint at
    `base_path` (both in eval mode): `max_abs_hidden_diff`, the largest absolute difference of
    their last hidden states, and `mean_abs_logit_diff`, the mean absolute difference of the
    logits the model's own pooling and head read from each."""
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
            logits = model.readout(disabled) - model.readout(base)
    finally:
        model.train(was_training)
    return {
        "max_abs_hidden_diff": (disabled - base).abs().max().item(),
        "mean_abs_logit_diff": logits.abs().mean().item(),
    }
