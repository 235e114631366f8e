"""`hf_vision`: per-second embeddings from a Hugging Face image model.

Frames are sampled at `fps` and brought to `size` x `size` while decoding, the way the model's
image processor would: processors that resize the shortest edge (CLIP, DINOv2) keep the aspect
ratio and crop the centre, at the processor's own resize-to-crop ratio; the rest (ViT, SigLIP)
squash. Pixels are then rescaled and normalised with the processor's saved values
(`preprocessor_config.json`), read directly so that neither PIL nor torchvision is needed.
A model with `get_image_features` (CLIP, SigLIP) gives its projected image features; any other
gives its pooled output, or the mean of its last hidden state when it has no pooler. A second's
embedding is the mean over its frames.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avgate import media
from avgate.declare import NOT_EMPTY, PARAMS_FILE, REQUIRED, ConfigError, bound, param
from avgate.encoders.base import (
    Encoder,
    register,
    resolve_device,
    run_chunked,
    split_rows,
    versions,
)
from avgate.encoders.hf_common import AS_WEIGHTS, from_pretrained, text_sha256, weights_identity


@dataclass(frozen=True)
class HFVisionOptions:
    model: str = param(
        REQUIRED,
        "a hub id (e.g. openai/clip-vit-base-patch32) or a local folder written by "
        "save_pretrained, with its preprocessor_config.json",
        NOT_EMPTY,
    )
    revision: str = param("main", "the hub revision (branch, tag or commit) of `model`", NOT_EMPTY)
    fps: int = param(1, "frames embedded per second (their embeddings are averaged)", bound(">= 1"))
    size: int = param(
        224,
        "input resolution in pixels (a size other than the model's interpolates its position "
        "embeddings)",
        bound(">= 1"),
    )


@register("hf_vision")
class HFVisionEncoder(Encoder):
    """Image-model embeddings of the frames of each second, averaged; `dim` = feature width.

    `size` is the input resolution; one model at several sizes caches side by side, since the
    size is part of `identity()`. A size other than the model's own interpolates its position
    embeddings.
    """

    options_type = HFVisionOptions
    options: HFVisionOptions
    modality = "visual"
    batched = True  # decode in DataLoader workers, run the model on batches in the main process
    not_in_identity = {"model": AS_WEIGHTS, "revision": AS_WEIGHTS}
    max_frames = 64  # frames per forward pass: bounds memory on long clips

    def __init__(self, options: HFVisionOptions, device: str = "cpu", name: str = "") -> None:
        super().__init__(options, device, name)
        self.model = options.model
        self.revision = options.revision
        self.fps = options.fps
        self.size = options.size
        self.device = resolve_device(device, "embed")
        self.preprocessor = read_preprocessor(self.model, self.revision, self.key)
        self.resize_edge = resize_edge(self.preprocessor, self.size)
        self.mean, self.std, self.rescale = self._normalisation()
        from transformers import AutoModel

        loaded = from_pretrained(
            AutoModel, self.model, self.revision, self.key, dtype=torch.float32
        )
        self.network = loaded.to(self.device).eval()
        self.commit = getattr(loaded.config, "_commit_hash", None)
        self.extra = self._interpolation()
        self.features = self._feature_kind()
        probe = np.zeros((1, self.size, self.size, 3), np.uint8)
        self.dim = run_chunked(self._forward, probe, 1, 0).shape[1]
        self._identity: dict | None = None

    def _normalisation(self) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Per-channel mean and std (identity when the processor skips normalising) and the
        rescale factor."""
        config = self.preprocessor
        mean, std = config.get("image_mean", [0.0] * 3), config.get("image_std", [1.0] * 3)
        if not config.get("do_normalize", True):
            mean, std = [0.0] * 3, [1.0] * 3
        rescale = config.get("rescale_factor", 1 / 255) if config.get("do_rescale", True) else 1.0
        mean, std = (torch.tensor(v).float().view(3, 1, 1).to(self.device) for v in (mean, std))
        return mean, std, float(rescale)

    def _interpolation(self) -> dict:
        """Forward kwargs: interpolate position embeddings when `size` is not the model's."""
        config = self.network.config
        native = getattr(getattr(config, "vision_config", config), "image_size", self.size)
        return {"interpolate_pos_encoding": True} if native != self.size else {}

    def _feature_kind(self) -> str:
        if hasattr(self.network, "get_image_features"):
            return "image_features"
        pixels = torch.zeros(1, 3, self.size, self.size, device=self.device)
        with torch.inference_mode():
            pooled = self.network(pixel_values=pixels, **self.extra).pooler_output
        return "mean_last_hidden_state" if pooled is None else "pooler_output"

    def identity(self) -> dict:
        """What decides the arrays; the weights are hashed on the first call only."""
        if self._identity is None:
            self._identity = {
                **super().identity(),
                **weights_identity(self.model, self.revision, self.commit),
                "architecture": type(self.network).__name__,
                "features": self.features,
                "resize_edge": self.resize_edge,
                "preprocessor_sha256": text_sha256(json.dumps(self.preprocessor, sort_keys=True)),
                **versions("torch", "transformers", "av"),
            }
        return self._identity

    def load(self, path: str | Path, n_seconds: int) -> np.ndarray:
        """uint8 frames (n_seconds * fps, size, size, 3), resized and cropped (CPU only)."""
        frames = media.decode_frames(path, self.fps, self._decode_size(path))
        return center_crop(media.fit_length(frames, n_seconds * self.fps), self.size)

    def _decode_size(self, path: str | Path) -> tuple[int, int]:
        """(width, height) to decode at: shortest edge at `resize_edge`, or squashed square."""
        if self.resize_edge is None:
            return self.size, self.size
        info = media.probe(path)
        if not info.width or not info.height:
            raise media.MediaError(path, "video stream without a frame size")
        return shortest_edge_size(info.width, info.height, self.resize_edge)

    def embed(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        """Loaded frames -> float32 (n_seconds, dim) each; all frames run together."""
        flat = np.concatenate(batch) if batch else np.zeros((0, self.size, self.size, 3))
        rows = run_chunked(self._forward, flat, self.max_frames, self.dim)
        per_second = rows.reshape(-1, self.fps, self.dim).mean(axis=1)
        return split_rows(per_second, [len(frames) // self.fps for frames in batch])

    def _forward(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (F, size, size, 3) -> (F, dim) frame embeddings."""
        pixels = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        pixels = (pixels.permute(0, 3, 1, 2).float() * self.rescale - self.mean) / self.std
        if self.features == "image_features":
            out = self.network.get_image_features(pixel_values=pixels, **self.extra)
            return out if isinstance(out, torch.Tensor) else out.pooler_output
        out = self.network(pixel_values=pixels, **self.extra)
        if self.features == "pooler_output":
            return out.pooler_output.flatten(1)
        return out.last_hidden_state.mean(dim=1)


def read_preprocessor(model: str, revision: str, key: str) -> dict:
    """The model's saved image-processor settings (`preprocessor_config.json`); errors name
    `<key>.model`."""
    from transformers.utils import cached_file

    try:
        path = cached_file(model, "preprocessor_config.json", revision=revision)
    except OSError as error:
        raise ConfigError(
            f"{PARAMS_FILE}: {key}.model {model!r} (revision {revision!r}) has no readable "
            f"preprocessor_config.json: {error}; save the image processor with the model"
        ) from error
    return json.loads(Path(path).read_text())


def resize_edge(preprocessor: dict, size: int) -> int | None:
    """Shortest edge to resize to before cropping `size`, keeping the processor's
    resize-to-crop ratio; None when the processor squashes to a fixed height and width.

    >>> config = {"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224}}
    >>> resize_edge(config, 112), resize_edge({"size": {"height": 224, "width": 224}}, 112)
    (128, None)
    """
    edge = (preprocessor.get("size") or {}).get("shortest_edge")
    if edge is None:
        return None
    crop = (preprocessor.get("crop_size") or {}).get("height", edge)
    cropping = preprocessor.get("do_center_crop", True)
    return round(size * edge / crop) if cropping else size


def shortest_edge_size(width: int, height: int, edge: int) -> tuple[int, int]:
    """(width, height) scaled so that the shorter side is `edge`.

    >>> shortest_edge_size(640, 480, 224)
    (298, 224)
    """
    if width <= height:
        return edge, int(edge * height / width)
    return int(edge * width / height), edge


def center_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """The central `size` x `size` of (n, h, w, 3) frames.

    >>> center_crop(np.zeros((2, 6, 8, 3)), 4).shape
    (2, 4, 4, 3)
    """
    top, left = (frames.shape[1] - size) // 2, (frames.shape[2] - size) // 2
    return np.ascontiguousarray(frames[:, top : top + size, left : left + size])
