"""Choosing one candidate from a validation sweep, by the rule declared in `gates.yaml`.

Each candidate is compared with the baseline on `selection.split` and `selection.seeds`, paired
by seed, from the two runs' `metrics/eval.json` (per-seed values, the split's ordered sample-id
hash, the trainable parameter count). The rule `max_mean_delta` keeps the largest mean delta
(oriented so positive is better); equal means are broken by `tie_break`: `lower_ece` (mean ECE
on the selection split) or `fewer_parameters`. With `min_mean_delta`, candidates below it are
out, and `NoWinner` says so when none is left. Only validation numbers are read here.

>>> def run(values, ece):
...     return {"ids_sha256": {"val": "h"}, "trainable_parameters": 10,
...             "val": {"acc": {"per_seed": {"seed0": values[0], "seed1": values[1]}},
...                     "ece": {"per_seed": {"seed0": ece, "seed1": ece}}}}
>>> sel = {"split": "val", "seeds": [0, 1], "rule": "max_mean_delta", "tie_break": "lower_ece"}
>>> base = run([0.70, 0.72], 0.1)
>>> rows = {name: compare(sel, "acc", "maximize", base, r) for name, r in
...         {"a": run([0.75, 0.77], 0.09), "b": run([0.76, 0.76], 0.05)}.items()}
>>> choose(sel, rows)[0]
'b'
"""

from __future__ import annotations

import numpy as np

from avgate.gating.pairing import UnpairedError, check_seeds

TIE_TOLERANCE = 1e-12


class NoWinner(ValueError):
    """Every candidate of the sweep fell below `selection.min_mean_delta`."""


def _seeds(run: dict, split: str, metric: str) -> list[int]:
    """The seeds a run's eval.json has values for (`dvc exp show` drops its list of seeds)."""
    per_seed = run.get(split, {}).get(metric, {}).get("per_seed", {})
    return [int(key.removeprefix("seed")) for key in per_seed]


def _per_seed(run: dict, split: str, name: str, seeds: list[int], side: str) -> np.ndarray:
    try:
        values = run[split][name]["per_seed"]
        return np.array([values[f"seed{s}"] for s in seeds], dtype=np.float64)
    except KeyError as error:
        raise UnpairedError(
            f"the {side}'s metrics/eval.json has no {split} {name!r} for seeds {seeds} "
            f"(missing {error}); re-run it with train.seeds covering them"
        ) from None


def compare(selection: dict, metric: str, direction: str, baseline: dict, candidate: dict) -> dict:
    """The candidate against the baseline on the selection split: deltas paired by seed."""
    split, seeds = selection["split"], selection["seeds"]
    check_seeds(
        _seeds(baseline, split, metric), _seeds(candidate, split, metric), seeds, "selection"
    )
    ids = baseline["ids_sha256"][split], candidate["ids_sha256"][split]
    if ids[0] != ids[1]:
        raise UnpairedError(
            f"unpaired comparison at selection: the {split} samples differ (ids sha256 "
            f"{ids[0][:12]} vs {ids[1][:12]}); candidate and baseline must share data and split"
        )
    base = _per_seed(baseline, split, metric, seeds, "baseline")
    cand = _per_seed(candidate, split, metric, seeds, "candidate")
    deltas = cand - base if direction == "maximize" else base - cand
    return {
        "split": split,
        "seeds": list(seeds),
        "baseline_scores": base.tolist(),
        "candidate_scores": cand.tolist(),
        "deltas": deltas.tolist(),
        "mean_delta": float(deltas.mean()),
        "ece": float(_per_seed(candidate, split, "ece", seeds, "candidate").mean()),
        "trainable_parameters": candidate["trainable_parameters"],
    }


def choose(selection: dict, rows: dict[str, dict]) -> tuple[str, str]:
    """The winning candidate's name and why it won, by `selection.rule` then `tie_break`."""
    if not rows:
        raise ValueError("no candidates to choose from")
    floor = selection.get("min_mean_delta")
    if floor is not None:
        below = {name: row["mean_delta"] for name, row in rows.items() if row["mean_delta"] < floor}
        if len(below) == len(rows):
            listed = ", ".join(f"{name} {delta:+.4f}" for name, delta in sorted(below.items()))
            raise NoWinner(
                f"every candidate's mean {next(iter(rows.values()))['split']} delta is below "
                f"selection.min_mean_delta {floor:+.4f} ({listed})"
            )
        rows = {name: row for name, row in rows.items() if name not in below}
    best = max(row["mean_delta"] for row in rows.values())
    tied = sorted(name for name, row in rows.items() if best - row["mean_delta"] <= TIE_TOLERANCE)
    reason = (
        f"largest mean {rows[tied[0]]['split']} delta {best:+.4f} over seeds {selection['seeds']}"
    )
    if len(tied) == 1:
        return tied[0], reason
    tie_break = selection.get("tie_break")
    if tie_break is None:
        return tied[0], f"{reason}; tied with {tied[1:]}, no tie_break declared: first by name"
    key = "ece" if tie_break == "lower_ece" else "trainable_parameters"
    winner = min(tied, key=lambda name: (rows[name][key], name))
    return winner, f"{reason}; tie among {tied} broken by {tie_break} ({key} {rows[winner][key]})"
