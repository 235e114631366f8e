"""Choosing the sweep's winner on validation: pairing, the declared rule, tie-breaks; and the
protocol's helpers that read `dvc exp show` and move the baseline pin."""

from __future__ import annotations

import pytest

from avgate.gating.pairing import UnpairedError
from avgate.gating.promote import PromotionError, _changed, _finished, pin_baseline
from avgate.gating.selection import NoWinner, choose, compare
from avgate.gating.spec import parse_spec

SELECTION = {"split": "val", "seeds": [0, 1, 2], "rule": "max_mean_delta"}


def run(scores, ece=0.1, parameters=100, ids="h", seeds=(0, 1, 2)) -> dict:
    def per_seed(values):
        return {"per_seed": {f"seed{s}": v for s, v in zip(seeds, values, strict=True)}}

    return {
        "ids_sha256": {"val": ids},
        "trainable_parameters": parameters,
        "val": {"acc": per_seed(scores), "ece": per_seed([ece] * len(seeds))},
    }


BASE = run([0.70, 0.72, 0.71])


def test_compare_pairs_by_seed_and_orients_the_delta():
    row = compare(SELECTION, "acc", "maximize", BASE, run([0.75, 0.70, 0.74]))
    assert row["deltas"] == pytest.approx([0.05, -0.02, 0.03])
    assert row["mean_delta"] == pytest.approx(0.02)
    lower = compare(SELECTION, "acc", "minimize", BASE, run([0.75, 0.70, 0.74]))
    assert lower["mean_delta"] == pytest.approx(-0.02)


def test_compare_refuses_other_samples_and_missing_seeds():
    with pytest.raises(UnpairedError, match="val samples differ"):
        compare(SELECTION, "acc", "maximize", BASE, run([0.8] * 3, ids="other"))
    with pytest.raises(UnpairedError, match=r"the candidate lacks \[2\]"):
        compare(SELECTION, "acc", "maximize", BASE, run([0.8] * 2, seeds=(0, 1)))


@pytest.mark.parametrize(
    ("tie_break", "winner"), [("lower_ece", "b"), ("fewer_parameters", "a"), (None, "a")]
)
def test_ties_are_broken_as_declared(tie_break, winner):
    selection = SELECTION | ({"tie_break": tie_break} if tie_break else {})
    rows = {
        "a": compare(selection, "acc", "maximize", BASE, run([0.75, 0.77, 0.76], 0.09, 50)),
        "b": compare(selection, "acc", "maximize", BASE, run([0.76, 0.76, 0.76], 0.05, 90)),
        "c": compare(selection, "acc", "maximize", BASE, run([0.71, 0.73, 0.72], 0.01, 10)),
    }
    name, why = choose(selection, rows)
    assert name == winner
    assert "'c'" not in why and "+0.0500" in why


def test_the_largest_mean_delta_wins_without_a_tie():
    rows = {n: compare(SELECTION, "acc", "maximize", BASE, run(s)) for n, s in
            {"x": [0.9, 0.6, 0.6], "y": [0.75, 0.75, 0.75]}.items()}  # fmt: skip
    assert choose(SELECTION, rows)[0] == "y"


def test_min_mean_delta_leaves_out_candidates_below_it_and_stops_when_none_is_left():
    selection = SELECTION | {"min_mean_delta": 0.02}
    rows = {n: compare(selection, "acc", "maximize", BASE, run(s)) for n, s in
            {"x": [0.72, 0.74, 0.73], "y": [0.71, 0.72, 0.71]}.items()}  # fmt: skip
    assert choose(selection, rows)[0] == "x"  # +0.02: at the floor, kept
    with pytest.raises(NoWinner, match=r"below selection.min_mean_delta \+0.0300 \(x \+0.0200, y"):
        choose(SELECTION | {"min_mean_delta": 0.03}, rows)
    assert choose(SELECTION, {"y": rows["y"]})[0] == "y"  # no floor: the best, however small


def test_a_plan_without_min_mean_delta_hashes_as_before_and_one_with_it_differs():
    plan = {"primary_metric": "accuracy", "baseline": "b", "alpha_correction": "bonferroni",
            "min_groups": 2, "selection": dict(SELECTION),
            "stages": [{"name": "t", "split": "test", "seeds": [0, 1, 2], "looks": 1,
                        "statistic": "paired_t", "alternative": "greater", "alpha": 0.05,
                        "min_delta": 0.0}]}  # fmt: skip
    with_floor = {**plan, "selection": SELECTION | {"min_mean_delta": 0.0}}
    assert "min_mean_delta" not in parse_spec(plan, "gates.yaml").selection
    assert parse_spec(with_floor, "gates.yaml").selection["min_mean_delta"] == 0.0
    assert parse_spec(with_floor, "gates.yaml").hash != parse_spec(plan, "gates.yaml").hash


def test_pin_baseline_moves_only_the_top_level_key():
    text = "# plan\nbaseline: v1  # pinned\nstages:\n  - name: x\n    baseline: keep\n"
    assert pin_baseline(text, "model/v2") == text.replace("baseline: v1", "baseline: model/v2", 1)
    with pytest.raises(PromotionError, match="no top-level `baseline:` line"):
        pin_baseline("stages: []\n", "v2")


def test_exp_show_rows_are_read_for_state_and_swept_values():
    params = {"params.yaml": {"data": {"train": {"hidden": 256, "lr": 0.01}}}}
    row = {"data": {"metrics": {"metrics/eval.json": {"data": {}}}, "params": params}}
    assert _finished(row, "success") and _finished(None, "failed")
    assert not _finished({"data": {"metrics": {}}}, "success") and not _finished(row, "running")
    assert _changed(row, ["train.hidden=128,256", "params.yaml:train.lr=0.01"]) == [
        "train.hidden=256", "train.lr=0.01",
    ]  # fmt: skip
