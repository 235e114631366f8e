"""gates.yaml: loading, every validation error, unreachable alpha, and the spec hash."""

from __future__ import annotations

import copy

import pytest
import yaml

from avgate.gating.spec import GateSpec, SpecError, load_spec, parse_spec

GATES_YAML = """\
primary_metric: segment_accuracy
direction: maximize            # or minimize
baseline: v1-baseline          # git tag or revision
max_attempts: 3
selection: {split: val, seeds: [0, 1, 2], rule: max_mean_delta, tie_break: lower_ece}
stages:
  - name: quick_test
    split: test
    seeds: [0, 1, 2]
    statistic: sign_flip        # paired_t | wilcoxon | sign_flip
    alternative: greater
    alpha: 0.2
    min_delta: 0.018
    ci_low_min: null
    non_inferiority: {ece: 0.01}
  - name: full_test
    split: test
    seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    statistic: paired_t
    alternative: greater
    alpha: 0.05
    min_delta: 0.02
"""


def data() -> dict:
    return yaml.safe_load(GATES_YAML)


def test_load_valid_file(tmp_path):
    path = tmp_path / "gates.yaml"
    path.write_text(GATES_YAML)
    spec = load_spec(path)
    assert isinstance(spec, GateSpec)
    assert (spec.primary_metric, spec.direction, spec.baseline) == (
        "segment_accuracy",
        "maximize",
        "v1-baseline",
    )
    assert spec.max_attempts == 3
    assert spec.selection["tie_break"] == "lower_ece"
    quick, full = spec.stages
    assert quick.seeds == (0, 1, 2) and quick.statistic == "sign_flip"
    assert quick.non_inferiority == {"ece": 0.01} and quick.ci_low_min is None
    assert full.seeds == tuple(range(10)) and full.alpha == 0.05 and full.non_inferiority == {}


def test_hash_stable_under_comments_and_formatting(tmp_path):
    plain = tmp_path / "a.yaml"
    plain.write_text(GATES_YAML)
    reformatted = tmp_path / "b.yaml"
    reformatted.write_text(
        "# the plan\n" + yaml.safe_dump(data(), default_flow_style=False, sort_keys=True)
    )
    assert load_spec(plain).hash == load_spec(reformatted).hash
    assert len(load_spec(plain).hash) == 64


def test_hash_changes_with_a_threshold():
    changed = data()
    changed["stages"][1]["min_delta"] = 0.021
    assert parse_spec(changed, "x").hash != parse_spec(data(), "x").hash


def set_key(d: dict, path: tuple, value) -> dict:
    d = copy.deepcopy(d)
    target = d
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return d


def drop_key(d: dict, path: tuple) -> dict:
    d = copy.deepcopy(d)
    target = d
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return d


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (set_key(data(), ("extra",), 1), "extra: unknown key"),
        (set_key(data(), ("stages", 0, "alhpa"), 0.1), "stages[quick_test].alhpa: unknown key"),
        (set_key(data(), ("selection", "spilt"), "val"), "selection.spilt: unknown key"),
        (drop_key(data(), ("baseline",)), "baseline: missing"),
        (drop_key(data(), ("stages", 1, "alpha")), "stages[full_test].alpha: missing"),
        (drop_key(data(), ("selection", "seeds")), "selection.seeds: missing"),
        (set_key(data(), ("direction",), "maximise"), "direction: must be one of"),
        (set_key(data(), ("stages", 1, "statistic"), "t_test"), "statistic: must be one of"),
        (set_key(data(), ("stages", 1, "alternative"), "more"), "alternative: must be one of"),
        (set_key(data(), ("stages", 1, "alpha"), 0.0), "alpha: must be in (0, 1)"),
        (set_key(data(), ("stages", 1, "alpha"), 1.0), "alpha: must be in (0, 1)"),
        (set_key(data(), ("stages", 1, "alpha"), "0.05"), "alpha: must be a finite number"),
        (set_key(data(), ("stages", 1, "seeds"), []), "seeds: must be a non-empty list"),
        (set_key(data(), ("stages", 1, "seeds"), [0, 1, 1]), "seeds must be unique"),
        (set_key(data(), ("selection", "seeds"), [2, 2]), "seeds must be unique"),
        (set_key(data(), ("stages", 1, "name"), "quick_test"), "stage names must be unique"),
        (set_key(data(), ("max_attempts",), 0), "max_attempts: must be a positive integer"),
        (set_key(data(), ("stages",), []), "stages: must be a non-empty list"),
        (set_key(data(), ("stages", 0, "split"), "train"), "split: must be one of"),
        (set_key(data(), ("stages", 0, "non_inferiority"), {"ece": -1}), "margin must be >= 0"),
        (
            set_key(data(), ("stages", 0, "non_inferiority"), {"calibration": 0.1}),
            "non_inferiority.calibration: must be one of ece,",
        ),
        (set_key(data(), ("selection", "rule"), "best_p"), "selection.rule: must be one of"),
        (set_key(data(), ("selection", "tie_break"), "coin"), "tie_break: must be one of"),
        (set_key(data(), ("stages", 1, "seeds"), [0]), "paired t-test needs at least 2 seeds"),
        (set_key(data(), ("stages", 0, "seeds"), list(range(21))), "at most 20 seeds"),
    ],
)
def test_validation_errors_name_the_key(bad, message):
    with pytest.raises(SpecError, match="^gates.yaml: ") as err:
        parse_spec(bad, "gates.yaml")
    assert message in str(err.value)


def test_errors_name_the_file(tmp_path):
    path = tmp_path / "gates.yaml"
    path.write_text(GATES_YAML.replace("max_attempts: 3", "max_attempts: three"))
    with pytest.raises(SpecError, match=f"^{path}: max_attempts: must be a positive integer"):
        load_spec(path)
    path.write_text("stages: [\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)
    path.write_text("")
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec(path)


@pytest.mark.parametrize("statistic", ["sign_flip", "wilcoxon"])
def test_unreachable_alpha_is_refused(statistic):
    bad = set_key(data(), ("stages", 0, "statistic"), statistic)
    bad["stages"][0]["alpha"] = 0.05
    with pytest.raises(SpecError) as err:
        parse_spec(bad, "gates.yaml")
    text = str(err.value)
    assert "stages[quick_test].alpha" in text
    assert "an exact one-sided test" in text and "3 seeds cannot go below p = 0.125" in text
    assert "alpha 0.05 can never pass: add seeds (at least 5" in text


def test_two_sided_floor_and_reachable_bounds():
    two_sided = set_key(data(), ("stages", 0, "alternative"), "two-sided")
    with pytest.raises(SpecError, match="two-sided test .* cannot go below p = 0.25"):
        parse_spec(two_sided, "gates.yaml")
    exact = set_key(data(), ("stages", 0, "alpha"), 0.125)
    assert parse_spec(exact, "gates.yaml").stages[0].alpha == 0.125
    five = set_key(data(), ("stages", 0, "seeds"), [0, 1, 2, 3, 4])
    five["stages"][0]["alpha"] = 0.05
    assert parse_spec(five, "gates.yaml").stages[0].seeds == (0, 1, 2, 3, 4)
