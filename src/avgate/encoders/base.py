"""The extension point: `Encoder`, the registry `ENCODERS` and `register`, and the helpers the
kinds share (device choice, fitting a waveform, running a model in chunks).

An encoder kind is an `Encoder` subclass registered under its kind, in the module of that name in
this package (`hf_audio` in hf_audio.py). `embed.encoders` maps each encoder's name to its kind,
and the section `embed.<name>` holds its options: a frozen dataclass of `avgate.declare.param`
fields declared in the kind's module (`options_type`), so errors name `embed.<name>.<key>`.
Looking a kind up by name (`avgate.encoders.registry`) imports that kind's module only, which is
why dvc.yaml's `embed@<name>` depends on `src/avgate/encoders/<kind>.py` alone; this module
imports no kind. docs/extending.md walks through adding one.

>>> from avgate.encoders.frames import FramesEncoder
>>> FramesEncoder.kind, FramesEncoder.modality, ENCODERS["frames"] is FramesEncoder
('frames', 'visual', True)
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
import torch

from avgate.declare import PARAMS_FILE, ConfigError, check_options_type, section

if TYPE_CHECKING:
    pass

MODALITIES = ("audio", "visual")
CPU = torch.device("cpu")


class Encoder(ABC):
    """Embeds each second of a clip: `(n_seconds, dim)` float32 rows.

    Declared by the kind (class attributes):
    - `kind`: the registry name, set by `register` (= the module's name);
    - `options_type`: the frozen dataclass of `param` fields the constructor takes (the keys of
      the section `embed.<name>`);
    - `modality`: 'audio' or 'visual' (a visual encoder refuses clips without video);
    - `batched`: False -> the embed stage calls `embed_seconds` in its DataLoader workers; True ->
      the workers only `load` (decode, on the CPU) and the main process runs `embed` on batches
      of loaded clips, on `device`;
    - `light`: a batched transform without a model, cheap enough to run in the workers too when
      the main process has no core of its own (stages/embed.py `in_main`);
    - `not_in_identity`: options that `identity()` states in another form, with the reason (an hf
      kind's `model` and `revision` become the weights' identity).
    Set by the constructor (instance attributes): `options`, `name` (the encoder's name in
    `embed.encoders`), `key` (`embed.<name>`, which errors name), `dim` (columns per row),
    `device` (where `embed` runs: the CPU unless the kind runs a model on `embed.device`), and
    for kinds whose row is several layers side by side, `n_layers` (`layer_dim` follows).

    Same options and same file give the same rows, bit for bit, on the same CPU.
    """

    kind: ClassVar[str]
    options_type: ClassVar[type]
    modality: ClassVar[str]
    batched: ClassVar[bool] = False
    light: ClassVar[bool] = False
    not_in_identity: ClassVar[Mapping[str, str]] = {}

    dim: int
    n_layers: int = 1
    device: torch.device = CPU

    def __init__(self, options: Any, device: str = "cpu", name: str = "") -> None:
        """`options` is an `options_type`; `device` is `embed.device` (kinds that run a model
        resolve it with `resolve_device`); `name` the encoder's name in `embed.encoders`."""
        self.options = options
        self.name = name or self.kind
        self.key = f"embed.{self.name}"

    @property
    def layer_dim(self) -> int:
        """Columns per layer: a row is `n_layers` blocks of `layer_dim` values."""
        return self.dim // self.n_layers

    @classmethod
    def check_options(cls, given: Mapping[str, Any], key: str) -> Any:
        """The section `key` (a mapping of option values) as `options_type`, checked against its
        declarations; unset options take their defaults, errors name `<key>.<option>`."""
        return section(cls.options_type, dict(given), key)

    @classmethod
    def options_in(cls, encoders: Mapping[str, str], sections: Mapping[str, Any], name: str) -> Any:
        """The section `embed.<name>` as this kind's options, checked; errors name
        `embed.<name>.<key>`. A name listed in `embed.encoders` must be of this kind, and takes
        the defaults without a section; a name not listed (`train.lora.encoder` names an
        hf_audio section) needs its section."""
        listed = encoders.get(name)
        if listed is not None and listed != cls.kind:
            raise ConfigError(
                f"{PARAMS_FILE}: embed.{name} must hold {cls.kind} options here, but "
                f"embed.encoders gives {name!r} the kind {listed!r}"
            )
        if listed is None and name not in sections:
            raise ConfigError(
                f"{PARAMS_FILE}: there is no section embed.{name} (the options of a {cls.kind} "
                f"encoder); sections: {sorted(sections)}"
            )
        return cls.check_options(sections.get(name, {}), f"embed.{name}")

    def identity(self) -> dict:
        """Everything that decides the rows, JSON-ready: the kind and its options (the store and
        `meta.json` key on it). Kinds add what else decides them (weights, library versions)."""
        options = dataclasses.asdict(self.options)
        return {
            "encoder": self.kind,
            **{k: v for k, v in options.items() if k not in self.not_in_identity},
        }

    @abstractmethod
    def load(self, path: str | Path, n_seconds: int) -> Any:
        """The clip decoded for `embed`, cut or padded to `n_seconds` (CPU only, worker-safe)."""

    @abstractmethod
    def embed(self, batch: list[Any]) -> list[np.ndarray]:
        """Loaded clips -> one float32 `(n_seconds, dim)` array each; batching changes no row
        beyond float rounding."""

    def embed_seconds(self, path: str | Path, n_seconds: int) -> np.ndarray:
        """The `(n_seconds, dim)` float32 rows of one file."""
        return self.embed([self.load(path, n_seconds)])[0]


ENCODERS: dict[str, type[Encoder]] = {}
Kind = TypeVar("Kind", bound=type[Encoder])


def register(kind: str) -> Callable[[Kind], Kind]:
    """Class decorator: make an `Encoder` subclass the kind `kind` (`embed.encoders: {<name>:
    <kind>}`); it sets the class's `kind` and checks the contract that can be checked without
    running it. The built-in kinds are registered in their module of the same name."""

    def add(cls: Kind) -> Kind:
        if not (isinstance(cls, type) and issubclass(cls, Encoder)):
            raise TypeError(f"{cls!r} is not an Encoder")
        if not kind.isidentifier():
            raise ValueError(f"encoder kind {kind!r} must be a Python identifier (a module name)")
        if inspect.isabstract(cls):
            missing = sorted(cls.__abstractmethods__)  # type: ignore[attr-defined]
            raise TypeError(f"{cls.__name__} does not implement {missing}")
        if getattr(cls, "modality", None) not in MODALITIES:
            raise TypeError(f"{cls.__name__}.modality must be one of {list(MODALITIES)}")
        _check_options_type(cls)
        if kind in ENCODERS:
            raise ValueError(f"encoder kind {kind!r} is registered twice")
        cls.kind = kind
        ENCODERS[kind] = cls
        return cls

    return add


def _check_options_type(cls: type[Encoder]) -> None:
    """TypeError unless `options_type` is a frozen dataclass of `param` fields whose names
    `not_in_identity` may name."""
    check_options_type(cls)
    options = cls.options_type
    unknown = sorted(set(cls.not_in_identity) - {f.name for f in dataclasses.fields(options)})
    if unknown:
        raise TypeError(f"{cls.__name__}.not_in_identity names no option: {unknown}")


# Helpers the kinds share: where a model runs, fitting a waveform, running a model in chunks.


def resolve_device(device: str, key: str) -> torch.device:
    """`auto` -> cuda when available, else cpu; any other torch device name as given. Under
    torchrun, a plain `cuda` means this rank's GPU, `cuda:$LOCAL_RANK`. `key` names the params
    section in errors.

    >>> resolve_device("cpu", "embed")
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
            f"{PARAMS_FILE}: {key}.device {device!r} is not a torch device; "
            "use 'cpu', 'cuda', 'cuda:1' or 'auto'"
        ) from error
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"{PARAMS_FILE}: {key}.device {device!r} but CUDA is not available here; "
            "use 'cpu' or 'auto'"
        )
    return chosen


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
