"""`eventness`: a Stage-1 score of how eventful each second is, for every split, cached by DVC.

`eventness.method` (a method of `avgate.eventness`) fits on the train split's seconds and scores
every second of train, val and test: `data/eventness/<method>/scores.parquet` holds clip_id, t,
split and score, each second of each split once. `metrics/eventness.json` gives the method, its
identity (options and encoders) and its quality against the per-second labels on validation only:
test seconds are scored, but their labels are never read (the test split is sealed).

`task.kind: clip` has no per-second labels (each second carries its clip's label). The stage
then scores every second with a method that fits without labels (`energy`, the default, so the
clip pipelines run on) and reports no quality; a method that learns from labels is refused.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from avgate import eventness
from avgate.config import Params
from avgate.declare import section
from avgate.errors import StageError
from avgate.files import read_json, write_json, write_parquet
from avgate.layout.clips import SPLITS, embedding_dir, eventness_scores
from avgate.layout.labels import second_labels
from avgate.profiles import recorded
from avgate.training.determinism import pin_determinism

REPORT = Path("metrics/eventness.json")
LABELLED = ("train", "val")  # the splits whose labels this stage reads: never test
NO_LABELS = "task.kind clip has no per-second labels (task.kind event has)"


def run(params: Params) -> dict:
    """Write the scores of every split and metrics/eventness.json; return the latter's content."""
    with recorded("eventness"):
        return _eventness(params)


def _eventness(params: Params) -> dict:
    settings = params.eventness
    audio_meta = encoder_meta(params, "audio_encoder", "audio")
    method = method_of(params, audio_meta)
    if method.needs_visual:
        encoder_meta(params, "visual_encoder", "visual")
    data = {split: seconds_of(params, split, method.needs_visual) for split in SPLITS}
    pin_determinism(settings.seed, params.train.num_threads)
    scores = fitted_scores(method, data, params.task.kind)
    write_parquet(score_table(data, scores), eventness_scores(method.name))
    encoders = {"audio_encoder": settings.audio_encoder}
    if method.needs_visual:
        encoders["visual_encoder"] = settings.visual_encoder
    quality = val_quality(params, data["val"], scores["val"])
    summary = {
        "method": method.name,
        "identity": {**method.identity(), **encoders},
        "seed": settings.seed,
        "val": quality,
    }
    if quality is None:
        summary["reason"] = f"no quality: {NO_LABELS}"
    write_json(REPORT, summary)
    return summary


def encoder_meta(params: Params, key: str, modality: str) -> dict:
    """The embeddings' meta.json of `eventness.<key>`, which must be an embedded `modality`."""
    name = getattr(params.eventness, key)
    if name not in params.embed.encoders:
        raise StageError(
            f"params.yaml: eventness.{key} {name!r} is not in embed.encoders "
            f"{list(params.embed.encoders)}; name one of them, or add it there"
        )
    meta = read_json(embedding_dir(name) / "meta.json")
    if meta["modality"] != modality:
        raise StageError(
            f"params.yaml: eventness.{key} {name!r} embeds {meta['modality']}, not {modality}"
        )
    return meta


def method_of(params: Params, audio_meta: dict) -> eventness.EventnessMethod:
    """The method of `eventness.method`, its options completed from the data and checked. Every
    `eventness.<method>` section is checked, so a typo in another method's section fails too."""
    name, given = params.eventness.method, params.eventness.options
    for other in sorted(set(given) - {name}):
        section(eventness.METHODS[other].options_type, given[other], f"eventness.{other}")
    cls = eventness.METHODS[name]
    options = {**derived_options(params, name, audio_meta), **given.get(name, {})}
    return cls(section(cls.options_type, options, f"eventness.{name}"))


def derived_options(params: Params, name: str, audio_meta: dict) -> dict:
    """Options that follow from params and the data unless a section sets them: the seed, and
    energy's columns on `logmel` rows (the means of `segments` slices of `n_mels` bands, before
    the bands' spreads)."""
    cls = eventness.METHODS[name]
    options = {}
    if "seed" in {field.name for field in dataclasses.fields(cls.options_type)}:
        options["seed"] = params.eventness.seed
    if name == "energy" and audio_meta["encoder"] == "logmel":
        options["columns"] = [0, audio_meta["segments"] * audio_meta["n_mels"]]
    return options


def seconds_of(params: Params, split: str, visual: bool) -> eventness.SecondsData:
    """The split's per-second rows; labels only for train and val of event tasks."""
    audio, index = rows_of(params.eventness.audio_encoder, split)
    visual_rows = None
    if visual:
        visual_rows, visual_index = rows_of(params.eventness.visual_encoder, split)
        if not visual_index.equals(index):
            raise StageError(
                f"{embedding_dir(params.eventness.visual_encoder)}: {split} rows differ from "
                f"{embedding_dir(params.eventness.audio_encoder)}; re-run `dvc repro`"
            )
    labelled = split in LABELLED and params.task.kind == "event"
    return eventness.SecondsData(
        clip_ids=index["clip_id"].to_numpy(),
        seconds=index["t"].to_numpy(),
        audio=audio,
        visual=visual_rows,
        labels=second_labels(params, index) if labelled else None,
        background=params.task.background_label,
    )


def rows_of(encoder: str, split: str) -> tuple[np.ndarray, pd.DataFrame]:
    """One encoder's embeddings of `split` (float32) and their (clip_id, t) index."""
    folder = embedding_dir(encoder)
    rows = np.load(folder / f"{split}.npy").astype(np.float32, copy=False)
    return rows, pd.read_parquet(folder / f"{split}.index.parquet")


def fitted_scores(
    method: eventness.EventnessMethod, data: dict[str, eventness.SecondsData], kind: str
) -> dict[str, np.ndarray]:
    """Fit on train, score every split; a method's ValueError (rows it cannot use) becomes a
    StageError naming the method."""
    try:
        method.fit(data["train"])
        return {split: method.score(rows) for split, rows in data.items()}
    except ValueError as error:
        hint = f"; {NO_LABELS}: use energy" if kind == "clip" else ""
        raise StageError(f"eventness.method {method.name}: {error}{hint}") from error


def score_table(
    data: dict[str, eventness.SecondsData], scores: dict[str, np.ndarray]
) -> pd.DataFrame:
    """clip_id, t, split, score: the splits in SPLITS order, each in its embeddings' row order."""
    parts = [
        pd.DataFrame({"clip_id": rows.clip_ids, "t": rows.seconds, "split": split,
                      "score": scores[split]})
        for split, rows in data.items()
    ]  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def val_quality(params: Params, val: eventness.SecondsData, scores: np.ndarray) -> dict | None:
    """AUC and hit rates on validation (`avgate.eventness.quality`); None for clip tasks."""
    if val.labels is None:
        return None
    return eventness.quality(
        scores, val.labels, val.clip_ids, val.seconds, params.task.background_label
    )
