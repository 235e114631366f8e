"""`hf-audio`: per-second embeddings from the hidden states of a Hugging Face audio model.

Each second of a clip is a separate 1-s window. The model runs on every window with
`output_hidden_states=True` and each hidden state is mean-pooled over time, giving one vector per
second per layer. The same path serves the wav2vec2 family (WavLM, wav2vec2, HuBERT) and AST;
for an encoder-decoder (Whisper) only the encoder runs, and only the positions that hold the
second itself are pooled (Whisper pads every input to 30 s); for CLAP the audio tower runs and
its pooled output is the embedding (`layer: last` only, its stages differ in width).

The helpers at the bottom (device choice, weights identity, chunked inference) serve every
encoder with weights.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avgate import media
from avgate.declare import ConfigError
from avgate.files import sha256_of

KEY = "embed.hf_audio"
WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


class HFAudioEncoder:
    """Mean-pooled hidden states of a transformers audio model, one row per second.

    `layer`: `last` -> the last hidden state (`dim` = hidden size); an int -> that entry of
    `hidden_states` (0 = the embedding/CNN output); `all` -> every hidden state side by side in
    layer order. A row is `n_layers` blocks of `layer_dim` values each (`n_layers` is 1 unless
    `layer` is `all`), so `row.reshape(n_layers, layer_dim)` gives one vector per layer.
    """

    name = "hf-audio"
    batched = True  # decode in DataLoader workers, run the model on batches in the main process
    modality = "audio"
    max_windows = 64  # 1-s windows per forward pass: bounds memory on long clips

    def __init__(
        self,
        model: str,
        revision: str = "main",
        layer: str | int = "last",
        sample_rate: int = 16000,
        device: str = "cpu",
    ) -> None:
        check_layer_kind(layer)
        check_positive(sample_rate, f"{KEY}.sample_rate")
        self.model = model
        self.revision = revision
        self.layer = layer
        self.sample_rate = sample_rate
        self.device = resolve_device(device, KEY)
        from transformers import AutoFeatureExtractor, AutoModel

        self.extractor = from_pretrained(AutoFeatureExtractor, model, revision, KEY)
        loaded = from_pretrained(AutoModel, model, revision, KEY, dtype=torch.float32)
        self.network = audio_tower(loaded).to(self.device).eval()
        self._check_rate()
        config = self.network.config
        self.is_clap = config.model_type.startswith("clap")
        self.hidden_states = config.num_hidden_layers + 1
        self.indices = self._layer_indices()
        self.n_layers = len(self.indices) if layer == "all" else 1
        self.layer_dim = config.hidden_size
        self.dim = self.n_layers * self.layer_dim
        self.commit = getattr(loaded.config, "_commit_hash", None)
        self._identity: dict | None = None

    def _check_rate(self) -> None:
        native = self.extractor.sampling_rate
        if native != self.sample_rate:
            raise ConfigError(
                f"params.yaml: {KEY}.sample_rate {self.sample_rate} differs from the "
                f"{native} Hz the model's feature extractor expects; set it to {native}"
            )

    def _layer_indices(self) -> list[int]:
        """Indices into `hidden_states` that `layer` selects; empty for `last`."""
        if self.is_clap and self.layer != "last":
            raise ConfigError(
                f"params.yaml: {KEY}.layer {self.layer!r}: a CLAP audio tower offers only "
                "its pooled output; use 'last'"
            )
        if self.layer == "last":
            return []
        if self.layer == "all":
            return list(range(self.hidden_states))
        if not 0 <= self.layer < self.hidden_states:
            raise ConfigError(
                f"params.yaml: {KEY}.layer {self.layer} is out of range: the model returns "
                f"{self.hidden_states} hidden states; use 0..{self.hidden_states - 1}, "
                "'last' or 'all'"
            )
        return [self.layer]

    def identity(self) -> dict:
        """What decides the arrays; the weights are hashed on the first call only."""
        if self._identity is None:
            self._identity = {
                "encoder": self.name,
                **weights_identity(self.model, self.revision, self.commit),
                "architecture": type(self.network).__name__,
                "layer": self.layer,
                "n_layers": self.n_layers,
                "layer_dim": self.layer_dim,
                "sample_rate": self.sample_rate,
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

    def embed_seconds(self, path: str | Path, n_seconds: int) -> np.ndarray:
        return self.embed([self.load(path, n_seconds)])[0]

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


def check_layer_kind(layer: Any) -> None:
    """`layer` must be 'last', 'all' or a non-negative int."""
    if layer in ("last", "all") or (type(layer) is int and layer >= 0):
        return
    raise ConfigError(
        f"params.yaml: {KEY}.layer {layer!r} is not a layer choice; use 'last', 'all' or a "
        "hidden-state index (0 = the embedding output)"
    )


def check_positive(value: Any, key: str) -> None:
    """`value` must be a positive int; `key` names it in the error.

    >>> check_positive(0, "embed.x.fps")
    Traceback (most recent call last):
    ...
    avgate.declare.ConfigError: params.yaml: embed.x.fps 0 must be a positive integer
    """
    if type(value) is not int or value < 1:
        raise ConfigError(f"params.yaml: {key} {value!r} must be a positive integer")


def resolve_device(device: str, key: str) -> torch.device:
    """`auto` -> cuda when available, else cpu; any other torch device name as given. Under
    torchrun, a plain `cuda` means this rank's GPU, `cuda:$LOCAL_RANK`.

    >>> resolve_device("cpu", "embed.x")
    device(type='cpu')
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{os.environ['LOCAL_RANK']}"
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(
            f"params.yaml: {key}.device {device!r} is not a torch device; "
            "use 'cpu', 'cuda', 'cuda:1' or 'auto'"
        ) from error
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"params.yaml: {key}.device {device!r} but CUDA is not available here; "
            "use 'cpu' or 'auto'"
        )
    return chosen


def from_pretrained(loader: Any, model: str, revision: str, key: str, **kwargs: Any) -> Any:
    """`loader.from_pretrained(model, revision=...)`; a failure becomes a ConfigError.

    A local folder or a hub id already in the Hugging Face cache loads without the network. A
    hub id not cached is downloaded only when the hub is reachable: offline it fails at once,
    not after the hub client's minute of retries.
    """
    try:
        return loader.from_pretrained(model, revision=revision, local_files_only=True, **kwargs)
    except (OSError, ValueError, KeyError) as error:
        offline = None if Path(model).is_dir() else hub_unreachable()
        if Path(model).is_dir() or offline:
            where = f"the hub is unreachable ({offline})" if offline else "a local folder"
            raise ConfigError(
                f"params.yaml: {key}.encoder names {model!r} (revision {revision!r}), which "
                f"could not be loaded ({where}): {error}; give a local folder written by "
                "save_pretrained, or a hub id already in the local Hugging Face cache"
            ) from error
    try:
        return loader.from_pretrained(model, revision=revision, **kwargs)
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(
            f"params.yaml: {key}.encoder names {model!r} (revision {revision!r}), which could "
            f"not be loaded from the hub: {error}"
        ) from error


def hub_unreachable(timeout_s: float = 3.0) -> str | None:
    """Why the Hugging Face hub cannot be reached now (HF_HUB_OFFLINE, no connection), or None."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
    except OSError as error:
        return f"no connection to {host}: {error}"
    return None


def weights_identity(model: str, revision: str, commit: str | None) -> dict:
    """What identifies the weights: a local folder by the hash of its weight files, a hub id
    by the id, the revision asked for and the commit it resolved to.

    >>> weights_identity("org/model", "v1", None)
    {'weights': 'hub', 'hub_id': 'org/model', 'revision': 'v1', 'commit': None}
    """
    folder = Path(model)
    if folder.is_dir():
        return {"weights": "local folder", "weights_sha256": folder_weights_sha256(folder)}
    return {"weights": "hub", "hub_id": model, "revision": revision, "commit": commit}


def folder_weights_sha256(folder: Path) -> str:
    """SHA-256 over a folder's weight files (*.safetensors, *.bin), in name order."""
    files = sorted({f for pattern in WEIGHT_PATTERNS for f in folder.glob(pattern)})
    if not files:
        raise ConfigError(f"{folder}: no *.safetensors or *.bin weight files to identify")
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name} {sha256_of(file)}\n".encode())
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    """
    >>> text_sha256("")[:8]
    'e3b0c442'
    """
    return hashlib.sha256(text.encode()).hexdigest()


def versions(*packages: str) -> dict:
    """Installed versions of `packages`, keyed `<package>_version`."""
    return {f"{p}_version": importlib.metadata.version(p) for p in packages}


def fit_waveform(audio: np.ndarray, samples: int) -> np.ndarray:
    """Trim to `samples`, or pad with silence.

    >>> fit_waveform(np.ones(3, np.float32), 5)
    array([1., 1., 1., 0., 0.], dtype=float32)
    """
    return np.pad(audio[:samples], (0, max(0, samples - len(audio)))).astype(np.float32)


def run_chunked(
    forward: Callable[[Any], torch.Tensor], items: Sequence, chunk: int, dim: int
) -> np.ndarray:
    """`forward` over `items` `chunk` at a time under inference mode: float32 (len(items), dim)."""
    if len(items) == 0:
        return np.zeros((0, dim), np.float32)
    with torch.inference_mode():
        parts = [forward(items[i : i + chunk]).float().cpu() for i in range(0, len(items), chunk)]
    return torch.cat(parts).numpy()


def split_rows(rows: np.ndarray, counts: list[int]) -> list[np.ndarray]:
    """Cut stacked rows back into per-clip arrays of `counts` rows each.

    >>> [part.shape for part in split_rows(np.zeros((5, 2)), [3, 2])]
    [(3, 2), (2, 2)]
    """
    return np.split(rows, np.cumsum(counts)[:-1]) if counts else []
