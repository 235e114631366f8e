"""`evaluate@<seed>`: raw logits for val and test, per-seed scores with a majority baseline,
calibration before and after temperature scaling, per-class scores, probability clustering and
modality ablations (audio-visual models)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from avgate import calibration, diagnostics, metrics
from avgate.config import ConfigError, Params
from avgate.files import atomic_dir, read_json, write_json, write_parquet
from avgate.models.fit import pin_determinism
from avgate.models.fused import rebuild_head
from avgate.stages.inputs import (
    DESCRIPTION,
    EVAL_SPLITS,
    LOGIT_PREFIX,
    WEIGHTS,
    Examples,
    examples,
    modality_columns,
    model_dir,
    predictions_dir,
)
from avgate.stages.profile import recorded


def load_head(seed: int) -> tuple[torch.nn.Module, dict]:
    """The trained head of one seed and its description."""
    description = read_json(model_dir(seed) / DESCRIPTION)
    architecture = description.get("architecture", {"kind": "mlp"})
    model = rebuild_head(
        architecture, description["in_dim"], len(description["classes"]), description["hidden"], 0.0
    )
    model.load_state_dict(load_file(model_dir(seed) / WEIGHTS))
    model.eval()
    return model, description


def predict(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Raw logits of `model` for features `x`."""
    with torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def predictions_table(
    index: pd.DataFrame, labels: np.ndarray, logits: np.ndarray, classes: list[str]
) -> pd.DataFrame:
    """Index columns, the true label, and one raw-logit column per class."""
    table = index.reset_index(drop=True).copy()
    table["label"] = labels
    for i, name in enumerate(classes):
        table[f"{LOGIT_PREFIX}{name}"] = logits[:, i]
    return table


def majority_class(train_label_counts: dict[str, int]) -> str:
    """The most frequent training label (ties: the first in sorted order)."""
    return max(sorted(train_label_counts), key=lambda label: train_label_counts[label])


def one_hot(n: int, index: int, k: int) -> np.ndarray:
    probs = np.zeros((n, k))
    probs[:, index] = 1.0
    return probs


def ablations(params: Params, model: torch.nn.Module, data: Examples, classes: list[str]) -> dict:
    """The primary metric on `data` with each modality ablated, and its drop (two modalities+)."""
    primary = params.evaluate.primary_metric

    def score(probs: np.ndarray) -> float:
        return metrics.score(params.task.kind, data.labels, probs, classes)[primary]

    return diagnostics.modality_reliance(
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


def run(params: Params, seed: int) -> dict:
    """Predict val and test with one seed's head; write predictions/seed<seed>/."""
    with recorded(f"evaluate/seed{seed}"):
        return _evaluate(params, seed)


def _evaluate(params: Params, seed: int) -> dict:
    metrics.check_primary(params.task.kind, params.evaluate.primary_metric)
    pin_determinism(seed, params.train.num_threads)
    lora = params.train.finetune == "lora"
    if lora:
        from avgate.stages import lora_train  # peft and transformers only when fine-tuning

        model, description = None, read_json(model_dir(seed) / DESCRIPTION)
    else:
        model, description = load_head(seed)
    classes = description["classes"]
    lookup = {c: i for i, c in enumerate(classes)}
    majority = majority_class(description["train_label_counts"])
    kind = params.task.kind
    scores: dict = {
        "seed": seed,
        "primary_metric": params.evaluate.primary_metric,
        "majority_class": majority,
    }
    data, logits = {}, {}
    with atomic_dir(predictions_dir(seed)) as tmp:
        for split in EVAL_SPLITS:
            if lora:
                index, labels, logits[split], _ = lora_train.predict(params, seed, split)
                data[split] = Examples(np.zeros((len(labels), 0), np.float32), labels, index)
            else:
                data[split] = examples(params, split)
                logits[split] = predict(model, data[split].x)
            table = predictions_table(data[split].index, data[split].labels, logits[split], classes)
            write_parquet(table, tmp / f"{split}.parquet")
            labels = data[split].labels
            probs = calibration.softmax(logits[split])
            scores[split] = metrics.score(kind, labels, probs, classes)
            scores[split]["ece"] = calibration.ece(probs, np.array([lookup[x] for x in labels]))
            baseline = one_hot(len(labels), lookup[majority], len(classes))
            scores[f"majority_baseline_{split}"] = metrics.score(kind, labels, baseline, classes)
        test = data["test"]
        y = {split: np.array([lookup[label] for label in data[split].labels]) for split in data}
        probs = calibration.softmax(logits["test"])
        scores["per_class_test"] = metrics.per_class(
            test.labels, np.asarray(classes)[probs.argmax(axis=1)], classes
        )
        scores["calibration_test"] = calibration.calibration_report(
            logits["val"], y["val"], logits["test"], y["test"]
        )
        scores["probability_clusters_test"] = diagnostics.probability_clusters(probs)
        if params.evaluate.aggregate_by:
            scores["test_aggregated"] = aggregated(params, test, probs, classes)
        scores["modality_ablation_test"] = {} if lora else ablations(params, model, test, classes)
        write_json(tmp / "metrics.json", scores)
    return scores
