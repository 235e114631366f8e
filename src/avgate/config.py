"""Typed params: `params.yaml` sections validated once, with errors that name the key.

>>> params = Params.from_dict({"train": {"lr": 0.01}})
>>> params.train.lr, params.task.kind
(0.01, 'event')
>>> Params.from_dict({"train": {"lr": "fast"}})
Traceback (most recent call last):
...
avgate.config.ConfigError: params.yaml: train.lr must be a number, got 'fast'
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = "params.yaml"


class ConfigError(ValueError):
    """A params value that is missing, unknown or of the wrong type."""


@dataclass(frozen=True)
class DataParams:
    name: str = "demo"
    format: str = "ave"
    group_pattern: str = ""  # folder format: regex on the file name; first group = recording group
    manifest: str = "manifest.csv"  # csv format: the manifest's name inside the dataset root

    @property
    def raw_dir(self) -> Path:
        return Path("data/raw") / self.name

    @property
    def interim_dir(self) -> Path:
        return Path("data/interim") / self.name

    @property
    def splits_dir(self) -> Path:
        return Path("data/splits") / self.name


@dataclass(frozen=True)
class TaskParams:
    kind: str = "event"
    background_label: str = "background"


@dataclass(frozen=True)
class DemoParams:
    seed: int = 0
    n_clips: int = 120
    n_groups: int = 16
    clip_seconds: int = 10
    fps: int = 4
    size: int = 64
    snr_db: list[float] = field(default_factory=lambda: [0.0, 12.0])
    shape_opacity: list[float] = field(default_factory=lambda: [1.0, 1.0])
    event_seconds: list[int] = field(default_factory=lambda: [2, 8])
    confound: float = 0.3
    corrupt_fraction: float = 0.0
    workers: int = 0


@dataclass(frozen=True)
class IngestParams:
    min_ok_fraction: float = 0.95
    duration_tolerance_s: float = 0.5
    imbalance_warning_ratio: float = 5.0
    workers: int = 0


@dataclass(frozen=True)
class SplitParams:
    method: str = "group"
    seed: int = 0
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    test_fold: int = 1
    allow_leakage: bool = False


@dataclass(frozen=True)
class AuditParams:
    near_duplicate_cosine: float = 0.995
    max_pairs_listed: int = 20


@dataclass(frozen=True)
class LogmelParams:
    sample_rate: int = 16000
    n_mels: int = 64
    n_fft: int = 400
    hop_length: int = 160
    segments: int = 1


@dataclass(frozen=True)
class FramesParams:
    fps: int = 4
    size: int = 32
    grid: int = 4
    hist_bins: int = 8
    fg_threshold: float = 0.15


@dataclass(frozen=True)
class EmbedParams:
    encoders: list[str] = field(default_factory=lambda: ["logmel", "frames"])
    workers: int = 0
    device: str = "auto"  # auto | cpu | cuda: where encoders with a model run
    dtype: str = "float32"  # float32 | float16: the stored arrays
    batch_seconds: int = 64  # seconds of media per model batch
    cache_dir: str = "data/cache/embeddings"  # every clip embedded once per encoder config
    logmel: LogmelParams = field(default_factory=LogmelParams)
    frames: FramesParams = field(default_factory=FramesParams)
    models: dict = field(default_factory=dict)  # name -> section of a pretrained encoder


@dataclass(frozen=True)
class LoraParams:
    encoder: str = ""  # an embed.<name> section with encoder hf-audio:<id or path>: the base
    targets: str = "attention"  # attention | attention_mlp (resolved per architecture)
    r: int = 8
    alpha: int = 16
    dropout: float = 0.1
    lr: float = 0.0001
    epochs: int = 3
    batch_clips: int = 4  # clips per optimiser batch (all their seconds)
    accumulate: int = 1  # batches per optimiser step
    amp: bool = True  # bfloat16 autocast on CUDA; ignored on CPU
    pooling: str = "mean"  # mean | attention, over the frames of each second


@dataclass(frozen=True)
class TrainParams:
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    head: str = "mlp"  # mlp | linear, on the fused per-second (or pooled per-clip) embeddings
    fusion: str = "concat"  # concat | gated (a learned gate per modality)
    finetune: str = "none"  # none: heads on cached embeddings; lora: adapters on train.lora.encoder
    lora: LoraParams = field(default_factory=LoraParams)
    hidden: int = 128
    dropout: float = 0.2
    lr: float = 0.001
    weight_decay: float = 0.0001
    batch_size: int = 64
    max_epochs: int = 100
    patience: int = 10
    selection_metric: str = "val_loss"
    num_threads: int = 1


@dataclass(frozen=True)
class EvaluateParams:
    primary_metric: str = "segment_accuracy"
    aggregate_by: str = ""  # a manifest column naming the event each clip belongs to ("" = off)
    aggregate: str = "mean"  # how its clips' probabilities are pooled: mean or max
    test: str = "sealed"  # sealed | open: score test here too, recorded as "opened" in the ledger


@dataclass(frozen=True)
class GateParams:
    stage: str = "selection"  # a stage name of gates.yaml, or selection (validation, no ledger)
    candidate: str = ""  # the candidate line a test-split look is recorded under in the ledger
    n_resamples: int = 10000  # cluster-bootstrap resamples for a stage's ci_low_min


@dataclass(frozen=True)
class Params:
    data: DataParams = field(default_factory=DataParams)
    task: TaskParams = field(default_factory=TaskParams)
    demo: DemoParams = field(default_factory=DemoParams)
    ingest: IngestParams = field(default_factory=IngestParams)
    split: SplitParams = field(default_factory=SplitParams)
    audit: AuditParams = field(default_factory=AuditParams)
    embed: EmbedParams = field(default_factory=EmbedParams)
    train: TrainParams = field(default_factory=TrainParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    gate: GateParams = field(default_factory=GateParams)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Params:
        params = _build(cls, data, "")
        _check(params)
        return params

    @classmethod
    def load(cls, path: str | Path = PARAMS_FILE) -> Params:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: not found; run avgate from the project root")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: must be a mapping of sections, got {type(data).__name__}")
        return cls.from_dict(data)


TASK_KINDS = ("event", "clip")
FORMATS = ("ave", "esc50", "fsdd", "folder", "csv")
SPLIT_METHODS = ("group", "predefined", "intra_group", "random")


def _check(params: Params) -> None:
    """Cross-field checks that types alone cannot express."""
    if params.task.kind not in TASK_KINDS:
        _fail("task.kind", f"must be one of {list(TASK_KINDS)}", params.task.kind)
    if params.data.format not in FORMATS:
        _fail("data.format", f"must be one of {list(FORMATS)}", params.data.format)
    if params.split.method == "random" and not params.split.allow_leakage:
        _fail(
            "split.method",
            "'random' puts a group on both sides of the split; set split.allow_leakage: true "
            "to measure how much a leaky split inflates scores",
            params.split.method,
        )
    if not 0 < params.audit.near_duplicate_cosine <= 1:
        _fail(
            "audit.near_duplicate_cosine", "must lie in (0, 1]", params.audit.near_duplicate_cosine
        )
    if params.split.method not in SPLIT_METHODS:
        _fail("split.method", f"must be one of {list(SPLIT_METHODS)}", params.split.method)
    for key in ("val_fraction", "test_fraction"):
        value = getattr(params.split, key)
        if not 0 < value < 0.5:
            _fail(f"split.{key}", "must lie strictly between 0 and 0.5", value)
    if not 0 <= params.ingest.min_ok_fraction <= 1:
        _fail("ingest.min_ok_fraction", "must lie in [0, 1]", params.ingest.min_ok_fraction)
    if not 0 <= params.demo.corrupt_fraction <= 1:
        _fail("demo.corrupt_fraction", "must lie in [0, 1]", params.demo.corrupt_fraction)
    if not 0 <= params.demo.confound <= 1:
        _fail("demo.confound", "must lie in [0, 1]", params.demo.confound)
    if len(params.demo.snr_db) != 2 or params.demo.snr_db[0] > params.demo.snr_db[1]:
        _fail("demo.snr_db", "must be [low, high] with low <= high", params.demo.snr_db)
    opacity = params.demo.shape_opacity
    if len(opacity) != 2 or not 0 <= opacity[0] <= opacity[1] <= 1:
        _fail("demo.shape_opacity", "must be [low, high] with 0 <= low <= high <= 1", opacity)
    low, high = (params.demo.event_seconds + [0, 0])[:2]
    if len(params.demo.event_seconds) != 2 or not 1 <= low <= high <= params.demo.clip_seconds:
        _fail(
            "demo.event_seconds",
            f"must be [shortest, longest] with 1 <= shortest <= longest <= demo.clip_seconds "
            f"({params.demo.clip_seconds})",
            params.demo.event_seconds,
        )
    if params.train.selection_metric not in ("val_loss", "val_accuracy"):
        _fail("train.selection_metric", "must be val_loss or val_accuracy",
              params.train.selection_metric)  # fmt: skip
    if params.evaluate.test not in ("sealed", "open"):
        _fail("evaluate.test", "must be sealed or open (see README, the sealed test split)",
              params.evaluate.test)  # fmt: skip
    if params.evaluate.aggregate not in ("mean", "max"):
        _fail("evaluate.aggregate", "must be mean or max", params.evaluate.aggregate)
    if params.evaluate.aggregate_by and params.task.kind != "clip":
        _fail("evaluate.aggregate_by", "needs task.kind: clip (it pools clips into events)",
              params.evaluate.aggregate_by)  # fmt: skip
    if not params.train.seeds:
        _fail("train.seeds", "must list at least one seed", params.train.seeds)
    if len(set(params.train.seeds)) != len(params.train.seeds):
        _fail("train.seeds", "must not repeat a seed", params.train.seeds)
    if not params.embed.encoders:
        _fail("embed.encoders", "must list at least one encoder", params.embed.encoders)
    if params.train.head not in ("mlp", "linear"):
        _fail("train.head", "must be mlp or linear", params.train.head)
    if params.train.fusion not in ("concat", "gated"):
        _fail("train.fusion", "must be concat or gated", params.train.fusion)
    if params.train.finetune not in ("none", "lora"):
        _fail("train.finetune", "must be none or lora", params.train.finetune)
    lora = params.train.lora
    if params.train.finetune == "lora" and lora.encoder not in params.embed.models:
        _fail("train.lora.encoder", "must name an embed.<name> section with an hf-audio encoder",
              lora.encoder)  # fmt: skip
    if (
        lora.r < 1
        or lora.alpha < 1
        or lora.epochs < 1
        or lora.batch_clips < 1
        or lora.accumulate < 1
    ):
        _fail("train.lora", "r, alpha, epochs, batch_clips and accumulate must be >= 1", vars(lora))
    if lora.pooling not in ("mean", "attention"):
        _fail("train.lora.pooling", "must be mean or attention", lora.pooling)
    if params.embed.device not in ("auto", "cpu", "cuda"):
        _fail("embed.device", "must be auto, cpu or cuda", params.embed.device)
    if params.embed.dtype not in ("float32", "float16"):
        _fail("embed.dtype", "must be float32 or float16", params.embed.dtype)
    if params.embed.batch_seconds < 1:
        _fail("embed.batch_seconds", "must be a positive whole number", params.embed.batch_seconds)
    if params.gate.n_resamples < 1:
        _fail("gate.n_resamples", "must be a positive whole number", params.gate.n_resamples)


def _fail(key: str, rule: str, value: Any) -> typing.NoReturn:
    raise ConfigError(f"{PARAMS_FILE}: {key} {rule}, got {value!r}")


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        _fail(prefix.rstrip("."), "must be a mapping", data)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    if cls is EmbedParams:
        data = _gather_models(data, names)
    unknown = sorted(set(data) - names)
    if unknown:
        where = prefix.rstrip(".") or "top level"
        raise ConfigError(
            f"{PARAMS_FILE}: unknown key(s) {unknown} in {where}; known: {sorted(names)}"
        )
    values = {name: _convert(hints[name], data[name], prefix + name) for name in data}
    return cls(**values)


def _gather_models(data: dict, names: set[str]) -> dict:
    """`embed.<name>` sections naming an `encoder` (pretrained models) go to `models`."""
    models = {k: v for k, v in data.items() if k not in names and isinstance(v, dict)
              and "encoder" in v}  # fmt: skip
    return {**{k: v for k, v in data.items() if k not in models}, "models": models}


def _convert(kind: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(kind):
        return _build(kind, value, key + ".")
    origin = typing.get_origin(kind)
    if kind is dict:
        if not isinstance(value, dict):
            _fail(key, "must be a mapping", value)
        return value
    if origin is list:
        if not isinstance(value, list):
            _fail(key, "must be a list", value)
        (item,) = typing.get_args(kind)
        return [_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported params type for {key}: {kind}")
    return _scalar(kind, value, key)


def _scalar(kind: type, value: Any, key: str) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            _fail(key, "must be true or false", value)
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(key, "must be an integer", value)
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            _fail(key, "must be a number", value)
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            _fail(key, "must be a string", value)
        return value
    raise TypeError(f"unsupported params type for {key}: {kind}")
