"""Summary of every seed (the end of the `train` stage): mean, std and per-seed values of every
validation metric, diagnostics, the parameter count, the run card, and the plot data for
`dvc plots`.

`std` is the sample standard deviation over seeds (ddof=1; 0 with a single seed). Seeds come from
`train.seeds`, never from whatever folders happen to exist. Everything here is validation: the
test split is sealed until a recorded look (the gate). Every file written is a function of the
stage's inputs (no timings, no machine facts), so a fresh clone reproduces it bit for bit; wall
times and peak memory stay in data/profiles/ (`avgate profiles` prints them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from avgate import metrics, model_diagnostics
from avgate.config import Params
from avgate.errors import StageError
from avgate.files import read_json, write_csv, write_json
from avgate.gating.pairing import ids_sha256
from avgate.layout.inputs import live_dir, predicted_labels
from avgate.layout.results import (
    DESCRIPTION,
    DIAGNOSTICS,
    EFFICIENCY,
    EVAL_METRICS,
    RUN_CARD,
    SCORES,
    SEED_SCORES,
    model_dir,
    predictions_dir,
)
from avgate.stages.train import run_card

PLOTS = Path("plots")
CURVES = ("train_loss", "val_loss", "val_accuracy")
CALIBRATION_SCORES = ("ece", "adaptive_ece", "classwise_ece", "nll", "brier")
SPLIT = "val"  # the only split scored outside a recorded look


def spread(values: list[float]) -> dict:
    """Mean and sample std (ddof=1) of per-seed values."""
    array = np.asarray(values, dtype=float)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return {"mean": float(array.mean()), "std": std}


def aggregate(per_seed: dict[int, dict], primary: str) -> dict:
    """metrics/scores.json from the per-seed metrics files; undefined metrics are left out."""
    seeds = sorted(per_seed)
    first = per_seed[seeds[0]]
    summary: dict = {"primary_metric": primary, "n_seeds": len(seeds), "seeds": seeds}
    for split in [SPLIT, f"{SPLIT}_aggregated"]:
        if split not in first:
            continue
        summary[split] = {}
        for name in first[split]:
            values = [per_seed[s][split][name] for s in seeds]
            if any(v is None for v in values):
                continue
            summary[split][name] = {
                **spread(values),
                "per_seed": {f"seed{s}": v for s, v in zip(seeds, values, strict=True)},
            }
    majority = first[f"majority_baseline_{SPLIT}"]
    summary["majority_baseline"] = {SPLIT: {k: v for k, v in majority.items() if v is not None}}
    summary["majority_class"] = first["majority_class"]
    summary["margin_over_majority"] = {
        SPLIT: summary[SPLIT][primary]["mean"] - summary["majority_baseline"][SPLIT][primary]
    }
    cards = [per_seed[s][f"calibration_{SPLIT}"] for s in seeds]
    summary[f"calibration_{SPLIT}"] = {
        "method": cards[0]["method"],
        "temperature": spread([c["kept_temperature"] for c in cards]),
        "reasons": {f"seed{s}": c["reason"] for s, c in zip(seeds, cards, strict=True)},
        **{
            name: {
                "before": spread([c["before"][name] for c in cards]),
                "after": spread([c["after"][name] for c in cards]),
            }
            for name in CALIBRATION_SCORES
        },
    }
    return summary


TAIL_HEADLINE = ("tail_recall", "tail_f1")  # binary tasks only: None (left out) elsewhere


def headline(summary: dict) -> dict:
    """metrics/eval.json: what `dvc exp show` lists, narrow enough for a 120-column terminal: the
    primary metric's validation mean over seeds, its sample standard deviation over seeds
    (`seed_sd`), its margin over the majority class (`vs_majority`), the uncalibrated
    validation ECE, and on binary tasks the minority class's recall and F1 (`tail_recall`,
    `tail_f1`: what a tail-recipe sweep moves); everything else is in metrics/scores.json.

    >>> headline({"primary_metric": "acc", "val": {"acc": {"mean": 0.9, "std": 0.01}},
    ...           "margin_over_majority": {"val": 0.4},
    ...           "calibration_val": {"ece": {"before": {"mean": 0.05}}}})
    {'acc': 0.9, 'seed_sd': 0.01, 'vs_majority': 0.4, 'ece': 0.05}
    """
    primary = summary["primary_metric"]
    line = {
        primary: summary[SPLIT][primary]["mean"],
        "seed_sd": summary[SPLIT][primary]["std"],
        "vs_majority": summary["margin_over_majority"][SPLIT],
        "ece": summary[f"calibration_{SPLIT}"]["ece"]["before"]["mean"],
    }
    for tail in TAIL_HEADLINE:
        value = summary[SPLIT].get(tail, {}).get("mean")
        if value is not None and tail not in line:
            line[tail] = value
    return line


def mean_of(dicts: list[dict]) -> dict:
    """Key-wise mean of numeric leaves over several dicts of the same shape (None stays None)."""
    out = {}
    for key, value in dicts[0].items():
        if isinstance(value, dict):
            out[key] = mean_of([d[key] for d in dicts])
        elif value is None or any(d[key] is None for d in dicts):
            out[key] = None
        else:
            out[key] = float(np.mean([d[key] for d in dicts]))
    return out


def held_out_tables(params: Params, per_seed: dict[int, dict]) -> list[pd.DataFrame]:
    """Each seed's validation predictions with the predicted label (by the seed's tuned
    threshold, if any, from its metrics in `per_seed`) and the clip's group."""
    groups = pd.read_parquet(params.data.interim_dir / "manifest.parquet")[["clip_id", "group"]]
    tables = []
    for seed in params.train.seeds:
        table = pd.read_parquet(predictions_dir(seed) / f"{SPLIT}.parquet")
        table["predicted"] = predicted_labels(table, per_seed[seed].get(metrics.THRESHOLD))
        tables.append(table.merge(groups, on="clip_id", how="left"))
    return tables


def diagnostics_report(per_seed: dict[int, dict], tables: list[pd.DataFrame]) -> dict:
    """metrics/diagnostics.json: per class, per group, always-wrong rows, clustering, ablations."""
    seeds = sorted(per_seed)
    keys = ["clip_id", "t"] if "t" in tables[0] else ["clip_id"]
    wrong = model_diagnostics.wrong_in_every_seed(tables, keys)
    group = [model_diagnostics.group_scores(t, lambda a, b: float((a == b).mean())) for t in tables]
    per_group = mean_of([g["per_group"] for g in group])
    ablation = [per_seed[s][f"modality_ablation_{SPLIT}"] for s in seeds]
    return {
        "split": SPLIT,
        "per_class": mean_of([per_seed[s][f"per_class_{SPLIT}"] for s in seeds]),
        "per_group_accuracy": per_group,
        "worst_groups": [
            {"group": g, "accuracy": v} for g, v in sorted(per_group.items(), key=lambda i: i[1])
        ][:5],
        "wrong_in_every_seed": {
            "rows": len(wrong),
            "share": len(wrong) / max(len(tables[0]), 1),
            "examples": wrong.head(20).to_dict("records"),
        },
        "probability_clusters": {
            f"seed{s}": per_seed[s][f"probability_clusters_{SPLIT}"] for s in seeds
        },
        "modality_ablation": mean_of(ablation) if all(ablation) else {},
        "modality_ablation_method": "muted: the modality's features set to their training mean; "
        "from_other_clip: taken from another clip (clips rolled by one); drop = full - ablated, "
        "primary metric, mean over seeds",
        "calibration_method": per_seed[seeds[0]][f"calibration_{SPLIT}"]["method"],
    }


def efficiency(per_seed: dict[int, dict], primary_mean: float) -> dict:
    """metrics/efficiency.json: the model's size against its validation score."""
    head = read_json(model_dir(min(per_seed)) / DESCRIPTION)
    return {
        "trainable_parameters": head["trainable_parameters"],
        "total_parameters": head["total_parameters"],
        f"primary_{SPLIT}_mean": primary_mean,
    }


def reliability_rows(per_seed: dict[int, dict], which: str) -> pd.DataFrame:
    """Reliability bins pooled over seeds (count-weighted); empty bins left out."""
    rows = [b for s in sorted(per_seed) for b in per_seed[s][f"calibration_{SPLIT}"][which]]
    frame = pd.DataFrame(rows)
    frame = frame[frame["count"] > 0].copy()
    frame["confidence_sum"] = frame["confidence"] * frame["count"]
    frame["accuracy_sum"] = frame["accuracy"] * frame["count"]
    pooled = frame.groupby("bin_lower", as_index=False)[["count", "confidence_sum",
                                                        "accuracy_sum"]].sum()  # fmt: skip
    return pd.DataFrame(
        {
            "confidence": pooled["confidence_sum"] / pooled["count"],
            "accuracy": pooled["accuracy_sum"] / pooled["count"],
            "count": pooled["count"],
        }
    )


def seed_scores(per_seed: dict[int, dict], primary: str) -> pd.DataFrame:
    """One row per seed: the primary metric on validation."""
    return pd.DataFrame(
        {
            "seed": [f"seed{s}" for s in sorted(per_seed)],
            f"primary_{SPLIT}": [per_seed[s][SPLIT][primary] for s in sorted(per_seed)],
        }
    )


def efficiency_rows(per_seed: dict[int, dict], primary: str, trainable: int) -> pd.DataFrame:
    """One row per seed: the trainable parameter count and the primary metric on validation, so
    that `dvc plots diff` over experiments shows each run's seeds, and their spread, at its size."""
    rows = seed_scores(per_seed, primary)
    rows.insert(1, "trainable_parameters", trainable)
    return rows


def confusion_rows(tables: list[pd.DataFrame], seeds: list[int]) -> pd.DataFrame:
    """Validation (actual, predicted) pairs of every seed, for DVC's confusion template."""
    return pd.concat(
        [
            pd.DataFrame({"seed": f"seed{s}", "actual": t["label"], "predicted": t["predicted"]})
            for s, t in zip(seeds, tables, strict=True)
        ],
        ignore_index=True,
    )


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


def split_ids(seeds: list[int]) -> dict[str, str]:
    """The ordered sample-id hash of the validation split; every seed must share it. (The test
    split's id hash is taken at a recorded look.)"""
    hashes = {}
    for split in (SPLIT,):
        found = {
            seed: ids_sha256(pd.read_parquet(predictions_dir(seed) / f"{split}.parquet"))
            for seed in seeds
        }
        if len(set(found.values())) != 1:
            raise StageError(
                f"predictions/seed*/{split}.parquet: seeds {seeds} hold different samples "
                f"({found}); they come from different runs: re-run evaluate for every seed"
            )
        hashes[split] = found[seeds[0]]
    return hashes


def run(params: Params) -> dict:
    """Write the metrics, diagnostics, efficiency and run-card files and the plot data."""
    seeds = params.train.seeds
    primary = params.evaluate.primary_metric
    per_seed = {s: read_json(predictions_dir(s) / SEED_SCORES) for s in seeds}
    summary = aggregate(per_seed, primary)
    cost = efficiency(per_seed, summary[SPLIT][primary]["mean"])
    summary["trainable_parameters"] = cost["trainable_parameters"]
    summary["ids_sha256"] = split_ids(seeds)
    write_json(SCORES, summary)
    write_json(EVAL_METRICS, headline(summary))
    tables = held_out_tables(params, per_seed)
    write_json(DIAGNOSTICS, diagnostics_report(per_seed, tables))
    write_json(EFFICIENCY, cost)
    write_json(RUN_CARD, run_card.build(params))
    write_csv(seed_scores(per_seed, primary), PLOTS / "seed_scores.csv")
    write_csv(confusion_rows(tables, seeds), PLOTS / "confusion.csv")
    write_csv(training_curves(seeds), PLOTS / "train_curves.csv")
    for which, name in (
        ("reliability_before", "uncalibrated"),
        ("reliability_after", "calibrated"),
    ):
        write_csv(reliability_rows(per_seed, which), PLOTS / f"reliability_{name}.csv")
    write_csv(
        efficiency_rows(per_seed, primary, cost["trainable_parameters"]), PLOTS / "efficiency.csv"
    )
    return summary
