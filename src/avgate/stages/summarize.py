"""`summarize`: mean, std and per-seed values of every metric, diagnostics, efficiency, the run
card, and the plot data for `dvc plots`.

`std` is the sample standard deviation over seeds (ddof=1; 0 with a single seed). Seeds come from
`train.seeds`, never from whatever folders happen to exist.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from avgate import diagnostics
from avgate.config import Params
from avgate.files import read_json, write_csv, write_json
from avgate.gating.pairing import ids_sha256
from avgate.stages import StageError, run_card
from avgate.stages.inputs import (
    DESCRIPTION,
    EVAL_SPLITS,
    live_dir,
    model_dir,
    predicted_labels,
    predictions_dir,
)
from avgate.stages.profile import profile_path

EVAL_METRICS = Path("metrics/eval.json")
DIAGNOSTICS = Path("metrics/diagnostics.json")
EFFICIENCY = Path("metrics/efficiency.json")
RUN_CARD = Path("reports/run_card.json")
PLOTS = Path("plots")
CURVES = ("train_loss", "val_loss", "val_accuracy")
CALIBRATION_SCORES = ("ece", "adaptive_ece", "classwise_ece", "nll", "brier")


def spread(values: list[float]) -> dict:
    """Mean and sample std (ddof=1) of per-seed values."""
    array = np.asarray(values, dtype=float)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return {"mean": float(array.mean()), "std": std}


def aggregate(per_seed: dict[int, dict], primary: str) -> dict:
    """metrics/eval.json from the per-seed metrics files; undefined metrics are left out."""
    seeds = sorted(per_seed)
    first = per_seed[seeds[0]]
    summary: dict = {"primary_metric": primary, "n_seeds": len(seeds), "seeds": seeds}
    for split in [*EVAL_SPLITS, "test_aggregated"]:
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
    summary["majority_baseline"] = {
        split: {k: v for k, v in first[f"majority_baseline_{split}"].items() if v is not None}
        for split in EVAL_SPLITS
    }
    summary["majority_class"] = first["majority_class"]
    summary["margin_over_majority"] = {
        split: summary[split][primary]["mean"] - summary["majority_baseline"][split][primary]
        for split in EVAL_SPLITS
    }
    cards = [per_seed[s]["calibration_test"] for s in seeds]
    summary["calibration_test"] = {
        "temperature": spread([c["temperature"] for c in cards]),
        **{
            name: {
                "before": spread([c["before"][name] for c in cards]),
                "after": spread([c["after"][name] for c in cards]),
            }
            for name in CALIBRATION_SCORES
        },
    }
    return summary


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


def held_out_tables(params: Params) -> list[pd.DataFrame]:
    """Each seed's test predictions with the predicted label and the clip's group."""
    groups = pd.read_parquet(params.data.interim_dir / "manifest.parquet")[["clip_id", "group"]]
    tables = []
    for seed in params.train.seeds:
        table = pd.read_parquet(predictions_dir(seed) / "test.parquet")
        table["predicted"] = predicted_labels(table)
        tables.append(table.merge(groups, on="clip_id", how="left"))
    return tables


def diagnostics_report(per_seed: dict[int, dict], tables: list[pd.DataFrame]) -> dict:
    """metrics/diagnostics.json: per class, per group, always-wrong rows, clustering, ablations."""
    seeds = sorted(per_seed)
    keys = ["clip_id", "t"] if "t" in tables[0] else ["clip_id"]
    wrong = diagnostics.wrong_in_every_seed(tables, keys)
    group = [diagnostics.group_scores(t, lambda a, b: float((a == b).mean())) for t in tables]
    per_group = mean_of([g["per_group"] for g in group])
    ablation = [per_seed[s]["modality_ablation_test"] for s in seeds]
    return {
        "split": "test",
        "per_class": mean_of([per_seed[s]["per_class_test"] for s in seeds]),
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
            f"seed{s}": per_seed[s]["probability_clusters_test"] for s in seeds
        },
        "modality_ablation": mean_of(ablation) if all(ablation) else {},
        "modality_ablation_method": "muted: the modality's features set to their training mean; "
        "from_other_clip: taken from another clip (clips rolled by one); drop = full - ablated, "
        "primary metric, mean over seeds",
        "calibration_method": per_seed[seeds[0]]["calibration_test"]["test"],
    }


def efficiency(params: Params, per_seed: dict[int, dict], primary_mean: float) -> dict:
    """metrics/efficiency.json: parameters, throughput, peak memory, wall time per stage."""
    seeds = sorted(per_seed)
    head = read_json(model_dir(seeds[0]) / DESCRIPTION)
    profiled = [
        "ingest",
        "split",
        *(f"embed/{name}" for name in params.embed.encoders),
        "audit",
        *(f"train/seed{s}" for s in seeds),
        *(f"evaluate/seed{s}" for s in seeds),
    ]
    profiles = {stage: read_json(profile_path(stage)) for stage in profiled}
    train = [profiles[f"train/seed{s}"] for s in seeds]
    return {
        "trainable_parameters": head["trainable_parameters"],
        "total_parameters": head["total_parameters"],
        "train_samples_per_s": spread([p["samples_per_s"] for p in train]),
        "peak_rss_mib": {stage: p["peak_rss_mib"] for stage, p in profiles.items()},
        "gpu_peak_memory_mib": None,
        "wall_seconds": {
            stage.replace("/seed", "@").replace("/", "@"): p["seconds"]
            for stage, p in profiles.items()
        },
        "primary_test_mean": primary_mean,
    }


def reliability_rows(per_seed: dict[int, dict], which: str) -> pd.DataFrame:
    """Reliability bins pooled over seeds (count-weighted); empty bins left out."""
    rows = [b for s in sorted(per_seed) for b in per_seed[s]["calibration_test"][which]]
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


def confusion_rows(tables: list[pd.DataFrame], seeds: list[int]) -> pd.DataFrame:
    """Test-split (actual, predicted) pairs of every seed, for DVC's confusion template."""
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
    """The ordered sample-id hash of each evaluated split; every seed must share it."""
    hashes = {}
    for split in EVAL_SPLITS:
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
    per_seed = {s: read_json(predictions_dir(s) / "metrics.json") for s in seeds}
    summary = aggregate(per_seed, primary)
    cost = efficiency(params, per_seed, summary["test"][primary]["mean"])
    summary["trainable_parameters"] = cost["trainable_parameters"]
    summary["ids_sha256"] = split_ids(seeds)
    write_json(EVAL_METRICS, summary)
    tables = held_out_tables(params)
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
        pd.DataFrame({"trainable_parameters": [cost["trainable_parameters"]],
                      "primary_test_mean": [cost["primary_test_mean"]]}),
        PLOTS / "efficiency.csv",
    )  # fmt: skip
    return summary
