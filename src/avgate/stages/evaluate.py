"""`evaluate@<seed>`: raw logits for val and test, and per-seed scores with a majority baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from avgate import metrics
from avgate.config import Params
from avgate.files import atomic_dir, read_json, write_json, write_parquet
from avgate.models.fit import pin_determinism
from avgate.models.heads import MLPHead
from avgate.stages.inputs import (
    DESCRIPTION,
    EVAL_SPLITS,
    LOGIT_PREFIX,
    WEIGHTS,
    examples,
    model_dir,
    predicted_labels,
    predictions_dir,
)


def load_head(seed: int) -> tuple[MLPHead, dict]:
    """The trained head of one seed and its description."""
    description = read_json(model_dir(seed) / DESCRIPTION)
    model = MLPHead(description["in_dim"], description["hidden"], len(description["classes"]), 0.0)
    model.load_state_dict(load_file(model_dir(seed) / WEIGHTS))
    model.eval()
    return model, description


def predict(model: MLPHead, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


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


def run(params: Params, seed: int) -> dict:
    """Predict val and test with one seed's head; write predictions/seed<seed>/."""
    metrics.check_primary(params.task.kind, params.evaluate.primary_metric)
    pin_determinism(seed, params.train.num_threads)
    model, description = load_head(seed)
    classes = description["classes"]
    majority = majority_class(description["train_label_counts"])
    scores: dict = {
        "seed": seed,
        "primary_metric": params.evaluate.primary_metric,
        "majority_class": majority,
    }
    with atomic_dir(predictions_dir(seed)) as tmp:
        for split in EVAL_SPLITS:
            data = examples(params, split)
            table = predictions_table(data.index, data.labels, predict(model, data.x), classes)
            write_parquet(table, tmp / f"{split}.parquet")
            kind = params.task.kind
            scores[split] = metrics.score(kind, data.labels, predicted_labels(table), classes)
            baseline = np.full(len(data.labels), majority, dtype=object)
            scores[f"majority_baseline_{split}"] = metrics.score(
                kind, data.labels, baseline, classes
            )
        write_json(tmp / "metrics.json", scores)
    return scores
