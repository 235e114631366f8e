"""Markdown comparison of two experiments' summaries, fit for a pull-request comment.

Descriptive only: means and sample standard deviations over seeds, and their difference. Whether
a difference is real is the gate's job (paired tests on the same seeds and samples). Validation
only: the test split is sealed until a recorded look.

>>> current = {"primary_metric": "accuracy", "n_seeds": 3, "val": {"accuracy": {"mean": 0.9,
...            "std": 0.01}}}
>>> print(metrics_table(current, None, "main").splitlines()[2])
| val | accuracy | – | 0.9000 ± 0.0100 | – |
"""

from __future__ import annotations

SPLITS = ("val",)


def _cell(entry: dict | None) -> str:
    if not entry:
        return "–"
    return f"{entry['mean']:.4f} ± {entry['std']:.4f}"


def _delta(new: dict | None, old: dict | None) -> str:
    if not new or not old:
        return "–"
    return f"{new['mean'] - old['mean']:+.4f}"


def metrics_table(current: dict, baseline: dict | None, rev: str) -> str:
    """Every validation metric: baseline, current and their difference of means."""
    lines = [
        f"| split | metric | {rev} | workspace | Δ mean |",
        "| --- | --- | --- | --- | --- |",
    ]
    for split in SPLITS:
        old_split = (baseline or {}).get(split, {})
        for name, entry in current.get(split, {}).items():
            old = old_split.get(name)
            lines.append(
                f"| {split} | {name} | {_cell(old)} | {_cell(entry)} | {_delta(entry, old)} |"
            )
    return "\n".join(lines)


def calibration_table(current: dict, baseline: dict | None, rev: str) -> str:
    """Validation calibration before and after cross-fitted temperature scaling, baseline
    against workspace."""
    lines = [
        f"| score | {rev} before | {rev} after | workspace before | workspace after |",
        "| --- | --- | --- | --- | --- |",
    ]
    old = (baseline or {}).get("calibration_val", {})
    for name, entry in current.get("calibration_val", {}).items():
        if not isinstance(entry, dict) or "before" not in entry:
            continue
        previous = old.get(name, {})
        lines.append(
            f"| {name} | {_cell(previous.get('before'))} | {_cell(previous.get('after'))} "
            f"| {_cell(entry['before'])} | {_cell(entry['after'])} |"
        )
    reasons = current.get("calibration_val", {}).get("reasons", {})
    lines += ["", "Temperature kept per seed (workspace):", ""]
    lines += [f"- {seed}: {reason}" for seed, reason in reasons.items()]
    return "\n".join(lines)


def diagnostics_section(found: dict) -> str:
    """Worst groups, rows wrong in every seed, probability clustering, modality ablations."""
    lines = ["Worst groups (validation accuracy, mean over seeds):", ""]
    lines += [f"- {w['group']}: {w['accuracy']:.3f}" for w in found.get("worst_groups", [])]
    wrong = found.get("wrong_in_every_seed", {})
    lines += ["", f"Validation rows wrong in every seed: {wrong.get('rows', 0)} "
              f"({wrong.get('share', 0):.1%})."]  # fmt: skip
    clusters = found.get("probability_clusters", {})
    if clusters:
        worst = max(c["share_in_clusters"] for c in clusters.values())
        lines.append(
            f"Largest share of validation predictions sharing one probability vector: {worst:.1%}."
        )
    ablation = found.get("modality_ablation", {})
    if ablation:
        lines += ["", "| ablation | primary metric | drop |", "| --- | --- | --- |"]
        lines += [f"| {name} | {v['score']:.4f} | {v['drop']:+.4f} |"
                  for name, v in ablation.items() if isinstance(v, dict)]  # fmt: skip
    return "\n".join(lines)


def render(
    current: dict,
    baseline: dict | None,
    rev: str,
    found: dict,
    cost: dict,
    plots: str | None,
) -> str:
    """The whole report."""
    primary = current["primary_metric"]
    head = current["val"][primary]
    parts = [
        f"## avgate report: workspace against `{rev}`",
        "",
        f"Primary metric **{primary}** on validation: {_cell(head)} (mean ± sample std over "
        f"{current['n_seeds']} seeds{'' if baseline else f'; no metrics found at {rev}'}).",
        "Descriptive only: no significance test here; the gate runs paired tests.",
        "",
        "### Metrics",
        "",
        metrics_table(current, baseline, rev),
        "",
        "### Calibration on validation (temperature cross-fitted on its two halves)",
        "",
        calibration_table(current, baseline, rev),
        "",
        "### Diagnostics (workspace)",
        "",
        diagnostics_section(found),
        "",
        "### Cost (workspace)",
        "",
        f"Trainable parameters {cost.get('trainable_parameters')} of "
        f"{cost.get('total_parameters')}; wall times and peak memory: `avgate profiles`.",
    ]
    if plots:
        parts += ["", f"Plots: `{plots}` (`dvc plots diff {rev}`)."]
    return "\n".join(parts) + "\n"
