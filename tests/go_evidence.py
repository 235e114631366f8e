"""Hand-written evidence for the go/no-go checks: the files the pipeline writes, reduced to the
keys the checks read, with values that pass every example threshold; `edit` changes one.

`write_run(root, seeds, finetune=..., modalities=..., fusion=...)` writes a consistent workspace:
a head on audio and visual embeddings by default (modality ablations, no LoRA facts), or a LoRA
run on the audio (no ablations; head.json with the freeze counts and forward equivalence); the
alignment probe's findings, or that it did not apply when `modalities` has no visual; the items,
stress and policies probes' findings for a head on audio and visual (the closed gate's parity
unless `fusion` is not gated), or that they did not apply.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

INGEST = "metrics/ingest.json"
LEAKAGE = "metrics/leakage.json"
AUDIT = "metrics/audit.json"
SCORES = "metrics/scores.json"
PAIRS = ("train|val", "train|test", "val|test")
ALIGNMENT = "reports/probe/alignment.json"
ITEMS = "reports/probe/items.json"
STRESS = "reports/probe/stress.json"
POLICIES = "reports/probe/policies.json"


def probe(name: str) -> str:
    return f"reports/probe/{name}.json"


def seed_scores(seed: int) -> str:
    return f"predictions/seed{seed}/metrics.json"


def head(seed: int) -> str:
    return f"models/seed{seed}/head.json"


def write(root: Path, path: str, data: Any) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(json.dumps(data, indent=2))


def edit(root: Path, path: str, change: Callable[[dict], None]) -> None:
    """Apply `change` to the JSON file at `path` in place."""
    data = json.loads((root / path).read_text())
    change(data)
    write(root, path, data)


def write_run(
    root: Path,
    seeds: tuple[int, ...] = (0, 1),
    finetune: str = "none",
    modalities: tuple[str, ...] = ("audio", "visual"),
    fusion: str = "gated",
) -> None:
    """Evidence of a healthy run: every example threshold of the registered checks passes."""
    write(root, INGEST, {"n_files": 100, "n_ok": 99, "ok_fraction": 0.99})
    counts = {"a": 20, "b": 10}
    write(root, LEAKAGE, {
        "label_counts": {"train": counts, "val": {"a": 6, "b": 4}, "test": {"a": 6, "b": 4}},
        "group_overlap": dict.fromkeys(PAIRS, 0),
        "duplicate_overlap": {"sha256": dict.fromkeys(PAIRS, 0),
                              "audio_sha256": dict.fromkeys(PAIRS, 0)},
        "group_check": {"n_groups": 12, "singleton_groups": 0, "blind": False, "fix": ""},
    })  # fmt: skip
    write(root, AUDIT, {"near_duplicates": {
        "test": "cosine similarity", "threshold": 0.995,
        **{pair: {"pairs": 0, "examples": []} for pair in PAIRS},
    }})  # fmt: skip
    primary = "segment_accuracy"
    per_seed = {f"seed{s}": 0.80 + 0.01 * i for i, s in enumerate(seeds)}
    values = list(per_seed.values())
    mean, std = statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0
    write(root, SCORES, {
        "primary_metric": primary, "n_seeds": len(seeds), "seeds": list(seeds),
        "val": {primary: {"mean": mean, "std": std, "per_seed": per_seed}},
        "calibration_val": {"ece": {"before": {"mean": 0.05, "std": 0.01},
                                    "after": {"mean": 0.04, "std": 0.01}}},
    })  # fmt: skip
    for seed in seeds:
        ablation = {}
        if finetune == "none" and len(modalities) > 1:
            ablation = {"full": 0.8}
            for modality in modalities:
                ablation[f"{modality}_muted"] = {"score": 0.75, "drop": 0.05}
                ablation[f"{modality}_from_other_clip"] = {"score": 0.7, "drop": 0.1}
        write(root, seed_scores(seed), {"seed": seed, "primary_metric": primary,
                                        "modality_ablation_val": ablation})  # fmt: skip
        description: dict[str, Any] = {"finetune": finetune, "trainable_parameters": 1200,
                                       "total_parameters": 1200}  # fmt: skip
        if finetune == "lora":
            description |= {
                "trainable_parameters": 1200, "adapter_parameters": 1000, "head_parameters": 200,
                "total_parameters": 50_000, "forward_equivalence_max_abs_diff": 4e-7,
                "forward_equivalence_mean_abs_logit_diff": 2e-8,
            }  # fmt: skip
        write(root, head(seed), description)
    alignment: dict[str, Any] = {"applies": False, "reason": "no visual encoder"}
    if "visual" in modalities:
        alignment = {
            "applies": True, "n_clips": 50, "n_seconds": 500, "agreement": 0.95,
            "audio_label_agreement": 0.96, "visual_label_agreement": 0.97,
            "mismatched_share": 0.0, "n_mismatched": 0, "mismatched_clips": [],
        }  # fmt: skip
    write(root, ALIGNMENT, alignment)
    write_learning_probes(root, seeds, finetune)
    write_modality_probes(root, seeds, finetune == "none" and len(modalities) > 1, fusion, primary)


def write_learning_probes(root: Path, seeds: tuple[int, ...], finetune: str) -> None:
    """The overfit, resume, efficiency and frozen probes' findings; the first three do not
    apply to a LoRA run."""
    frozen: dict[str, Any] = {
        "applies": True, "clips_per_split": 2, "mismatches": 0,
        "encoders": {"logmel": {"clips": 6, "matches": 6, "mismatched": []}},
    }  # fmt: skip
    if finetune == "lora":
        for name in ("overfit", "resume", "efficiency"):
            write(root, probe(name), {"applies": False, "reason": "train.finetune is lora"})
        write(root, probe("frozen"), frozen)
        return
    write(root, probe("overfit"), {"applies": True, "train_loss": 0.001, "train_accuracy": 1.0,
                                   "rows": 256, "epochs": 200})  # fmt: skip
    metrics = {"best_epoch": 6, "val_loss": 0.8, "val_accuracy": 0.66}
    write(root, probe("resume"), {
        "applies": True, "epochs": 6, "killed_after_epoch": 3, "resumed_from_epoch": 3,
        "uninterrupted": metrics, "resumed": metrics,
        "max_abs_weight_diff": 0.0, "max_abs_metric_diff": 0.0,
    })  # fmt: skip
    write(root, probe("efficiency"), {
        "applies": True, "train_batch_size": 64, "device_memory_gib": 24.0,
        "peak_bytes_at_train_batch_size": 1_078_068, "headroom": 0.999958,
    })  # fmt: skip
    digest = "ab" * 32
    write(root, probe("frozen"), frozen | {
        "standardisation_sha256": {f"seed{s}": digest for s in seeds},
        "expected_standardisation_sha256": digest, "seed_mismatches": [],
    })  # fmt: skip


def write_modality_probes(
    root: Path, seeds: tuple[int, ...], audio_visual: bool, fusion: str, primary: str
) -> None:
    """The items, stress and policies probes' files (not applicable without audio and visual)."""
    if not audio_visual:
        for path in (ITEMS, STRESS, POLICIES):
            write(root, path, {"applies": False, "reason": "no audio and visual to ablate"})
        return
    drops = {"other_seeds": 0.9, "other_clip": 0.85}
    write(root, ITEMS, {
        "applies": True, "seeds": list(seeds),
        "per_seed": {f"seed{s}": {"dependent_drop": drops, "free_drop": 0.02} for s in seeds},
        "mean": {"dependent_drop": drops, "free_drop": 0.02},
    })  # fmt: skip
    use = {"noise": 0.02, "from_other_clip": 0.03}
    parity = (
        {"applies": True, "max_mean_abs_logit_diff": 0.0} if fusion == "gated"
        else {"applies": False, "reason": f"train.fusion is {fusion}: no audio gate to close"}
    )  # fmt: skip
    write(root, STRESS, {"applies": True, "per_seed": {f"seed{s}": {"use": use} for s in seeds},
                         "mean": {"use": use}, "gate_parity": parity})  # fmt: skip
    curve = [
        {"policy": "confidence", "target_skip": t, "threshold": 1 - t / 2, "skipped": t,
         "score": 0.8 - d, "drop": d}
        for t, d in ((0.0, 0.0), (0.3, 0.005), (0.6, 0.05))
    ]  # fmt: skip
    write(root, POLICIES, {"applies": True, "primary_metric": primary, "curve": curve})
