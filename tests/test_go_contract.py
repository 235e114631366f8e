"""The contract every registered go/no-go check keeps: its example parses under `checks:` with
its default phase (a plan may move it), a bad value of each of its keys is refused naming
gates.yaml and `checks.<name>.<key>`, it enters the plan's hash only when declared, it passes on
healthy evidence and fails on evidence broken in its own way, says why where it does not apply,
reads no file but its declared evidence, and the `go` stage depends on every such file."""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from avgate.declare import REQUIRED, ConfigError
from avgate.gating.go_verdict import FAIL, NOT_APPLICABLE, PASS, record
from avgate.gating.spec import canonical, parse_checks, parse_spec
from avgate.go import CHECKS, PHASES, Context
from tests import go_evidence as ev
from tests.scratch import REPO
from tests.test_criterion_contract import PLAN, wrong_value

NAMES = list(CHECKS)
STAGES = [{"name": "s", "split": "test", "seeds": [0, 1], "statistic": "paired_t",
           "alternative": "greater", "alpha": 0.05, "looks": 1, "min_delta": 0.0}]  # fmt: skip


def _set(path: str, keys: tuple, value) -> typing.Callable[[Path], None]:
    def change(root: Path) -> None:
        def assign(data: dict) -> None:
            for key in keys[:-1]:
                data = data[key]
            data[keys[-1]] = value

        ev.edit(root, path, assign)

    return change


# name: (write_run arguments where it applies, how to break it, write_run arguments where it
# does not apply, or None when it always applies)
FIXTURES = {
    "av_alignment": ({}, _set(ev.ALIGNMENT, ("agreement",), 0.8), {"modalities": ("audio",)}),
    "av_mismatch": ({}, _set(ev.ALIGNMENT, ("mismatched_share",), 0.1), {"modalities": ("audio",)}),
    "files_load": ({}, _set(ev.INGEST, ("n_ok",), 90), None),
    "class_imbalance": ({}, _set(ev.LEAKAGE, ("label_counts", "train", "a"), 200), None),
    "no_leakage": ({}, _set(ev.LEAKAGE, ("group_overlap", "train|test"), 2), None),
    "no_duplicates": ({}, _set(ev.AUDIT, ("near_duplicates", "val|test", "pairs"), 3), None),
    "audio_reliance": (
        {},
        _set(ev.seed_scores(1), ("modality_ablation_val", "audio_from_other_clip", "drop"), -0.2),
        {"modalities": ("audio",)},
    ),
    "backbone_frozen": (
        {"finetune": "lora"},
        _set(ev.head(1), ("trainable_parameters",), 1300),
        {"finetune": "none"},
    ),
    "forward_equivalence": (
        {"finetune": "lora"},
        _set(ev.head(0), ("forward_equivalence_mean_abs_logit_diff",), 3e-5),
        {"finetune": "none"},
    ),
    "seed_std": ({}, _set(ev.SCORES, ("val", "segment_accuracy", "std"), 0.05), {"seeds": (0,)}),
    "calibration": ({}, _set(ev.SCORES, ("calibration_val", "ece", "before", "mean"), 0.2), None),
    "tiny_overfit": ({}, _set(ev.probe("overfit"), ("train_loss",), 0.4), {"finetune": "lora"}),
    "resume_equal": (
        {},
        _set(ev.probe("resume"), ("max_abs_weight_diff",), 1e-3),
        {"finetune": "lora"},
    ),
    "memory_headroom": ({}, _set(ev.probe("efficiency"), ("headroom",), 0.1), {"finetune": "lora"}),
    "frozen_checksums": ({}, _set(ev.probe("frozen"), ("mismatches",), 1), None),
    "audio_dependence": (
        {},
        _set(ev.ITEMS, ("mean", "dependent_drop", "other_seeds"), 0.5),
        {"modalities": ("audio",)},
    ),
    "irrelevance_stress": (
        {},
        _set(ev.STRESS, ("mean", "use", "noise"), 0.3),
        {"finetune": "lora"},
    ),
    "gate_parity": (
        {},
        _set(ev.STRESS, ("gate_parity", "max_mean_abs_logit_diff"), 1e-3),
        {"fusion": "concat"},
    ),
    "gating_policy": (
        {},
        _set(ev.POLICIES, ("curve", 1, "drop"), 0.05),
        {"modalities": ("audio",)},
    ),
}


@dataclass(frozen=True)
class Recording(Context):
    """A context that notes every file a check reads."""

    reads: list[str] = field(default_factory=list)

    def read(self, path: Path) -> typing.Any:
        self.reads.append(str(path))
        return super().read(path)


def declared(name: str, **changes) -> typing.Any:
    (check,) = parse_checks({name: {**CHECKS[name].example, **changes}}, "gates.yaml")
    return check


def judged(name: str, root: Path, seeds: tuple[int, ...]) -> tuple[dict, list[str]]:
    context = Recording(seeds, root)
    plain = record(declared(name), context)
    assert json.loads(json.dumps(plain)) == plain
    return plain, context.reads


def test_every_registered_check_has_a_fixture():
    assert set(FIXTURES) == set(CHECKS)


@pytest.mark.parametrize("name", NAMES)
def test_parses_its_own_example_in_its_default_phase(name):
    cls = CHECKS[name]
    check = declared(name)
    assert check.name == name and check.phase == cls.phase in PHASES
    for key, value in cls.example.items():
        assert getattr(check.options, key) == value
    moved = next(p for p in PHASES if p != cls.phase)
    assert declared(name, phase=moved).phase == moved


@pytest.mark.parametrize(
    ("name", "key"),
    [(n, f.name) for n in NAMES for f in dataclasses.fields(CHECKS[n].options_type)],
)
def test_a_bad_value_is_refused_naming_gates_yaml_and_the_key(name, key):
    hints = typing.get_type_hints(CHECKS[name].options_type)
    with pytest.raises(ConfigError) as err:
        declared(name, **{key: wrong_value(hints[key])})
    assert str(err.value).startswith(f"gates.yaml: checks.{name}.{key} ")


@pytest.mark.parametrize("name", NAMES)
def test_a_required_key_left_out_is_refused(name):
    for f in dataclasses.fields(CHECKS[name].options_type):
        if f.default is REQUIRED:
            options = {k: v for k, v in CHECKS[name].example.items() if k != f.name}
            with pytest.raises(ConfigError, match=rf"^gates.yaml: checks.{name}.{f.name} is miss"):
                parse_checks({name: options}, "gates.yaml")


@pytest.mark.parametrize("name", NAMES)
def test_it_enters_the_hash_only_when_declared(name):
    plain = parse_spec({**PLAN, "stages": STAGES}, "gates.yaml")
    plan = {**PLAN, "stages": STAGES, "checks": {name: CHECKS[name].example}}
    written = parse_spec(plan, "gates.yaml")
    assert "checks" not in canonical(plain)
    assert canonical(written)["checks"][name]["phase"] == CHECKS[name].phase
    assert written.hash != plain.hash


@pytest.mark.parametrize("name", NAMES)
def test_passes_on_healthy_evidence_and_fails_on_its_own_fault(name, tmp_path):
    applies, fault, _ = FIXTURES[name]
    seeds = applies.get("seeds", (0, 1))
    ev.write_run(tmp_path, **applies)
    passed, reads = judged(name, tmp_path, seeds)
    assert passed["status"] == PASS, passed
    assert passed["name"] == name and passed["phase"] == CHECKS[name].phase
    assert passed["value"] is not None and passed["threshold"] is not None and passed["rule"]
    fault(tmp_path)
    failed, more = judged(name, tmp_path, seeds)
    assert failed["status"] == FAIL, failed
    evidence = {str(p) for p in declared(name).evidence(Context(seeds, tmp_path))}
    assert set(reads + more) <= evidence, "a check reads only its declared evidence"
    assert set(failed["evidence"]) <= evidence


@pytest.mark.parametrize("name", [n for n in NAMES if FIXTURES[n][2] is not None])
def test_says_why_where_it_does_not_apply(name, tmp_path):
    elsewhere = FIXTURES[name][2]
    seeds = elsewhere.get("seeds", (0, 1))
    ev.write_run(tmp_path, **elsewhere)
    plain, _ = judged(name, tmp_path, seeds)
    assert plain["status"] == NOT_APPLICABLE and plain["value"] is None
    assert plain["detail"] and plain["evidence"]


@pytest.mark.parametrize("name", NAMES)
def test_missing_evidence_fails_it_naming_the_file(name, tmp_path):
    plain, _ = judged(name, tmp_path, (0, 1))
    assert plain["status"] == FAIL
    assert plain["detail"].endswith("missing; run `dvc repro` to produce it")
    assert plain["detail"].split(":")[0] in plain["evidence"]


@pytest.mark.parametrize("name", NAMES)
def test_the_go_stage_depends_on_its_evidence(name, tmp_path):
    deps = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["go"]["deps"]
    for path in declared(name).evidence(Context((0, 3), tmp_path)):
        assert any(path.as_posix() == d or path.as_posix().startswith(f"{d}/") for d in deps)
