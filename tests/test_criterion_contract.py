"""The contract every registered gate criterion keeps: its example parses in a gates.yaml stage,
a bad value of each of its keys is refused with a message naming gates.yaml and the key, its
keys are hashed only where the plan writes them (or, for the criteria older than the registry,
at their defaults), and judging a look gives JSON-ready records under its own name."""

from __future__ import annotations

import dataclasses
import json
import types
import typing

import numpy as np
import pytest

from avgate.declare import REQUIRED, ConfigError
from avgate.gating.criteria import CRITERIA
from avgate.gating.spec import canonical, parse_spec, parse_stage
from avgate.gating.verdict import judge, to_dict
from avgate.gating.worsening import DIAGNOSTICS, Worsening

NAMES = list(CRITERIA)
BASE = {
    "name": "s", "split": "test", "seeds": list(range(10)), "statistic": "paired_t",
    "alternative": "greater", "alpha": 0.05, "looks": 1, "min_delta": 0.0,
}  # fmt: skip
PLAN = {
    "primary_metric": "segment_accuracy", "baseline": "v1", "alpha_correction": "bonferroni",
    "min_groups": 2, "selection": {"split": "val", "seeds": [0, 1, 2], "rule": "max_mean_delta"},
}  # fmt: skip
WRONG = {bool: "yes", int: "many", float: "high", str: 5, dict: 5, list: 5}


def stage_with(name: str) -> dict:
    return {**BASE, **CRITERIA[name].example}


def wrong_value(kind) -> object:
    """A value of the wrong type for a key declared as `kind`."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return WRONG[typing.get_origin(kind) or kind]


@pytest.mark.parametrize("name", NAMES)
def test_parses_its_own_example(name):
    cls = CRITERIA[name]
    assert set(cls.example) <= set(cls.stage_keys())
    stage = parse_stage(stage_with(name))
    used = stage.criterion(name)
    assert used is not None and used.applies()
    assert [c.name for c in stage.criteria] == [n for n in NAMES if stage.criterion(n)]
    for key, value in cls.example.items():
        assert getattr(used.options, key) == value


@pytest.mark.parametrize(("name", "key"), [(n, k) for n in NAMES for k in CRITERIA[n].stage_keys()])
def test_a_bad_value_is_refused_naming_gates_yaml_and_the_key(name, key):
    hints = typing.get_type_hints(CRITERIA[name].options_type)
    bad = {**stage_with(name), key: wrong_value(hints[key])}
    with pytest.raises(ConfigError) as err:
        parse_stage(bad, "gates.yaml")
    assert str(err.value).startswith(f"gates.yaml: stages[s].{key} ")


@pytest.mark.parametrize("name", NAMES)
def test_a_required_key_left_out_is_refused(name):
    fields = dataclasses.fields(CRITERIA[name].options_type)
    for f in (f for f in fields if f.default is REQUIRED):
        stage = {k: v for k, v in stage_with(name).items() if k != f.name}
        with pytest.raises(ConfigError, match=rf"^gates.yaml: stages\[s\].{f.name} is missing"):
            parse_stage(stage, "gates.yaml")


@pytest.mark.parametrize("name", NAMES)
def test_its_keys_enter_the_hash_only_as_declared(name):
    cls = CRITERIA[name]
    written = parse_spec({**PLAN, "stages": [stage_with(name)]}, "gates.yaml")
    assert set(cls.stage_keys()) <= set(canonical(written)["stages"][0])
    left_out = {k: v for k, v in BASE.items() if k not in cls.stage_keys()}
    fields = dataclasses.fields(cls.options_type)
    if not fields or any(f.default is REQUIRED for f in fields):
        return  # no key of its own, or one every stage writes
    plain = canonical(parse_spec({**PLAN, "stages": [left_out]}, "gates.yaml"))["stages"][0]
    assert (set(cls.stage_keys()) <= set(plain)) is cls.hashed_when_absent
    if cls.example:
        assert written.hash != parse_spec({**PLAN, "stages": [left_out]}, "gates.yaml").hash


@pytest.mark.parametrize("name", NAMES)
def test_judges_a_look_into_json_ready_records_under_its_name(name):
    stage = parse_stage(stage_with(name))
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(8), 6)
    base = rng.uniform(0.4, 0.6, size=(10, 48))
    cand = base + 0.05 + rng.normal(0, 0.02, size=base.shape)
    diagnostics = {d: Worsening(0.05, 0.05, 0.0, d) for d in DIAGNOSTICS}
    verdict = judge(
        stage, "maximize", base.mean(axis=1), cand.mean(axis=1), (base, cand), None,
        diagnostics, n_resamples=200, groups=groups, min_groups=2,
    )  # fmt: skip
    mine = [c for c in verdict.criteria if c.name.split(":", 1)[0] == name]
    assert mine and all(isinstance(c.passed, bool) for c in mine)
    plain = to_dict(verdict)
    assert json.loads(json.dumps(plain)) == plain
