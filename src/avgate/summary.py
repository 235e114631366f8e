"""The few lines `make repro` ends with: the headline of metrics/scores.json, the leakage verdict,
the visual budget, the gate and the go/no-go verdict, each line at most 100 characters (the
files hold the rest).

>>> lines = render({"primary_metric": "accuracy", "n_seeds": 3, "val": {"accuracy": {"mean":
...     0.9, "std": 0.01}}, "majority_baseline": {"val": {"accuracy": 0.5}},
...     "calibration_val": {"ece": {"before": {"mean": 0.05}, "after": {"mean": 0.05}},
...     "nll": {"before": {"mean": 0.3}, "after": {"mean": 0.3}},
...     "reasons": {"seed0": "T = 1 kept: x"}}}, {"verdict": "no leakage"}, None)
>>> lines[1]
'val accuracy 0.9000 ± 0.0100 (mean ± sample std over 3 seeds); majority class 0.5000'
"""

from __future__ import annotations

import textwrap

WIDTH = 100


def render(
    evaluation: dict,
    leakage: dict | None,
    gate: dict | None,
    budget: dict | None = None,
    go: dict | None = None,
) -> list[str]:
    """At most 15 lines of at most 100 characters."""
    primary = evaluation["primary_metric"]
    val = evaluation["val"][primary]
    majority = evaluation["majority_baseline"]["val"][primary]
    calibration = evaluation["calibration_val"]
    kept = sum(reason.startswith("T = 1 kept") for reason in calibration["reasons"].values())
    lines = [
        "== avgate: validation only; the test split stays sealed until a gate look ==",
        f"val {primary} {val['mean']:.4f} ± {val['std']:.4f} (mean ± sample std over "
        f"{evaluation['n_seeds']} seeds); majority class {majority:.4f}",
        f"val ECE {_change(calibration['ece'])}, NLL {_change(calibration['nll'])} after "
        f"cross-fitted scaling (T = 1 on {kept} of {len(calibration['reasons'])} seeds)",
    ]
    if leakage:
        lines += _wrapped(f"split: {leakage['verdict']}")
    if budget and budget["policy"] != "none":
        lines += _wrapped(_budget_line(budget))
    if gate:
        lines += _wrapped(f"gate {gate['stage']}: " + _gate_line(gate))
    if go:
        lines += _wrapped(f"go/no-go: {_go_line(go)} (reports/go.md)")
    lines += [
        "details: metrics/*.json, `dvc plots show`, `avgate profiles` (timings)",
        "next: dvc exp run -S train.lr=0.003; dvc exp show --only-changed; avgate plan check",
    ]
    return lines[:15]


def _budget_line(budget: dict) -> str:
    """The policy, both planned budgets and the fallback rate on validation.

    >>> _budget_line({"policy": "uniform", "planned": {"uniform": 4.9e6, "anchored_topk": 4.9e6,
    ...               "gap": 0.0}, "fallback_used_frac": {"val": 0.0}})
    'visual budget uniform: 4.9e+06 px planned, anchored_topk +0.00%; val fallback 0.0% of clips'
    """
    planned = budget["planned"]
    return (
        f"visual budget {budget['policy']}: {planned['uniform']:.3g} px planned, anchored_topk "
        f"{planned['gap']:+.2%}; val fallback {budget['fallback_used_frac']['val']:.1%} of clips"
    )


def _go_line(go: dict) -> str:
    """The verdict of reports/go.json with its counts, or the checks that failed.

    >>> _go_line({"verdict": "NO-GO", "failed": ["seed_std"], "counts": {}})
    'NO-GO, failed: seed_std'
    >>> _go_line({"verdict": "GO", "failed": [], "counts": {"passed": 6, "not_applicable": 1}})
    'GO, 6 passed, 1 not applicable'
    """
    if go["failed"]:
        return f"{go['verdict']}, failed: {', '.join(go['failed'])}"
    counts = go["counts"]
    return f"{go['verdict']}, {counts.get('passed', 0)} passed, " \
        f"{counts.get('not_applicable', 0)} not applicable"  # fmt: skip


def _change(score: dict) -> str:
    return f"{score['before']['mean']:.4f} -> {score['after']['mean']:.4f}"


def _gate_line(gate: dict) -> str:
    if gate.get("decision") == "no_baseline":
        return gate["reason"].split(" (")[0]
    if gate["stage"] == "selection":
        return f"mean {gate['split']} delta {gate['mean_delta']:+.4f} against the baseline"
    return f"{gate['decision'].upper()}, mean delta {gate['mean_delta']:+.4f} (reports/gate.md)"


def _wrapped(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, subsequent_indent="  ")
