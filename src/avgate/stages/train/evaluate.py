"""Evaluation of one seed (run by the `train` stage): raw logits for val and test, and
validation scores: every metric with a majority baseline, cross-fitted calibration, per-class
scores, probability clustering and modality ablations (audio-visual models). A decision
threshold tuned on validation (`evaluate.threshold: tuned`, in head.json) decides the labels
that label metrics score, and is copied into the seed's metrics.json for the gate's test look.

The test split is sealed: its logits are stored without labels and nothing here reads its
labels or scores it. Only a recorded look (the gate at a test stage, under the ledger lock)
joins the test labels and scores the stored logits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from avgate import calibration, metrics, model_diagnostics
from avgate.config import Params
from avgate.declare import ConfigError
from avgate.errors import StageError
from avgate.files import atomic_dir, read_json, write_json, write_parquet
from avgate.layout.clips import BUDGETED
from avgate.layout.inputs import EVAL_SPLITS, Examples, examples, features, modality_columns
from avgate.layout.labels import labels_of
from avgate.layout.results import DESCRIPTION, SEED_SCORES, model_dir, predictions_dir
from avgate.profiles import recorded
from avgate.scoring import majority_class, predictions_table, split_scores
from avgate.stages.train.train_seed import lora_clips
from avgate.training.determinism import pin_determinism


def ablations(
    params: Params,
    model: torch.nn.Module,
    data: Examples,
    classes: list[str],
    threshold: dict | None,
) -> dict:
    """The primary metric on `data` with each modality ablated, and its drop (two modalities+)."""
    from avgate.finetune.none import predict  # heads only: a LoRA model reads no embeddings

    primary = params.evaluate.primary_metric

    def score(probs: np.ndarray) -> float | None:
        return metrics.value(primary, data.labels, probs, classes, threshold)

    return model_diagnostics.modality_reliance(
        lambda x: calibration.softmax(predict(model, x)),
        score,
        data.x,
        modality_columns(params),
        model.mean.numpy(),
        data.index["clip_id"].to_numpy(),
    )


def aggregated(params: Params, data: Examples, probs: np.ndarray, classes: list[str]) -> dict:
    """Scores after pooling each event's clips (`evaluate.aggregate_by`) into one prediction."""
    column = params.evaluate.aggregate_by
    manifest = pd.read_parquet(params.data.interim_dir / "manifest.parquet")
    if column not in manifest:
        raise ConfigError(
            f"params.yaml: evaluate.aggregate_by {column!r} is not a manifest column; "
            f"choose one of {sorted(manifest.columns)}"
        )
    frame = data.index[["clip_id"]].merge(manifest[["clip_id", column]], on="clip_id", how="left")
    frame["label"] = data.labels
    for i, name in enumerate(classes):
        frame[f"{metrics.PROB_PREFIX}{name}"] = probs[:, i]
    try:
        pooled = metrics.aggregate_windows(frame, column, params.evaluate.aggregate)
    except ValueError as error:
        raise ConfigError(f"params.yaml: evaluate.aggregate_by {column!r}: {error}") from None
    pooled_probs = pooled[[f"{metrics.PROB_PREFIX}{c}" for c in classes]].to_numpy()
    return metrics.score("clip", pooled["label"].to_numpy(), pooled_probs, classes)


def _opened_test_labels(params: Params, index: pd.DataFrame) -> np.ndarray | None:
    """The test labels when `evaluate.test: open` (the opening recorded in the ledger first);
    None while the test split is sealed."""
    if params.evaluate.test != "open":
        return None
    from avgate.gating.opening import open_test_split  # the ledger, only when opening
    from avgate.gating.pairing import ids_sha256

    open_test_split(params.gate.candidate, ids_sha256(index))
    return labels_of(params, index)


def budget_record(params: Params) -> dict:
    """The budget policy the visual rows were chosen under and the share of clips per split whose
    eventness was too flat to anchor (0 without a policy that reads it)."""
    if params.budget.policy == "none":
        return {"policy": "none", "fallback_used_frac": dict.fromkeys(EVAL_SPLITS, 0.0)}
    path = BUDGETED / "meta.json"
    if not path.is_file():
        raise StageError(f"{path}: missing; run `dvc repro budget`")
    meta = read_json(path)
    return {"policy": meta["policy"], "fallback_used_frac": meta["fallback_used_frac"]}


def run(params: Params, seed: int) -> dict:
    """Predict val and test with one seed's model and score val; write predictions/seed<seed>/."""
    with recorded(f"evaluate/seed{seed}"):
        return _evaluate(params, seed)


def _evaluate(params: Params, seed: int) -> dict:
    metrics.check_primary(params.task.kind, params.evaluate.primary_metric)
    pin_determinism(seed, params.train.num_threads)
    lora = params.train.finetune == "lora"
    description = read_json(model_dir(seed) / DESCRIPTION)
    classes = description["classes"]
    majority = majority_class(description["train_label_counts"])
    threshold = description.get(metrics.THRESHOLD)
    scores: dict = {
        "seed": seed,
        "primary_metric": params.evaluate.primary_metric,
        "majority_class": majority,
    }
    if threshold is not None:
        scores[metrics.THRESHOLD] = threshold
    with atomic_dir(predictions_dir(seed)) as tmp:
        if lora:
            from avgate.finetune import lora as mode  # peft and transformers only when needed

            model = mode.load(params, model_dir(seed), description)
            index, logits = mode.predict(params, model, lora_clips(params, "val", labelled=False))
            val = Examples(np.zeros((len(index), 0), np.float32), labels_of(params, index), index)
            test_clips = lora_clips(params, "test", labelled=False)
            test_index, test_logits = mode.predict(params, model, test_clips)
        else:
            from avgate.finetune import none as mode

            model = mode.load(params, model_dir(seed), description)
            val = examples(params, "val")
            logits = mode.predict(model, val.x)
            test_x, test_index = features(params, "test")
            test_logits = mode.predict(model, test_x)
        write_parquet(
            predictions_table(val.index, val.labels, logits, classes), tmp / "val.parquet"
        )
        test_labels = _opened_test_labels(params, test_index)
        write_parquet(
            predictions_table(test_index, test_labels, test_logits, classes), tmp / "test.parquet"
        )
        if test_labels is not None:
            scores |= split_scores(
                params.task.kind, "test", test_labels, test_logits, classes, majority, threshold
            )
        scores |= split_scores(
            params.task.kind, "val", val.labels, logits, classes, majority, threshold
        )
        y = np.array([classes.index(label) for label in val.labels])
        scores["calibration_val"] = calibration.cross_fitted_report(
            logits, y, val.index["clip_id"].to_numpy()
        )
        probs = calibration.softmax(logits)
        if params.evaluate.aggregate_by:
            scores["val_aggregated"] = aggregated(params, val, probs, classes)
        scores["modality_ablation_val"] = (
            {} if lora else ablations(params, model, val, classes, threshold)
        )
        scores["budget"] = budget_record(params)
        write_json(tmp / SEED_SCORES, scores)
    return scores
