"""`summarize`: mean, std and per-seed values of every metric, and the plot data for `dvc plots`.

`std` is the sample standard deviation over seeds (ddof=1; 0 with a single seed). Seeds come from
`train.seeds`, never from whatever folders happen to exist.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from avgate.config import Params
from avgate.files import read_json, write_csv, write_json
from avgate.stages.inputs import EVAL_SPLITS, live_dir, predicted_labels, predictions_dir

EVAL_METRICS = Path("metrics/eval.json")
PLOTS = Path("plots")
CURVES = ("train_loss", "val_loss", "val_accuracy")


def spread(values: list[float]) -> dict:
    """Mean, sample std (ddof=1) and the values, keyed by seed."""
    array = np.asarray(values, dtype=float)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return {"mean": float(array.mean()), "std": std}


def aggregate(per_seed: dict[int, dict], primary: str) -> dict:
    """metrics/eval.json from the per-seed metrics files."""
    seeds = sorted(per_seed)
    first = per_seed[seeds[0]]
    summary: dict = {"primary_metric": primary, "n_seeds": len(seeds), "seeds": seeds}
    for split in EVAL_SPLITS:
        summary[split] = {}
        for name in first[split]:
            values = [per_seed[s][split][name] for s in seeds]
            summary[split][name] = {
                **spread(values),
                "per_seed": {f"seed{s}": v for s, v in zip(seeds, values, strict=True)},
            }
    summary["majority_baseline"] = {
        split: first[f"majority_baseline_{split}"] for split in EVAL_SPLITS
    }
    summary["majority_class"] = first["majority_class"]
    summary["margin_over_majority"] = {
        split: summary[split][primary]["mean"] - summary["majority_baseline"][split][primary]
        for split in EVAL_SPLITS
    }
    return summary


def seed_scores(per_seed: dict[int, dict], primary: str) -> pd.DataFrame:
    """One row per seed: the primary metric on val and test."""
    return pd.DataFrame(
        {
            "seed": [f"seed{s}" for s in sorted(per_seed)],
            **{
                f"primary_{split}": [per_seed[s][split][primary] for s in sorted(per_seed)]
                for split in EVAL_SPLITS
            },
        }
    )


def confusion_rows(seeds: list[int]) -> pd.DataFrame:
    """Test-split (actual, predicted) pairs of every seed, for DVC's confusion template."""
    frames = []
    for seed in seeds:
        table = pd.read_parquet(predictions_dir(seed) / "test.parquet")
        frames.append(
            pd.DataFrame(
                {
                    "seed": f"seed{seed}",
                    "actual": table["label"],
                    "predicted": predicted_labels(table),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def training_curves(seeds: list[int]) -> pd.DataFrame:
    """Long table seed, epoch, train_loss, val_loss, val_accuracy from the dvclive logs."""
    frames = []
    for seed in seeds:
        folder = live_dir(seed) / "plots" / "metrics"
        curves = None
        for name in CURVES:
            series = pd.read_csv(folder / f"{name}.tsv", sep="\t")[["step", name]]
            curves = series if curves is None else curves.merge(series, on="step")
        curves.insert(0, "epoch", curves.pop("step") + 1)
        curves.insert(0, "seed", f"seed{seed}")
        frames.append(curves)
    return pd.concat(frames, ignore_index=True)


def run(params: Params) -> dict:
    """Write metrics/eval.json and plots/{seed_scores,confusion,train_curves}.csv."""
    seeds = params.train.seeds
    primary = params.evaluate.primary_metric
    per_seed = {s: read_json(predictions_dir(s) / "metrics.json") for s in seeds}
    summary = aggregate(per_seed, primary)
    write_json(EVAL_METRICS, summary)
    write_csv(seed_scores(per_seed, primary), PLOTS / "seed_scores.csv")
    write_csv(confusion_rows(seeds), PLOTS / "confusion.csv")
    write_csv(training_curves(seeds), PLOTS / "train_curves.csv")
    return summary
