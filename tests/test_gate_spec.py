"""gates.yaml: loading, every validation error, unreachable alpha, the primary metric's
direction from the metric registry, and the spec hash."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest
import yaml

from avgate import metrics
from avgate.declare import ConfigError
from avgate.gating.spec import GateSpec, check_groups, check_params, load_spec, parse_spec
from tests.scratch import REPO

GATES_YAML = """\
primary_metric: segment_accuracy
direction: maximize            # or minimize
baseline: v1-baseline          # git tag or revision
alpha_correction: bonferroni
min_groups: 8
selection: {split: val, seeds: [0, 1, 2], rule: max_mean_delta, tie_break: lower_ece}
stages:
  - name: quick_test
    split: test
    seeds: [0, 1, 2]
    statistic: sign_flip        # paired_t | wilcoxon | sign_flip
    alternative: greater
    alpha: 0.25
    looks: 2
    min_delta: 0.018
    ci_low_min: null
    non_inferiority: {ece: 0.01}
  - name: full_test
    split: test
    seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    statistic: paired_t
    alternative: greater
    alpha: 0.05
    looks: 3
    min_delta: 0.02
    ci_low_min: 0.0
    resample_seeds: true
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
    assert (spec.alpha_correction, spec.min_groups) == ("bonferroni", 8)
    assert spec.selection["tie_break"] == "lower_ece"
    quick, full = spec.stages
    assert quick.seeds == (0, 1, 2) and quick.statistic == "sign_flip"
    assert [c.name for c in quick.criteria] == ["min_delta", "p_value", "non_inferiority"]
    assert quick.criterion("non_inferiority").options.non_inferiority == {"ece": 0.01}
    assert quick.criterion("ci_low") is None  # ci_low_min: null asks for no interval
    assert (quick.looks, quick.alpha_per_look) == (2, 0.125)
    assert full.seeds == tuple(range(10)) and full.alpha == 0.05
    assert [c.name for c in full.criteria] == ["min_delta", "p_value", "ci_low"]
    assert full.looks == 3 and full.alpha_per_look == pytest.approx(0.05 / 3)
    ci_low = full.criterion("ci_low").options
    assert ci_low.ci_low_min == 0.0 and ci_low.resample_seeds is True


def test_the_shipped_plan_loads_with_the_hash_its_committed_results_record():
    spec = load_spec(REPO / "gates.yaml")
    assert spec.alpha_correction == "bonferroni" and spec.min_groups == 8
    assert all(stage.looks >= 1 for stage in spec.stages)
    full = next(stage for stage in spec.stages if stage.criterion("ci_low"))
    assert full.criterion("ci_low").options.resample_seeds
    assert spec.direction == metrics.METRICS[spec.primary_metric].direction
    recorded = json.loads((REPO / "metrics/gate.json").read_text())["spec"]["sha256"]
    assert spec.hash == recorded


def test_the_direction_comes_from_the_metric_registry():
    absent = drop_key(data(), ("direction",))
    spec = parse_spec(absent, "gates.yaml")
    assert spec.direction == "maximize" == metrics.METRICS["segment_accuracy"].direction
    assert spec.hash == parse_spec(data(), "gates.yaml").hash  # the line changes nothing
    with pytest.raises(ConfigError) as err:
        parse_spec(set_key(data(), ("direction",), "minimize"), "gates.yaml")
    assert str(err.value) == (
        "gates.yaml: direction: minimize contradicts segment_accuracy's direction (maximize) "
        f"declared in {metrics.METRICS['segment_accuracy'].declared_in}; remove the line"
    )
    assert "src/avgate/metrics.py" in str(err.value)


def test_an_unknown_primary_metric_is_refused_naming_the_known_ones():
    with pytest.raises(ConfigError) as err:
        parse_spec(set_key(data(), ("primary_metric",), "segment_acc"), "gates.yaml")
    assert str(err.value).startswith("gates.yaml: primary_metric must be a metric of")
    for name in metrics.METRICS:
        assert repr(name) in str(err.value)


def test_the_plan_and_params_must_name_the_same_primary_metric():
    spec = parse_spec(data(), "gates.yaml")
    check_params(spec, "event", "segment_accuracy", "gates.yaml")
    with pytest.raises(ConfigError) as err:
        check_params(spec, "event", "macro_f1", "gates.yaml")
    message = str(err.value)
    assert "gates.yaml: primary_metric 'segment_accuracy'" in message
    assert "params.yaml: evaluate.primary_metric 'macro_f1'" in message


def test_hash_stable_under_comments_and_formatting(tmp_path):
    plain = tmp_path / "a.yaml"
    plain.write_text(GATES_YAML)
    reformatted = tmp_path / "b.yaml"
    reformatted.write_text(
        "# the plan\n" + yaml.safe_dump(data(), default_flow_style=False, sort_keys=True)
    )
    assert load_spec(plain).hash == load_spec(reformatted).hash
    assert len(load_spec(plain).hash) == 64


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("stages", 1, "min_delta"), 0.021),
        (("stages", 1, "looks"), 4),
        (("stages", 1, "resample_seeds"), False),
        (("min_groups",), 9),
        (("min_power",), 0.8),
    ],
)
def test_hash_changes_with_a_threshold(path, value):
    changed = set_key(data(), path, value)
    assert parse_spec(changed, "x").hash != parse_spec(data(), "x").hash


def test_hash_is_of_parsed_values():
    explicit = set_key(data(), ("stages", 0, "resample_seeds"), False)
    assert parse_spec(explicit, "x").hash == parse_spec(data(), "x").hash


def test_min_power_is_optional_and_absent_keeps_the_hash():
    """No min_power (or null) parses to None and hashes as before the key existed."""
    plain = parse_spec(data(), "x")
    assert plain.min_power is None
    assert parse_spec(set_key(data(), ("min_power",), None), "x").hash == plain.hash
    declared = parse_spec(set_key(data(), ("min_power",), 0.8), "x")
    assert declared.min_power == 0.8 and isinstance(declared.min_power, float)
    assert parse_spec(set_key(data(), ("min_power",), 0.8), "y").hash == declared.hash


def test_the_hash_is_of_the_layout_plans_were_hashed_in_before_the_registries():
    """Plans written before min_power, the criterion registry or an optional direction existed
    keep the hash their ledger entries record: every stage key with its value, absent ones at
    their defaults, and no min_power when there is none."""
    spec = parse_spec(drop_key(data(), ("direction",)), "x")
    before = {
        "primary_metric": "segment_accuracy", "direction": "maximize", "baseline": "v1-baseline",
        "alpha_correction": "bonferroni", "min_groups": 8,
        "selection": {"split": "val", "seeds": [0, 1, 2], "rule": "max_mean_delta",
                      "tie_break": "lower_ece"},
        "stages": [
            {"name": "quick_test", "split": "test", "seeds": [0, 1, 2], "statistic": "sign_flip",
             "alternative": "greater", "alpha": 0.25, "min_delta": 0.018, "ci_low_min": None,
             "non_inferiority": {"ece": 0.01}, "looks": 2, "resample_seeds": False},
            {"name": "full_test", "split": "test", "seeds": list(range(10)),
             "statistic": "paired_t", "alternative": "greater", "alpha": 0.05, "min_delta": 0.02,
             "ci_low_min": 0.0, "non_inferiority": {}, "looks": 3, "resample_seeds": True},
        ],
    }  # fmt: skip
    canonical = json.dumps(before, sort_keys=True, separators=(",", ":"))
    assert spec.hash == hashlib.sha256(canonical.encode()).hexdigest()


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
        (set_key(data(), ("extra",), 1), "unknown key(s) ['extra'] in top level"),
        (set_key(data(), ("stages", 0, "alhpa"), 0.1), "unknown key(s) ['alhpa'] in stages[quick"),
        (set_key(data(), ("selection", "spilt"), "val"), "unknown key(s) ['spilt'] in selection"),
        (drop_key(data(), ("baseline",)), "baseline is missing; add it"),
        (drop_key(data(), ("stages", 1, "alpha")), "stages[full_test].alpha is missing; add it"),
        (drop_key(data(), ("selection", "seeds")), "selection.seeds is missing; add it"),
        (set_key(data(), ("direction",), "maximise"), "direction must be one of"),
        (set_key(data(), ("stages", 1, "statistic"), "t_test"), "statistic must be one of"),
        (set_key(data(), ("stages", 1, "alternative"), "more"), "alternative must be one of"),
        (set_key(data(), ("stages", 1, "alpha"), 0.0), "alpha must lie in (0, 1)"),
        (set_key(data(), ("stages", 1, "alpha"), 1.0), "alpha must lie in (0, 1)"),
        (set_key(data(), ("stages", 1, "alpha"), "0.05"), "alpha must be a number, got '0.05'"),
        (set_key(data(), ("stages", 1, "seeds"), []), "stages[full_test].seeds must not be empty"),
        (set_key(data(), ("stages", 1, "seeds"), [0, 1, 1]), "seeds must not repeat a value"),
        (set_key(data(), ("stages", 1, "seeds"), [0, -1]), "stages[full_test].seeds[1] must be >="),
        (set_key(data(), ("selection", "seeds"), [2, 2]), "selection.seeds must not repeat"),
        (set_key(data(), ("stages", 1, "name"), "quick_test"), "stages must have unique names"),
        (set_key(data(), ("max_attempts",), 2), "unknown key(s) ['max_attempts'] in top level"),
        (drop_key(data(), ("alpha_correction",)), "alpha_correction is missing"),
        (set_key(data(), ("alpha_correction",), "holm"), "alpha_correction must be one of"),
        (drop_key(data(), ("min_groups",)), "min_groups is missing"),
        (set_key(data(), ("min_groups",), 1), "min_groups must be >= 2"),
        (set_key(data(), ("min_groups",), "8"), "min_groups must be an integer, got '8'"),
        (set_key(data(), ("min_power",), 1.0), "min_power must lie in (0, 1)"),
        (set_key(data(), ("min_power",), 0), "min_power must lie in (0, 1)"),
        (set_key(data(), ("min_power",), 80), "min_power must lie in (0, 1)"),
        (set_key(data(), ("min_power",), "0.8"), "min_power must be a number"),
        (set_key(data(), ("min_power",), True), "min_power must be a number"),
        (set_key(data(), ("min_powr",), 0.8), "unknown key(s) ['min_powr'] in top level"),
        (drop_key(data(), ("stages", 1, "looks")), "stages[full_test].looks is missing"),
        (set_key(data(), ("stages", 1, "looks"), 0), "stages[full_test].looks must be >= 1"),
        (set_key(data(), ("stages", 1, "looks"), 1.5), "looks must be an integer, got 1.5"),
        (set_key(data(), ("stages", 1, "resample_seeds"), "yes"), "must be true or false"),
        (
            set_key(data(), ("stages", 0, "resample_seeds"), True),
            "stages[quick_test].resample_seeds needs ci_low_min: only the bootstrap interval",
        ),
        (
            set_key(set_key(data(), ("stages", 1, "alpha"), 0.6), ("stages", 1, "looks"), 1),
            "stages[full_test].alpha must leave the interval some confidence",
        ),
        (set_key(data(), ("stages",), []), "stages must not be empty"),
        (set_key(data(), ("stages",), [5]), "stages[0] must be a mapping"),
        (set_key(data(), ("stages", 0, "split"), "train"), "split must be one of"),
        (
            set_key(data(), ("stages", 0, "non_inferiority"), {"ece": -1}),
            "stages[quick_test].non_inferiority.ece must be >= 0",
        ),
        (
            set_key(data(), ("stages", 0, "non_inferiority"), {"ece": "x"}),
            "stages[quick_test].non_inferiority.ece must be a number",
        ),
        (
            set_key(data(), ("stages", 0, "non_inferiority"), {"calibration": 0.1}),
            "stages[quick_test].non_inferiority must name diagnostics among ['ece',",
        ),
        (set_key(data(), ("selection", "rule"), "best_p"), "selection.rule must be one of"),
        (set_key(data(), ("selection", "tie_break"), "coin"), "tie_break must be one of"),
        (set_key(data(), ("stages", 1, "seeds"), [0]), "paired t-test needs at least 2 seeds"),
        (set_key(data(), ("stages", 0, "seeds"), list(range(21))), "at most 20 seeds"),
        (set_key(data(), ("primary_metric",), "acuracy"), "primary_metric must be a metric of"),
    ],
)
def test_validation_errors_name_the_key(bad, message):
    with pytest.raises(ConfigError, match="^gates.yaml: ") as err:
        parse_spec(bad, "gates.yaml")
    assert message in str(err.value)


def test_errors_name_the_file(tmp_path):
    path = tmp_path / "gates.yaml"
    path.write_text(GATES_YAML.replace("min_groups: 8", "min_groups: eight"))
    with pytest.raises(ConfigError, match=f"^{path}: min_groups must be an integer, got 'eight'"):
        load_spec(path)
    path.write_text("stages: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_spec(path)
    path.write_text("")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_spec(path)


@pytest.mark.parametrize("statistic", ["sign_flip", "wilcoxon"])
def test_unreachable_alpha_is_refused(statistic):
    bad = set_key(data(), ("stages", 0, "statistic"), statistic)
    bad["stages"][0]["alpha"] = 0.05
    bad["stages"][0]["looks"] = 1
    with pytest.raises(ConfigError) as err:
        parse_spec(bad, "gates.yaml")
    text = str(err.value)
    assert text.startswith("gates.yaml: stages[quick_test].alpha is out of reach")
    assert f"an exact one-sided test ({statistic}) with 3 seeds cannot go below p = 0.125" in text
    assert "alpha 0.05 over 1 look(s) (Bonferroni: 0.05 per look) can never pass" in text
    assert "add seeds (at least 5 for 0.05 per look)" in text
    assert text.endswith("use statistic: paired_t, got 0.05")


def test_looks_split_alpha_and_can_make_a_stage_unreachable():
    """alpha 0.25 over 2 looks is 0.125 per look, the 3-seed floor; over 3 looks it is not."""
    assert parse_spec(data(), "gates.yaml").stages[0].alpha_per_look == 0.125
    bad = set_key(data(), ("stages", 0, "looks"), 3)
    with pytest.raises(ConfigError, match=r"over 3 look\(s\) \(Bonferroni: 0.0833333 per look\)"):
        parse_spec(bad, "gates.yaml")
    more = set_key(bad, ("stages", 0, "seeds"), [0, 1, 2, 3])
    assert parse_spec(more, "gates.yaml").stages[0].looks == 3


def test_min_groups_refuses_an_interval_over_too_few_groups():
    spec = parse_spec(data(), "gates.yaml")
    quick, full = spec.stages
    check_groups(spec, full, 8, "gates.yaml")
    check_groups(spec, quick, 2, "gates.yaml")  # no interval at quick_test: nothing to refuse
    with pytest.raises(ConfigError, match="^gates.yaml: min_groups: stage full_test's interval"):
        check_groups(spec, full, 7, "gates.yaml")


def test_two_sided_floor_and_reachable_bounds():
    two_sided = set_key(data(), ("stages", 0, "alternative"), "two-sided")
    with pytest.raises(ConfigError, match="two-sided test .* cannot go below p = 0.25"):
        parse_spec(two_sided, "gates.yaml")
    exact = set_key(data(), ("stages", 0, "alpha"), 0.125)
    exact["stages"][0]["looks"] = 1
    assert parse_spec(exact, "gates.yaml").stages[0].alpha == 0.125
    five = set_key(data(), ("stages", 0, "seeds"), [0, 1, 2, 3, 4])
    five["stages"][0]["alpha"] = 0.05
    five["stages"][0]["looks"] = 1
    assert parse_spec(five, "gates.yaml").stages[0].seeds == (0, 1, 2, 3, 4)
