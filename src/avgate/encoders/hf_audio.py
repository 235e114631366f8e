"""`hf_audio`: per-second embeddings from the hidden states of a Hugging Face audio model.

Each second of a clip is a separate 1-s window. The model runs on every window with
`output_hidden_states=True` and each hidden state is mean-pooled over time, giving one vector per
second per layer. The same path serves the wav2vec2 family (WavLM, wav2vec2, HuBERT) and AST;
for an encoder-decoder (Whisper) only the encoder runs, and only the positions that hold the
second itself are pooled (Whisper pads every input to 30 s); for CLAP the audio tower runs and
its pooled output is the embedding (`layer: last` only, its stages differ in width).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avgate import media
from avgate.declare import NOT_EMPTY, PARAMS_FILE, REQUIRED, ConfigError, Rule, bound, param
from avgate.encoders.base import (
    Encoder,
    fit_waveform,
    register,
    resolve_device,
    run_chunked,
    split_rows,
    versions,
)
from avgate.encoders.hf_common import AS_WEIGHTS, from_pretrained, text_sha256, weights_identity

LAYER = Rule(
    "`last`, `all`, or a hidden-state index >= 0",
    "be 'last', 'all' or a hidden-state index >= 0 (0 = the embedding output)",
    lambda layer: layer in ("last", "all") or layer.isdigit(),
)


@dataclass(frozen=True)
class HFAudioOptions:
    model: str = param(
        REQUIRED,
        "a hub id (e.g. microsoft/wavlm-base-plus) or a local folder written by save_pretrained",
        NOT_EMPTY,
    )
    revision: str = param("main", "the hub revision (branch, tag or commit) of `model`", NOT_EMPTY)
    layer: str = param(
        "last",
        "last: the last hidden state; an index: that hidden state (0 = the embedding output); "
        "all: every hidden state side by side (for a learned weighted sum over layers)",
        LAYER,
    )
    sample_rate: int = param(
        16000, "audio is resampled to this rate (Hz); the model's own", bound(">= 1")
    )


@register("hf_audio")
class HFAudioEncoder(Encoder):
    """Mean-pooled hidden states of a transformers audio model, one row per second.

    `layer`: `last` -> the last hidden state (`dim` = hidden size); an index -> that entry of
    `hidden_states` (0 = the embedding/CNN output); `all` -> every hidden state side by side in
    layer order. A row is `n_layers` blocks of `layer_dim` values each (`n_layers` is 1 unless
    `layer` is `all`), so `row.reshape(n_layers, layer_dim)` gives one vector per layer.
    """

    options_type = HFAudioOptions
    options: HFAudioOptions
    modality = "audio"
    batched = True  # decode in DataLoader workers, run the model on batches in the main process
    not_in_identity = {"model": AS_WEIGHTS, "revision": AS_WEIGHTS}
    max_windows = 64  # 1-s windows per forward pass: bounds memory on long clips

    @classmethod
    def check_options(cls, given: Mapping[str, Any], key: str) -> HFAudioOptions:
        """As the base's, with `layer: 3` (a YAML integer) read as the index '3'."""
        if type(given.get("layer")) is int:
            given = {**given, "layer": str(given["layer"])}
        return super().check_options(given, key)

    def __init__(self, options: HFAudioOptions, device: str = "cpu", name: str = "") -> None:
        super().__init__(options, device, name)
        self.model = options.model
        self.revision = options.revision
        self.layer = int(options.layer) if options.layer.isdigit() else options.layer
        self.sample_rate = options.sample_rate
        self.device = resolve_device(device, "embed")
        from transformers import AutoFeatureExtractor, AutoModel

        self.extractor = from_pretrained(AutoFeatureExtractor, self.model, self.revision, self.key)
        loaded = from_pretrained(
            AutoModel, self.model, self.revision, self.key, dtype=torch.float32
        )
        self.network = audio_tower(loaded).to(self.device).eval()
        self._check_rate()
        config = self.network.config
        self.is_clap = config.model_type.startswith("clap")
        self.hidden_states = config.num_hidden_layers + 1
        self.indices = self._layer_indices()
        self.n_layers = len(self.indices) if self.layer == "all" else 1
        self.dim = self.n_layers * config.hidden_size
        self.commit = getattr(loaded.config, "_commit_hash", None)
        self._identity: dict | None = None

    def _check_rate(self) -> None:
        native = self.extractor.sampling_rate
        if native != self.sample_rate:
            raise ConfigError(
                f"{PARAMS_FILE}: {self.key}.sample_rate {self.sample_rate} differs from the "
                f"{native} Hz the model's feature extractor expects; set it to {native}"
            )

    def _layer_indices(self) -> list[int]:
        """Indices into `hidden_states` that `layer` selects; empty for `last`."""
        if self.is_clap and self.layer != "last":
            raise ConfigError(
                f"{PARAMS_FILE}: {self.key}.layer {self.layer!r}: a CLAP audio tower offers only "
                "its pooled output; use 'last'"
            )
        if self.layer == "last":
            return []
        if self.layer == "all":
            return list(range(self.hidden_states))
        if not 0 <= self.layer < self.hidden_states:
            raise ConfigError(
                f"{PARAMS_FILE}: {self.key}.layer {self.layer} is out of range: the model returns "
                f"{self.hidden_states} hidden states; use 0..{self.hidden_states - 1}, "
                "'last' or 'all'"
            )
        return [self.layer]

    def identity(self) -> dict:
        """What decides the arrays; the weights are hashed on the first call only."""
        if self._identity is None:
            self._identity = {
                **super().identity(),
                **weights_identity(self.model, self.revision, self.commit),
                "architecture": type(self.network).__name__,
                "layer": self.layer,
                "n_layers": self.n_layers,
                "layer_dim": self.layer_dim,
                "window_s": 1,
                "preprocessor_sha256": text_sha256(self.extractor.to_json_string()),
                **versions("torch", "transformers"),
            }
        return self._identity

    def load(self, path: str | Path, n_seconds: int) -> np.ndarray:
        """Mono float32 waveform of exactly `n_seconds` seconds (CPU only; worker-safe)."""
        audio = media.decode_audio(path, self.sample_rate)
        return fit_waveform(audio, n_seconds * self.sample_rate)

    def embed(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        """Loaded waveforms -> float32 (n_seconds, dim) each; all seconds run together."""
        windows = [wave.reshape(-1, self.sample_rate) for wave in batch]
        flat = np.concatenate(windows) if windows else np.zeros((0, self.sample_rate))
        rows = run_chunked(self._forward, flat, self.max_windows, self.dim)
        return split_rows(rows, [len(w) for w in windows])

    def _forward(self, windows: np.ndarray) -> torch.Tensor:
        """(W, samples) windows -> (W, dim) pooled hidden states."""
        inputs = self.extractor(
            list(windows), sampling_rate=self.sample_rate, return_tensors="pt"
        ).to(self.device)
        outputs = self.network(**inputs, output_hidden_states=bool(self.indices))
        if self.is_clap:
            return outputs.pooler_output
        if not self.indices:
            return self._pool(outputs.last_hidden_state)
        return torch.cat([self._pool(outputs.hidden_states[i]) for i in self.indices], dim=1)

    def _pool(self, state: torch.Tensor) -> torch.Tensor:
        """Mean over the time positions that hold the window: (W, T, H) -> (W, H)."""
        share = audio_share(self.extractor, self.sample_rate)
        return state[:, : math.ceil(state.shape[1] * share)].mean(dim=1)


def audio_share(extractor: Any, sample_rate: int) -> float:
    """The share of a model's time positions that hold a 1-s input: 1/30 for Whisper, whose
    feature extractor pads every input to 30 s (`n_samples`); 1 for models that take it as is.
    """
    padded = getattr(extractor, "n_samples", None)
    return min(1.0, sample_rate / padded) if padded else 1.0


def audio_tower(model: torch.nn.Module) -> torch.nn.Module:
    """The part of `model` that maps audio to hidden states: an encoder-decoder's encoder,
    CLAP's audio model, else `model` itself."""
    if getattr(model.config, "is_encoder_decoder", False):
        return model.get_encoder()
    if model.config.model_type == "clap":
        return model.audio_model
    return model
