"""The `checks:` section of gates.yaml: read with the rest of the plan, refused at load with the
key named when a check is unknown or a threshold is of the wrong kind, and hashed only when
present, so plans without it keep their hash."""

from __future__ import annotations

import pytest
import yaml

from avgate.declare import ConfigError
from avgate.gating.spec import load_spec, parse_spec
from avgate.go import CHECKS
from tests.test_gate_spec import GATES_YAML, data


def with_checks(checks) -> dict:
    return {**data(), "checks": checks}


def refusal(checks) -> str:
    with pytest.raises(ConfigError) as err:
        parse_spec(with_checks(checks), "gates.yaml")
    return str(err.value)


def test_a_plan_declares_checks_by_name_with_thresholds_and_phases(tmp_path):
    path = tmp_path / "gates.yaml"
    path.write_text(
        GATES_YAML
        + "checks:\n"
        + "  files_load: {min_ok_fraction: 0.99}\n"
        + "  no_leakage:\n"  # null: the defaults
        + "  seed_std: {max_std: 0.02, phase: learning}\n"
    )
    spec = load_spec(path)
    assert [(c.name, c.phase) for c in spec.checks] == [
        ("files_load", "data"),
        ("no_leakage", "data"),
        ("seed_std", "learning"),
    ]
    assert spec.checks[0].options.min_ok_fraction == 0.99
    assert spec.checks[2].options.max_std == 0.02


@pytest.mark.parametrize(
    ("checks", "message"),
    [
        (
            {"seed_sdt": {"max_std": 0.1}},
            "gates.yaml: unknown key(s) ['seed_sdt'] in checks; known: ",
        ),
        (
            {"seed_std": {"max_std": "small"}},
            "gates.yaml: checks.seed_std.max_std must be a number, got 'small'",
        ),
        (
            {"seed_std": {"max_std": True}},
            "gates.yaml: checks.seed_std.max_std must be a number, got True",
        ),
        (
            {"no_duplicates": {"max_pairs": 0.5}},
            "gates.yaml: checks.no_duplicates.max_pairs must be an integer",
        ),
        (
            {"files_load": {"min_ok_fraction": 1.5}},
            "gates.yaml: checks.files_load.min_ok_fraction must lie in [0, 1]",
        ),
        (
            {"audio_reliance": {"min_drop": 0.1, "ablation": "silenced"}},
            "gates.yaml: checks.audio_reliance.ablation must be one of ['muted', ",
        ),
        (
            {"seed_std": {"max_sd": 0.1}},
            "gates.yaml: unknown key(s) ['max_sd'] in checks.seed_std; known: ['max_std', 'phase']",
        ),
        ({"seed_std": None}, "gates.yaml: checks.seed_std.max_std is missing; add it"),
        (
            {"seed_std": {"max_std": 0.1, "phase": "testing"}},
            "gates.yaml: checks.seed_std.phase must be one of ['data', 'safety', ",
        ),
        (
            {"seed_std": 0.03},
            "gates.yaml: checks.seed_std must be a mapping of the check's thresholds",
        ),
        (["files_load"], "gates.yaml: checks must be a mapping, got ['files_load']"),
    ],
)
def test_unknown_checks_and_wrong_thresholds_are_refused_naming_the_key(checks, message):
    assert refusal(checks).startswith(message)


def test_unknown_names_are_refused_listing_the_registered_ones():
    said = refusal({"no_such_check": {}})
    for name in CHECKS:
        assert repr(name) in said


def test_without_checks_a_plan_keeps_its_hash():
    plain = parse_spec(data(), "x")
    assert plain.checks == ()
    for empty in (None, {}):
        assert parse_spec(with_checks(empty), "x").hash == plain.hash
    assert parse_spec(with_checks({"no_leakage": None}), "x").hash != plain.hash


@pytest.mark.parametrize(
    "changed",
    [
        {"files_load": {"min_ok_fraction": 0.9}},
        {"files_load": {"phase": "safety"}},
        {"files_load": None, "no_leakage": None},
    ],
)
def test_the_hash_changes_with_a_threshold_a_phase_or_a_check(changed):
    declared = parse_spec(with_checks({"files_load": None}), "x")
    assert parse_spec(with_checks(changed), "x").hash != declared.hash


def test_the_hash_is_of_parsed_values_in_any_order():
    implicit = parse_spec(with_checks({"files_load": None, "no_leakage": None}), "x")
    explicit = with_checks(
        {"no_leakage": {}, "files_load": {"min_ok_fraction": 0.95, "phase": "data"}}
    )
    assert parse_spec(explicit, "x").hash == implicit.hash
    reformatted = yaml.safe_load(yaml.safe_dump(explicit, sort_keys=True))
    assert parse_spec(reformatted, "x").hash == implicit.hash
