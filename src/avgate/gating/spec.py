"""The pre-registered gate plan, `gates.yaml`: what a candidate must show, decided before it runs.

The spec names the primary metric and its direction, the pinned baseline, the correction for
repeated looks (`alpha_correction`), the fewest test groups an interval may rest on
(`min_groups`), optionally the least power each test stage must have at its `min_delta` before
the first look (`min_power`, checked by `avgate plan check`; absent, the check only reports),
how the candidate is selected on validation, and the stages of the test (seeds, paired
statistic, sidedness, alpha, the number of looks allowed, minimum effect, optional bootstrap
bound and whether it resamples seeds, non-inferiority margins on diagnostics).

`looks` is the total number of test looks a stage allows under this spec and this test split,
whatever the candidate line; the stage's `alpha` is the family alpha, split over its looks by
Bonferroni (`GateStage.alpha_per_look`). It is validated once, with errors naming the file, the
key and the fix, and a stage that can never pass (an exact test whose smallest p-value with its
seeds is above alpha per look) is refused rather than left to fail every time. `GateSpec.hash` is
the sha256 of the canonical JSON of the parsed spec, so comments and formatting do not change it.

>>> data = {
...     "primary_metric": "segment_accuracy", "direction": "maximize", "baseline": "v1-baseline",
...     "alpha_correction": "bonferroni", "min_groups": 8,
...     "selection": {"split": "val", "seeds": [0, 1, 2], "rule": "max_mean_delta"},
...     "stages": [{"name": "full_test", "split": "test", "seeds": list(range(10)),
...                 "statistic": "paired_t", "alternative": "greater", "alpha": 0.05,
...                 "looks": 2, "min_delta": 0.02}],
... }
>>> spec = parse_spec(data, "gates.yaml")
>>> spec.stages[0].name, spec.stages[0].non_inferiority, spec.stages[0].alpha_per_look
('full_test', {}, 0.025)
>>> spec.min_groups, spec.min_power, len(spec.hash)
(8, None, 64)
>>> parse_spec({**data, "min_power": 0.8}, "gates.yaml").min_power
0.8
>>> data["stages"][0]["statistic"] = "sign_flip"
>>> data["stages"][0]["seeds"] = [0, 1, 2]
>>> parse_spec(data, "gates.yaml")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
avgate.gating.spec.SpecError: gates.yaml: stages[full_test].alpha: an exact one-sided test ...
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from avgate import stats
from avgate.gating.diagnostics import DIAGNOSTICS

STATISTICS = {"paired_t": stats.PAIRED_T, "wilcoxon": stats.WILCOXON, "sign_flip": stats.SIGN_FLIP}
DIRECTIONS = ("maximize", "minimize")
SPLITS = ("val", "test")
TOP_REQUIRED = (
    "primary_metric",
    "direction",
    "baseline",
    "alpha_correction",
    "min_groups",
    "selection",
    "stages",
)
TOP_OPTIONAL = ("min_power",)  # least simulated power per test stage (`gating.power.check`)
ALPHA_CORRECTIONS = ("bonferroni",)  # each look is tested at alpha / looks
SELECTION_REQUIRED = ("split", "seeds", "rule")
SELECTION_OPTIONAL = ("tie_break",)
RULES = ("max_mean_delta",)  # the candidate whose mean per-seed delta on selection.split is largest
TIE_BREAKS = ("lower_ece", "fewer_parameters")  # ECE on selection.split; trainable parameters
STAGE_REQUIRED = (
    "name",
    "split",
    "seeds",
    "statistic",
    "alternative",
    "alpha",
    "looks",
    "min_delta",
)
STAGE_OPTIONAL = ("ci_low_min", "resample_seeds", "non_inferiority")


class SpecError(ValueError):
    """`gates.yaml` is malformed or asks for something that cannot work; says where and the fix."""


@dataclass(frozen=True)
class GateStage:
    """One stage of the test: seeds, paired statistic, alpha and the thresholds to meet.

    `alpha` is the stage's family alpha over its `looks`; `resample_seeds` makes the bootstrap
    interval (asked for by `ci_low_min`) resample seeds as well as groups.

    >>> stage = GateStage("quick_test", "test", (0, 1, 2), "sign_flip", "greater", 0.25, 0.018,
    ...                   looks=2)
    >>> stage.seeds, stage.alpha_per_look
    ((0, 1, 2), 0.125)
    """

    name: str
    split: str
    seeds: tuple[int, ...]
    statistic: str
    alternative: str
    alpha: float
    min_delta: float
    ci_low_min: float | None = None
    non_inferiority: dict[str, float] = field(default_factory=dict)
    looks: int = 1
    resample_seeds: bool = False

    @property
    def alpha_per_look(self) -> float:
        """The alpha each look is tested at: Bonferroni, `alpha / looks`."""
        return self.alpha / self.looks


@dataclass(frozen=True)
class GateSpec:
    """The parsed plan; `hash` identifies it in the ledger and in every verdict.

    `min_power` (None when the plan declares none) is the least power each test stage must
    have at its `min_delta`, checked before the first look by `avgate plan check`.

    >>> spec = GateSpec("acc", "maximize", "v1", "bonferroni", 8, {"split": "val"}, (), "0" * 64)
    >>> spec.direction, spec.min_groups, spec.min_power
    ('maximize', 8, None)
    """

    primary_metric: str
    direction: str
    baseline: str
    alpha_correction: str
    min_groups: int
    selection: dict
    stages: tuple[GateStage, ...]
    hash: str
    min_power: float | None = None


def load_spec(path: str | Path) -> GateSpec:
    """Read and validate `gates.yaml` at `path`.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "gates.yaml"
    >>> _ = p.write_text("primary_metric: acc\\n")
    >>> load_spec(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    avgate.gating.spec.SpecError: ...gates.yaml: direction: missing; add it
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML ({err}); fix the syntax") from err
    return parse_spec(data, str(path))


def parse_spec(data: dict, source: str) -> GateSpec:
    """Validate the parsed YAML `data` (from `source`, named in errors) into a `GateSpec`.

    >>> parse_spec({"primary_metric": "acc"}, "gates.yaml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    avgate.gating.spec.SpecError: gates.yaml: direction: missing; add it
    """
    _check_mapping(data, "(top level)", source)
    _check_keys(data, TOP_REQUIRED, TOP_OPTIONAL, "", source)
    direction = _choice(data["direction"], DIRECTIONS, "direction", source)
    correction = _choice(data["alpha_correction"], ALPHA_CORRECTIONS, "alpha_correction", source)
    min_groups = _integer(data["min_groups"], 2, "min_groups", source)
    stages = _parse_stages(data["stages"], source)
    spec = GateSpec(
        primary_metric=_text(data["primary_metric"], "primary_metric", source),
        direction=direction,
        baseline=_text(data["baseline"], "baseline", source),
        alpha_correction=correction,
        min_groups=min_groups,
        selection=_parse_selection(data["selection"], source),
        stages=stages,
        hash="",
        min_power=_min_power(data.get("min_power"), source),
    )
    return replace(spec, hash=spec_hash(spec))


def spec_hash(spec: GateSpec) -> str:
    """sha256 of the spec's canonical JSON (sorted keys, no spaces), its own `hash` left out.

    An absent `min_power` is left out too, so plans written before it existed keep their hash
    (and their ledger entries); a declared one is part of the hash.

    >>> a = GateSpec("acc", "maximize", "v1", "bonferroni", 8, {}, (), hash="")
    >>> spec_hash(a) == spec_hash(replace(a, hash="x"))
    True
    >>> spec_hash(a) == spec_hash(replace(a, min_power=0.8))
    False
    """
    plain = asdict(spec)
    plain.pop("hash")
    if plain["min_power"] is None:
        plain.pop("min_power")
    canonical = json.dumps(plain, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_groups(spec: GateSpec, stage: GateStage, n_groups: int, source: str) -> None:
    """Refuse, before a look, a stage whose interval would rest on fewer than `min_groups` groups.

    >>> stage = GateStage("full", "test", (0, 1), "paired_t", "greater", 0.05, 0.0, ci_low_min=0)
    >>> spec = GateSpec("acc", "maximize", "v1", "bonferroni", 8, {}, (stage,), "")
    >>> check_groups(spec, stage, 8, "gates.yaml")
    >>> check_groups(spec, stage, 3, "gates.yaml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    avgate.gating.spec.SpecError: gates.yaml: min_groups: stage full's interval needs at least 8 ...
    """
    if stage.ci_low_min is None or n_groups >= spec.min_groups:
        return
    _fail(
        source,
        "min_groups",
        f"stage {stage.name}'s interval needs at least {spec.min_groups} {stage.split} groups "
        f"and the split has {n_groups}; the interval would not generalise to new groups: "
        "split with more groups in test",
    )


def _min_power(value: Any, source: str) -> float | None:
    """The declared least power, a number in (0, 1), or None when absent (or null)."""
    if value is None:
        return None
    power = _number(value, "min_power", source)
    if not 0 < power < 1:
        _fail(source, "min_power", f"must be a power in (0, 1), e.g. 0.8; got {value!r}")
    return power


def _parse_selection(data: Any, source: str) -> dict:
    _check_mapping(data, "selection", source)
    _check_keys(data, SELECTION_REQUIRED, SELECTION_OPTIONAL, "selection.", source)
    selection = {
        "split": _choice(data["split"], SPLITS, "selection.split", source),
        "seeds": list(_seeds(data["seeds"], "selection.seeds", source)),
        "rule": _choice(data["rule"], RULES, "selection.rule", source),
    }
    if "tie_break" in data:
        selection["tie_break"] = _choice(
            data["tie_break"], TIE_BREAKS, "selection.tie_break", source
        )
    return selection


def _parse_stages(data: Any, source: str) -> tuple[GateStage, ...]:
    if not isinstance(data, list) or not data:
        _fail(source, "stages", "must be a non-empty list of stages")
    stages = tuple(_parse_stage(item, i, source) for i, item in enumerate(data))
    names = [stage.name for stage in stages]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        _fail(source, "stages", f"stage names must be unique; repeated: {duplicated}")
    return stages


def _parse_stage(data: Any, index: int, source: str) -> GateStage:
    _check_mapping(data, f"stages[{index}]", source)
    where = f"stages[{data.get('name', index)}]"
    _check_keys(data, STAGE_REQUIRED, STAGE_OPTIONAL, f"{where}.", source)
    ci_low_min = data.get("ci_low_min")
    if ci_low_min is not None:
        ci_low_min = _number(ci_low_min, f"{where}.ci_low_min", source)
    resample_seeds = data.get("resample_seeds", False)
    if not isinstance(resample_seeds, bool):
        _fail(source, f"{where}.resample_seeds", f"must be true or false, got {resample_seeds!r}")
    alternatives = stats.ALTERNATIVES
    stage = GateStage(
        name=_text(data["name"], f"{where}.name", source),
        split=_choice(data["split"], SPLITS, f"{where}.split", source),
        seeds=_seeds(data["seeds"], f"{where}.seeds", source),
        statistic=_choice(data["statistic"], tuple(STATISTICS), f"{where}.statistic", source),
        alternative=_choice(data["alternative"], alternatives, f"{where}.alternative", source),
        alpha=_number(data["alpha"], f"{where}.alpha", source),
        min_delta=_number(data["min_delta"], f"{where}.min_delta", source),
        ci_low_min=ci_low_min,
        non_inferiority=_margins(data.get("non_inferiority") or {}, where, source),
        looks=_integer(data["looks"], 1, f"{where}.looks", source),
        resample_seeds=resample_seeds,
    )
    if not 0 < stage.alpha < 1:
        _fail(source, f"{where}.alpha", f"must be in (0, 1), got {stage.alpha}")
    _check_reachable(stage, where, source)
    _check_interval(stage, where, source)
    return stage


def _check_interval(stage: GateStage, where: str, source: str) -> None:
    """Refuse an interval with no confidence left, or `resample_seeds` without an interval.

    (A stage with one seed never gets here: no test reaches its alpha with one seed.)
    """
    if stage.ci_low_min is not None and stage.alpha_per_look >= 0.5:
        _fail(
            source,
            f"{where}.alpha",
            f"ci_low_min bounds a two-sided interval at confidence 1 - 2 * alpha / looks, and "
            f"alpha {stage.alpha:g} over {stage.looks} look(s) leaves none: lower alpha",
        )
    if not stage.resample_seeds:
        return
    if stage.ci_low_min is None:
        _fail(
            source,
            f"{where}.resample_seeds",
            "only the bootstrap interval resamples seeds, and this stage asks for none: "
            "set ci_low_min or remove resample_seeds",
        )


def _check_reachable(stage: GateStage, where: str, source: str) -> None:
    """Refuse a stage whose statistic cannot reach its alpha (or run at all) with its seeds."""
    n = len(stage.seeds)
    if stage.statistic == "paired_t" and n < 2:
        _fail(source, f"{where}.seeds", "a paired t-test needs at least 2 seeds; add seeds")
    if stage.statistic == "sign_flip" and n > stats.MAX_SIGN_FLIP_N:
        _fail(
            source,
            f"{where}.seeds",
            f"sign_flip enumerates 2**n sign patterns and takes at most "
            f"{stats.MAX_SIGN_FLIP_N} seeds, got {n}; use statistic: paired_t or wilcoxon",
        )
    floor = stats.min_p_value(STATISTICS[stage.statistic], n, stage.alternative)
    per_look = stage.alpha_per_look
    if floor > per_look:
        sided = "two-sided" if stage.alternative == "two-sided" else "one-sided"
        tails = 2 if sided == "two-sided" else 1
        needed = math.ceil(math.log2(tails / per_look) - 1e-9)
        _fail(
            source,
            f"{where}.alpha",
            f"an exact {sided} test ({stage.statistic}) with {n} seeds cannot go below "
            f"p = {floor:g}; alpha {stage.alpha:g} over {stage.looks} look(s) (Bonferroni: "
            f"{per_look:g} per look) can never pass: add seeds (at least {needed} for "
            f"{per_look:g} per look), raise alpha, lower looks, or use statistic: paired_t",
        )


def _margins(data: Any, where: str, source: str) -> dict[str, float]:
    _check_mapping(data, f"{where}.non_inferiority", source)
    margins = {}
    for key, value in data.items():
        name = f"{where}.non_inferiority.{key}"
        _choice(key, tuple(DIAGNOSTICS), name, source)
        margins[_text(key, name, source)] = _number(value, name, source)
        if margins[key] < 0:
            _fail(source, name, f"a margin must be >= 0, got {value}")
    return margins


def _seeds(value: Any, key: str, source: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(_is_int(s) for s in value):
        _fail(source, key, f"must be a non-empty list of integer seeds, got {value!r}")
    if len(set(value)) != len(value):
        _fail(source, key, f"seeds must be unique, got {value}")
    return tuple(value)


def _check_keys(
    data: dict, required: tuple[str, ...], optional: tuple[str, ...], prefix: str, source: str
) -> None:
    unknown = sorted(str(k) for k in data if k not in required + optional)
    if unknown:
        known = ", ".join(required + optional)
        _fail(source, f"{prefix}{unknown[0]}", f"unknown key; remove it (known keys: {known})")
    for key in required:
        if key not in data:
            _fail(source, f"{prefix}{key}", "missing; add it")


def _check_mapping(value: Any, key: str, source: str) -> None:
    if not isinstance(value, dict):
        _fail(source, key, f"must be a mapping of keys to values, got {type(value).__name__}")


def _choice(value: Any, choices: tuple[str, ...], key: str, source: str) -> str:
    if value not in choices:
        _fail(source, key, f"must be one of {', '.join(choices)}; got {value!r}")
    return value


def _text(value: Any, key: str, source: str) -> str:
    if not isinstance(value, str) or not value:
        _fail(source, key, f"must be a non-empty string, got {value!r}")
    return value


def _number(value: Any, key: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _fail(source, key, f"must be a finite number, got {value!r}")
    return float(value)


def _integer(value: Any, least: int, key: str, source: str) -> int:
    if not _is_int(value) or value < least:
        _fail(source, key, f"must be an integer >= {least}, got {value!r}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fail(source: str, key: str, problem: str) -> None:
    raise SpecError(f"{source}: {key}: {problem}")
