"""Typed params: `params.yaml` sections validated once, with errors that name the key.

Every key is declared once, on its dataclass field: `param(default, meaning, *rules)`. The
declarations drive the validation, its messages and the table in docs/params.md
(`params_table_markdown()`); rules that relate several keys are the functions in `_check`.

>>> params = Params.from_dict({"train": {"lr": 0.01}})
>>> params.train.lr, params.task.kind
(0.01, 'event')
>>> Params.from_dict({"train": {"lr": "fast"}})
Traceback (most recent call last):
...
avgate.declare.ConfigError: params.yaml: train.lr must be a number, got 'fast'
>>> Params.from_dict({"train": {"lr": -0.1}})
Traceback (most recent call last):
...
avgate.declare.ConfigError: params.yaml: train.lr must be > 0 (learning rate of the head), got -0.1
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from avgate.declare import (
    FOLDER_NAME,
    NOT_EMPTY,
    PAIR,
    PARAMS_FILE,
    UNIQUE,
    ConfigError,
    Rule,
    bound,
    build,
    check_declared,
    declared,
    fail,
    one_of,
    param,
    table_markdown,
)

TASK_KINDS = ("event", "clip")
SPLIT_METHODS = ("group", "predefined", "intra_group", "random")
RARE_LABEL_POLICIES = ("fail", "drop", "train_only")
# The methods avgate.eventness registers (named here so that this module never imports torch;
# tests/test_eventness_stage.py checks that the two agree).
EVENTNESS_METHODS = ("energy", "audio_head", "av_agreement", "mil")
# The policies avgate.budget registers, and `none` (the head reads every encoder as it is);
# tests/test_budget_stage.py checks that they agree.
BUDGET_POLICIES = ("none", "uniform", "anchored_topk")


@dataclass(frozen=True)
class DataParams:
    name: str = param(
        "demo", "`data/raw/<name>` -> `data/interim/<name>` -> `data/splits/<name>`", FOLDER_NAME
    )
    format: str = param(
        "ave",
        "the layout of `data/raw/<name>`: a format registered in src/avgate/datasets/, "
        "checked by the ingest stage (docs/data.md)",
        NOT_EMPTY,
    )
    options: dict = param(
        {},
        "a format's options (docs/params.md#dataset-format-options), checked by the ingest "
        "stage against its options dataclass in src/avgate/datasets/<format>.py",
        key="<format>",
        gathers=lambda name, value: isinstance(value, dict),
    )
    labels: list[str] = param([], "classes the split keeps (empty: all)")
    exclude_labels: list[str] = param([], "classes the split leaves out")

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
    kind: str = param(
        "event",
        "event: a label per second (AVE localisation); clip: one label per file",
        one_of(*TASK_KINDS),
    )
    background_label: str = param("background", "the label of a second without an event", NOT_EMPTY)


@dataclass(frozen=True)
class DemoParams:
    seed: int = param(0, "seed of the generated clips and of the demo encoder", bound(">= 0"))
    n_clips: int = param(120, "clips generated", bound(">= 1"))
    n_groups: int = param(
        16,
        "recording channels: background noise colour and picture tint "
        "(the generator needs one per class)",
        bound(">= 1"),
    )
    clip_seconds: int = param(10, "length of a clip", bound(">= 1"))
    fps: int = param(4, "video frames per second", bound(">= 1"))
    size: int = param(64, "frame width and height in pixels (even)", bound(">= 16"))
    snr_db: list[float] = param(
        [0.0, 12.0], "event-to-background ratio in dB, drawn per clip", PAIR
    )
    shape_opacity: list[float] = param(
        [1.0, 1.0],
        "the event shape's alpha over the picture, drawn per clip",
        bound("[0, 1]", each=True),
        PAIR,
    )
    event_seconds: list[int] = param(
        [2, 8],
        "shortest and longest event in whole seconds (at most demo.clip_seconds)",
        bound(">= 1", each=True),
        PAIR,
    )
    confound: float = param(
        0.3,
        "0: channel independent of class; 1: each class recorded on its own channels",
        bound("[0, 1]"),
    )
    corrupt_fraction: float = param(0.0, "share of clips written corrupt", bound("[0, 1]"))
    visual_cue: str = param(
        "shape",
        "what shows the class: shape (its own form and colour, seen at any size) or texture "
        "(one yellow disc with the class's stripes or checker of period 2 or 4 pixels: half "
        "size keeps the period-4 ones, quarter size none)",
        one_of("shape", "texture"),
    )
    audio_cue: str = param(
        "class",
        "what the event sounds like: class (its own sound) or onset (one sound for every "
        "class: when, not which)",
        one_of("class", "onset"),
    )
    workers: int = param(0, "worker processes (0: in the main process)", bound(">= 0"))


@dataclass(frozen=True)
class IngestParams:
    min_ok_fraction: float = param(
        0.95, "the stage fails when a smaller share of files decodes", bound("[0, 1]")
    )
    duration_tolerance_s: float = param(
        0.5,
        "seconds of truncation, annotation past the end or audio/video length mismatch accepted",
        bound(">= 0"),
    )
    imbalance_warning_ratio: float = param(
        5.0, "warn when the largest class outnumbers the smallest by more", bound(">= 1")
    )
    workers: int = param(0, "worker processes (0: in the main process)", bound(">= 0"))


@dataclass(frozen=True)
class SplitParams:
    method: str = param(
        "group",
        "how clips are assigned to train, val and test (docs/data.md)",
        one_of(*SPLIT_METHODS),
    )
    seed: int = param(0, "seed of the assignment", bound(">= 0"))
    val_fraction: float = param(0.2, "share of the groups in val", bound("(0, 0.5)"))
    test_fraction: float = param(0.2, "share of the groups in test", bound("(0, 0.5)"))
    test_fold: int = param(
        1, "predefined folds (ESC-50): fold k is test, fold k+1 val", bound(">= 1")
    )
    allow_leakage: bool = param(False, "must be true for method random: a leaky split on purpose")
    rare_labels: str = param(
        "fail", "labels from fewer than 3 groups (method group)", one_of(*RARE_LABEL_POLICIES)
    )


@dataclass(frozen=True)
class AuditParams:
    near_duplicate_cosine: float = param(
        0.995, "clip embeddings this similar across splits are reported", bound("(0, 1]")
    )
    max_pairs_listed: int = param(20, "near-duplicate pairs listed in the report", bound(">= 0"))


ENCODER_KIND = Rule(
    "a kind: a module of src/avgate/encoders/",
    "be an encoder kind, the name of a module in src/avgate/encoders/ (docs/encoders.md)",
    str.isidentifier,
    each=True,
)
ENCODER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")  # a folder, a DVC stage and a params key


@dataclass(frozen=True)
class EmbedParams:
    encoders: dict[str, str] = param(
        {"logmel": "logmel", "frames": "frames"},
        "name: kind; `embed@<name>` embeds with the kind's module and the options in "
        "`embed.<name>`; the order is the column order in training",
        NOT_EMPTY,
        ENCODER_KIND,
    )
    workers: int = param(0, "DataLoader worker processes (0: in the main process)", bound(">= 0"))
    device: str = param("auto", "where encoders with a model run", one_of("auto", "cpu", "cuda"))
    dtype: str = param("float32", "the stored embeddings", one_of("float32", "float16"))
    batch_seconds: int = param(64, "seconds of media per model batch", bound(">= 1"))
    cache_dir: str = param(
        "data/cache/embeddings",
        "each clip is embedded once per encoder config (docs/pipeline.md)",
        NOT_EMPTY,
    )
    sections: dict = param(
        {"logmel": {}, "frames": {}},
        "an encoder's options (`{}`: its kind's defaults), which every name in embed.encoders "
        "needs; checked by the embed stage against the options dataclass in "
        "src/avgate/encoders/<kind>.py (docs/params.md#encoder-options)",
        key="<name>",
        gathers=lambda name, value: isinstance(value, dict),
    )


@dataclass(frozen=True)
class EventnessParams:
    method: str = param(
        "energy",
        "the Stage-1 method scoring how eventful each second is (docs/pipeline.md)",
        one_of(*EVENTNESS_METHODS),
    )
    audio_encoder: str = param(
        "logmel",
        "the name in `embed.encoders` whose per-second rows are the audio features",
        NOT_EMPTY,
    )
    visual_encoder: str = param(
        "frames",
        "the name in `embed.encoders` whose rows are the visual features (methods that read "
        "them: `av_agreement`)",
        NOT_EMPTY,
    )
    seed: int = param(
        0, "seed of the trained methods' weights, batch order and held-out clips", bound(">= 0")
    )
    options: dict = param(
        {},
        "a method's options, checked by the eventness stage against its options dataclass in "
        "src/avgate/eventness/ (unset `energy.columns` on `logmel`: the log-mel means)",
        key="<method>",
        gathers=lambda name, value: name in EVENTNESS_METHODS,
    )


@dataclass(frozen=True)
class BudgetParams:
    policy: str = param(
        "none",
        "the visual resolution of each second: none (every encoder as it is), uniform "
        "(budget.uniform throughout) or anchored_topk (budget.high on the k most eventful "
        "seconds, budget.low elsewhere)",
        one_of(*BUDGET_POLICIES),
    )
    low: str = param(
        "frames_low", "the name in `embed.encoders` of the low-resolution visual rows", NOT_EMPTY
    )
    uniform: str = param(
        "frames",
        "the name in `embed.encoders` of the visual rows the uniform policy gives every second",
        NOT_EMPTY,
    )
    high: str = param(
        "frames_high", "the name in `embed.encoders` of the high-resolution visual rows", NOT_EMPTY
    )
    k: int = param(2, "anchors per clip: its most eventful seconds", bound(">= 1"))
    adjacent: bool = param(False, "an anchor's neighbouring seconds get budget.high too")
    shift: int = param(
        0, "seconds every anchor moves (clipped to the clip): a control that should not help"
    )
    fallback_std: float = param(
        0.0,
        "a clip whose eventness scores have a standard deviation below this is too flat to "
        "anchor and gets budget.uniform throughout",
        bound(">= 0"),
    )

    def encoders(self) -> tuple[str, str, str]:
        """The names of the low, uniform and high visual rows."""
        return (self.low, self.uniform, self.high)


@dataclass(frozen=True)
class LoraParams:
    encoder: str = param(
        "",
        "the base model: an `embed.<name>` section of hf_audio options (`model`, `revision`) "
        "(finetune: lora)",
    )
    targets: str = param(
        "attention",
        "the adapted layers (resolved per architecture)",
        one_of("attention", "attention_mlp"),
    )
    r: int = param(8, "adapter rank", bound(">= 1"))
    alpha: int = param(16, "adapter scale numerator (scale = alpha / r)", bound(">= 1"))
    dropout: float = param(0.1, "dropout on the adapters' input", bound("[0, 1)"))
    lr: float = param(0.0001, "learning rate of adapters and head", bound("> 0"))
    epochs: int = param(3, "passes over the training clips", bound(">= 1"))
    batch_clips: int = param(4, "clips per batch (all their seconds)", bound(">= 1"))
    accumulate: int = param(1, "batches per optimiser step", bound(">= 1"))
    amp: bool = param(True, "bfloat16 autocast on CUDA; ignored on CPU")
    pooling: str = param("mean", "over the frames of each second", one_of("mean", "attention"))
    train_base: list[str] = param(
        [],
        "encoder modules trained in full next to the adapters (peft's modules_to_save, e.g. "
        "[feature_projection]): the backbone is then not frozen, which the go/no-go check "
        "backbone_frozen reports",
        UNIQUE,
    )


@dataclass(frozen=True)
class OversampleParams:
    classes: list[str] = param(
        [],
        "training classes drawn more often: together they take train.oversample.share of each "
        "epoch's rows (empty: off); checked against the training labels by the train stage",
        UNIQUE,
    )
    share: float = param(
        0.5,
        "the named classes' share of the rows drawn each epoch (with replacement, the same "
        "number of rows), the other classes the rest",
        bound("(0, 1)"),
    )


SAMPLERS = ("shuffle", "balanced")
LOOP_SELECTION = ("val_loss", "val_accuracy")  # what every training mode's validation computes
# Keys of the tail recipe (heads on cached embeddings only) with the value that switches them off.
TAIL_RECIPE = {
    "train.label_smoothing": 0.0,
    "train.sampler": "shuffle",
    "train.oversample.classes": [],
    "train.mixup": 0.0,
    "train.feature_noise": 0.0,
    "evaluate.threshold": "argmax",
}


@dataclass(frozen=True)
class TrainParams:
    seeds: list[int] = param(
        [0, 1, 2], "one model per seed", NOT_EMPTY, UNIQUE, bound(">= 0", each=True)
    )
    head: str = param("mlp", "the head on the fused embeddings", one_of("mlp", "linear"))
    fusion: str = param(
        "concat",
        "gated: a learned gate per modality (closed = modality unused)",
        one_of("concat", "gated"),
    )
    closed_modalities: list[str] = param(
        [],
        "fusion: gated only: modalities whose gate stays closed for the whole run, so the model "
        "never reads them (an ablation, e.g. a visual-only model on audio-visual inputs); "
        "checked against the inputs' modalities by the train stage",
        UNIQUE,
    )
    finetune: str = param(
        "none",
        "none: heads on cached embeddings; lora: adapters on train.lora.encoder",
        one_of("none", "lora"),
    )
    lora: LoraParams = field(default_factory=LoraParams)
    hidden: int = param(128, "hidden units of the mlp head", bound(">= 1"))
    dropout: float = param(0.2, "dropout in the head", bound("[0, 1)"))
    lr: float = param(0.001, "learning rate of the head", bound("> 0"))
    weight_decay: float = param(
        0.0001, "Adam weight decay of the head (an L2 term in the gradient)", bound(">= 0")
    )
    batch_size: int = param(64, "rows per optimiser step", bound(">= 1"))
    max_epochs: int = param(100, "epochs at most", bound(">= 1"))
    patience: int = param(10, "stop after this many epochs without improvement", bound(">= 1"))
    clip_context: bool = param(
        False,
        "event tasks: each second's row also carries its clip's maximum of every feature, so "
        "evidence from a few seconds can name the class of the whole clip",
    )
    selection_metric: str = param(
        "val_loss",
        "the epoch kept: val_loss (lowest), val_accuracy (highest), or a metric "
        "src/avgate/metrics.py registers for task.kind (e.g. tail_f1), scored on validation "
        "each epoch in the registry's direction; checked by the train stage",
        NOT_EMPTY,
    )
    label_smoothing: float = param(
        0.0,
        "cross-entropy label smoothing of the head's training loss (torch's label_smoothing; "
        "validation loss stays plain)",
        bound("[0, 1)"),
    )
    sampler: str = param(
        "shuffle",
        "each epoch's rows: shuffle (every row once) or balanced (drawn with replacement so "
        "that every class is equally likely, as many rows)",
        one_of(*SAMPLERS),
    )
    oversample: OversampleParams = field(default_factory=OversampleParams)
    mixup: float = param(
        0.0,
        "mixup of training batches: alpha of the Beta(alpha, alpha) blend weight (0: off)",
        bound(">= 0"),
    )
    feature_noise: float = param(
        0.0,
        "std of Gaussian noise added to training batches, in standardised units (0: off)",
        bound(">= 0"),
    )
    num_threads: int = param(
        1, "CPU threads; fixed so that a seed gives the same weights on any machine", bound(">= 1")
    )


@dataclass(frozen=True)
class EvaluateParams:
    primary_metric: str = param(
        "segment_accuracy",
        "the headline score: a metric src/avgate/metrics.py registers for task.kind, checked by "
        "the stages that score it (train, gate)",
        NOT_EMPTY,
    )
    aggregate_by: str = param(
        "", "clip tasks: a manifest column naming each clip's event (empty: off)"
    )
    aggregate: str = param(
        "mean", "how an event's clip probabilities are pooled", one_of("mean", "max")
    )
    threshold: str = param(
        "argmax",
        "binary tasks: argmax, or tuned: the threshold on the rarer training class's probability "
        "that maximises evaluate.primary_metric on validation (stored in head.json; makes the "
        "validation score optimistic)",
        one_of("argmax", "tuned"),
    )
    test: str = param(
        "sealed",
        "sealed: no test score outside a gate look; open: exploratory, recorded in the ledger",
        one_of("sealed", "open"),
    )


@dataclass(frozen=True)
class GateParams:
    stage: str = param(
        "selection",
        "selection: validation deltas against the baseline; a gates.yaml stage name looks at test",
        NOT_EMPTY,
    )
    candidate: str = param("", "the candidate line a test look is recorded under in the ledger")
    n_resamples: int = param(
        10000, "cluster-bootstrap resamples for a stage's ci_low_min", bound(">= 1")
    )


@dataclass(frozen=True)
class ProbeParams:
    seed: int = param(
        0, "the seed of the probes' own training runs (overfit, resume) and draws", bound(">= 0")
    )
    overfit_rows: int = param(
        256, "tiny overfit: training rows of the fixed subset (the first of each class in turn)",
        bound(">= 2"),
    )  # fmt: skip
    overfit_epochs: int = param(200, "tiny overfit: epochs on that subset", bound(">= 1"))
    resume_epochs: int = param(
        6, "resume: epochs of the reference run; the killed run stops after half", bound(">= 2")
    )
    batch_sizes: list[int] = param(
        [16, 64, 256],
        "efficiency: batch sizes measured besides train.batch_size",
        UNIQUE, bound(">= 1", each=True),
    )  # fmt: skip
    device_memory_gib: float = param(
        24.0, "efficiency: the memory of the machine training runs on (headroom)", bound("> 0")
    )
    noise_std: float = param(
        1.0, "irrelevance stress: std of the noise audio, in standardised units", bound("> 0")
    )
    policy_points: int = param(
        21, "gating policies: confidence thresholds on the accuracy-versus-skips curve",
        bound(">= 2"),
    )  # fmt: skip
    frozen_clips: int = param(
        4, "reproducibility: clips of each split re-embedded by each frozen encoder", bound(">= 1")
    )


@dataclass(frozen=True)
class Params:
    data: DataParams = field(default_factory=DataParams)
    task: TaskParams = field(default_factory=TaskParams)
    demo: DemoParams = field(default_factory=DemoParams)
    ingest: IngestParams = field(default_factory=IngestParams)
    split: SplitParams = field(default_factory=SplitParams)
    audit: AuditParams = field(default_factory=AuditParams)
    embed: EmbedParams = field(default_factory=EmbedParams)
    eventness: EventnessParams = field(default_factory=EventnessParams)
    budget: BudgetParams = field(default_factory=BudgetParams)
    train: TrainParams = field(default_factory=TrainParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    gate: GateParams = field(default_factory=GateParams)
    probe: ProbeParams = field(default_factory=ProbeParams)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Params:
        params = build(cls, data, "")
        for item in declared(cls):
            check_declared(item, functools.reduce(getattr, item.path, params))
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


def _check(params: Params) -> None:
    """Rules that relate several keys."""
    if params.split.method == "random" and not params.split.allow_leakage:
        fail(
            "split.method",
            "'random' puts a group on both sides of the split; set split.allow_leakage: true "
            "to measure how much a leaky split inflates scores",
            params.split.method,
        )
    both = sorted(set(params.data.labels) & set(params.data.exclude_labels))
    if both:
        fail("data.exclude_labels", "must not name a label that data.labels keeps", both)
    if params.demo.event_seconds[1] > params.demo.clip_seconds:
        fail(
            "demo.event_seconds",
            f"must be [shortest, longest] with longest <= demo.clip_seconds "
            f"({params.demo.clip_seconds})",
            params.demo.event_seconds,
        )
    if params.evaluate.aggregate_by and params.task.kind != "clip":
        fail(
            "evaluate.aggregate_by",
            "needs task.kind: clip (it pools clips into events)",
            params.evaluate.aggregate_by,
        )
    _check_encoder_sections(params.embed)
    for name, options in params.eventness.options.items():
        _check_method_section(name, options)
    _check_budget(params)
    if params.train.closed_modalities and params.train.fusion != "gated":
        fail("train.closed_modalities", "needs train.fusion: gated (a gate to close)",
             params.train.closed_modalities)  # fmt: skip
    if params.train.finetune == "lora":
        _check_lora_recipe(params)
    lora = params.train.lora
    if params.train.finetune == "lora" and lora.encoder not in params.embed.sections:
        fail(
            "train.lora.encoder",
            "must name an embed.<name> section holding an hf_audio encoder's options "
            "(model, revision) when train.finetune is lora",
            lora.encoder,
        )


def _check_lora_recipe(params: Params) -> None:
    """The tail recipe and registered selection metrics are for heads on cached embeddings:
    refuse them under `train.finetune: lora` instead of ignoring them."""
    if params.train.closed_modalities:
        fail("train.closed_modalities", "applies to train.finetune: none only (LoRA reads audio)",
             params.train.closed_modalities)  # fmt: skip
    for key, off in TAIL_RECIPE.items():
        value = functools.reduce(getattr, key.split("."), params)
        if value != off:
            fail(key, f"applies to train.finetune: none only; set it to {off!r} for lora", value)
    if params.train.selection_metric not in LOOP_SELECTION:
        fail(
            "train.selection_metric",
            f"must be one of {list(LOOP_SELECTION)} with train.finetune: lora",
            params.train.selection_metric,
        )


def _check_encoder_sections(embed: EmbedParams) -> None:
    """Each name in `embed.encoders` is a plain name (a folder, a DVC stage, a params key) and has
    its section `embed.<name>`, on which dvc.yaml's `embed@<name>` depends (DVC itself stops
    with "Parameters 'embed.<name>' are missing"). The options in it are checked by the embed
    stage, which imports the kind's module."""
    shared = [f.name for f in dataclasses.fields(EmbedParams) if f.name != "sections"]
    for name, kind in embed.encoders.items():
        if not ENCODER_NAME.fullmatch(name) or name in shared:
            fail(
                f"embed.encoders.{name}",
                "must be named with letters, digits, `_` or `-` (a folder data/embeddings/<name>) "
                f"and not as a shared key {shared}",
                name,
            )
        if name not in embed.sections:
            raise ConfigError(
                f"{PARAMS_FILE}: embed.encoders names {name!r} (kind {kind}), which has no "
                f"section embed.{name}; add it beside the name: dvc exp run "
                f"-S '+embed.encoders.{name}={kind}' -S '+embed.{name}={{}}' (the kind's "
                f"defaults) or -S '++embed.{name}.<option>=<value>' (docs/encoders.md)"
            )


def _check_budget(params: Params) -> None:
    """With a policy on, budget.low, .uniform and .high name three different encoders of one kind
    in `embed.encoders`, for heads on cached embeddings (LoRA reads raw audio only)."""
    budget = params.budget
    if budget.policy == "none":
        return
    names = budget.encoders()
    for key, name in zip(("low", "uniform", "high"), names, strict=True):
        if name not in params.embed.encoders:
            fail(
                f"budget.{key}",
                f"must name an encoder in embed.encoders {list(params.embed.encoders)} when "
                f"budget.policy is {budget.policy} (or set budget.policy: none)",
                name,
            )
    if len(set(names)) < 3:
        fail("budget.high", "budget.low, .uniform and .high must be three different encoders",
             list(names))  # fmt: skip
    kinds = {params.embed.encoders[name] for name in names}
    if len(kinds) > 1:
        fail("budget.high", "budget.low, .uniform and .high must be one encoder kind at three "
             "sizes", {name: params.embed.encoders[name] for name in names})  # fmt: skip
    if params.train.finetune == "lora":
        fail("budget.policy", "needs train.finetune: none (LoRA trains on raw audio)",
             budget.policy)  # fmt: skip


def _check_method_section(name: str, options: Any) -> None:
    """An `eventness.<method>` section is a mapping whose seed, if any, is `eventness.seed`."""
    if not isinstance(options, dict):
        fail(f"eventness.{name}", "must be a mapping of the method's options", options)
    if "seed" in options:
        fail(f"eventness.{name}.seed", "is set by eventness.seed (one seed for every method)",
              options["seed"])  # fmt: skip


def params_table_markdown() -> str:
    """The table of docs/params.md: every declared key with its type, rules, default, meaning."""
    return table_markdown(Params)
