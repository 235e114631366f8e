"""The pre-registered gate plan, `gates.yaml`: what a candidate must show, decided before it runs.

The spec names the primary metric, the pinned baseline, the correction for repeated looks
(`alpha_correction`), the fewest test groups an interval may rest on (`min_groups`), optionally
the least power each test stage must have at its `min_delta` before the first look (`min_power`,
checked by `avgate plan check`; absent, the check only reports), how the candidate is selected
on validation, and the stages of the test: seeds, paired statistic (`avgate.stats.STATISTICS`),
sidedness, alpha, the number of looks allowed, and the keys of the gate criteria
(`gating.criteria.CRITERIA`: min_delta, optional bootstrap bound and whether it resamples seeds,
non-inferiority margins on diagnostics). Optionally, `checks:` declares the go/no-go checks the
workspace must pass before `avgate promote` starts (`avgate.go.CHECKS`, each with its thresholds
and phase; the `go` stage runs them).

The primary metric's direction is the metric's own (`avgate.metrics`): a `direction` line is
optional and refused when it contradicts it, and the metric must be the one params.yaml's
`evaluate.primary_metric` names (`check_params`). `looks` is the total number of test looks a
stage allows under this spec and this test split, whatever the candidate line; the stage's
`alpha` is the family alpha, split over its looks by Bonferroni (`GateStage.alpha_per_look`).
Every key is read by `avgate.declare`, with errors naming the file, the key and the fix, and a
stage that can never pass (an exact test whose smallest p-value with its seeds is above alpha per
look) is refused rather than left to fail every time. `GateSpec.hash` is the sha256 of the
canonical JSON of the parsed spec, so comments and formatting do not change it.

>>> data = {
...     "primary_metric": "segment_accuracy", "baseline": "v1-baseline",
...     "alpha_correction": "bonferroni", "min_groups": 8,
...     "selection": {"split": "val", "seeds": [0, 1, 2], "rule": "max_mean_delta"},
...     "stages": [{"name": "full_test", "split": "test", "seeds": list(range(10)),
...                 "statistic": "paired_t", "alternative": "greater", "alpha": 0.05,
...                 "looks": 2, "min_delta": 0.02}],
... }
>>> spec = parse_spec(data, "gates.yaml")
>>> spec.direction, spec.stages[0].name, spec.stages[0].alpha_per_look
('maximize', 'full_test', 0.025)
>>> [c.name for c in spec.stages[0].criteria]
['min_delta', 'p_value']
>>> spec.min_groups, spec.min_power, len(spec.hash)
(8, None, 64)
>>> parse_spec({**data, "min_power": 0.8}, "gates.yaml").min_power
0.8
>>> data["stages"][0]["statistic"] = "sign_flip"
>>> data["stages"][0]["seeds"] = [0, 1, 2]
>>> parse_spec(data, "gates.yaml")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
avgate.declare.ConfigError: gates.yaml: stages[full_test].alpha is out of reach: an exact ...
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from avgate import metrics, stats
from avgate.declare import (
    NOT_EMPTY,
    PARAMS_FILE,
    REQUIRED,
    UNIQUE,
    ConfigError,
    bound,
    check_known,
    fail,
    one_of,
    param,
    section,
)
from avgate.gating.criteria import CRITERIA, GateCriterion
from avgate.go import CHECKS, PHASES, GoCheck
from avgate.go.base import PHASE_KEY

SPLITS = ("val", "test")
ALPHA_CORRECTIONS = ("bonferroni",)  # each look is tested at alpha / looks
RULES = ("max_mean_delta",)  # the candidate whose mean per-seed delta on selection.split is largest
TIE_BREAKS = ("lower_ece", "fewer_parameters")  # ECE on selection.split; trainable parameters
SEEDS = (NOT_EMPTY, UNIQUE, bound(">= 0", each=True))


@dataclass(frozen=True)
class SelectionKeys:
    """`selection:` of gates.yaml."""

    split: str = param(REQUIRED, "the split the sweep's winner is chosen on", one_of(*SPLITS))
    seeds: list[int] = param(REQUIRED, "the seeds each candidate is trained with", *SEEDS)
    rule: str = param(REQUIRED, "how the winner is chosen", one_of(*RULES))
    tie_break: str | None = param(None, "how a tie is broken", one_of(*TIE_BREAKS))
    min_mean_delta: float | None = param(
        None,
        "optional: a candidate whose mean delta on the split is lower is out; when none is left "
        "the protocol stops before any test look",
    )


@dataclass(frozen=True)
class PlanKeys:
    """The top-level keys of gates.yaml."""

    primary_metric: str = param(
        REQUIRED, "a metric of avgate.metrics, the one params.yaml's evaluate names", NOT_EMPTY
    )
    direction: str | None = param(
        None, "optional: the metric's own direction, written out", one_of(*metrics.DIRECTIONS)
    )
    baseline: str = param(REQUIRED, "git tag (or revision) of the model to beat", NOT_EMPTY)
    alpha_correction: str = param(
        REQUIRED, "how each stage's alpha is split over its looks", one_of(*ALPHA_CORRECTIONS)
    )
    min_groups: int = param(REQUIRED, "fewest test groups an interval may rest on", bound(">= 2"))
    selection: SelectionKeys = param(REQUIRED, "how the sweep's winner is chosen on validation")
    stages: list[dict] = param(REQUIRED, "the test stages, in order", NOT_EMPTY)
    min_power: float | None = param(
        None, "least power of each test stage at its min_delta (`avgate plan check`)",
        bound("(0, 1)"),
    )  # fmt: skip
    checks: dict | None = param(
        None, "optional: the go/no-go checks, each by name with its thresholds (`avgate go`)"
    )


@dataclass(frozen=True)
class StageKeys:
    """The keys every stage writes; the gate criteria read the others (`criteria.CRITERIA`)."""

    name: str = param(REQUIRED, "the stage's name, which gate.stage selects", NOT_EMPTY)
    split: str = param(REQUIRED, "the split the stage looks at", one_of(*SPLITS))
    seeds: list[int] = param(REQUIRED, "baseline seed k is compared with candidate seed k", *SEEDS)
    statistic: str = param(REQUIRED, "the paired test: a name in avgate.stats.STATISTICS")
    alternative: str = param(REQUIRED, "the sidedness of the test", one_of(*stats.ALTERNATIVES))
    alpha: float = param(REQUIRED, "the family alpha over the stage's looks", bound("(0, 1)"))
    looks: int = param(
        REQUIRED, "test looks allowed under this spec and test split, any line", bound(">= 1")
    )


@dataclass(frozen=True)
class GateStage:
    """One stage of the test: seeds, paired statistic, alpha, and the criteria it checks.

    `alpha` is the stage's family alpha over its `looks`; `criteria` are the registered gate
    criteria the stage's keys set, with their parsed options, in registry order. `parse_stage`
    builds one from a gates.yaml stage mapping.

    >>> stage = parse_stage({"name": "quick_test", "split": "test", "seeds": [0, 1, 2],
    ...                      "statistic": "sign_flip", "alternative": "greater", "alpha": 0.25,
    ...                      "looks": 2, "min_delta": 0.018})
    >>> stage.seeds, stage.alpha_per_look, stage.criterion("min_delta").options.min_delta
    ((0, 1, 2), 0.125, 0.018)
    """

    name: str
    split: str
    seeds: tuple[int, ...]
    statistic: str
    alternative: str
    alpha: float
    looks: int = 1
    criteria: tuple[GateCriterion, ...] = ()

    @property
    def alpha_per_look(self) -> float:
        """The alpha each look is tested at: Bonferroni, `alpha / looks`."""
        return self.alpha / self.looks

    def criterion(self, name: str) -> GateCriterion | None:
        """The stage's criterion called `name`, or None when the stage does not use it."""
        return next((c for c in self.criteria if c.name == name), None)


@dataclass(frozen=True)
class GateSpec:
    """The parsed plan; `hash` identifies it in the ledger and in every verdict.

    `direction` is the primary metric's own, from the metric registry. `min_power` (None when
    the plan declares none) is the least power each test stage must have at its `min_delta`,
    checked before the first look by `avgate plan check`. `checks` are the declared go/no-go
    checks with their parsed thresholds and phases (empty when the plan declares none).

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
    checks: tuple[GoCheck, ...] = ()


def load_spec(path: str | Path) -> GateSpec:
    """Read and validate `gates.yaml` at `path`.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "gates.yaml"
    >>> _ = p.write_text("primary_metric: segment_accuracy\\n")
    >>> load_spec(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    avgate.declare.ConfigError: ...gates.yaml: baseline is missing; add it (git tag ...
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err}); fix the syntax") from err
    return parse_spec(data, str(path))


def parse_spec(data: Any, source: str) -> GateSpec:
    """Validate the parsed YAML `data` (from `source`, named in errors) into a `GateSpec`.

    >>> parse_spec({"primary_metric": "segment_acuracy"}, "gates.yaml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    avgate.declare.ConfigError: gates.yaml: baseline is missing; add it ...
    """
    keys = section(PlanKeys, data, "", source)
    metric = _metric(keys.primary_metric, source)
    if keys.direction is not None and keys.direction != metric.direction:
        raise ConfigError(
            f"{source}: direction: {keys.direction} contradicts {metric.name}'s direction "
            f"({metric.direction}) declared in {metric.declared_in}; remove the line"
        )
    stages = tuple(parse_stage(item, source, i) for i, item in enumerate(keys.stages))
    names = [stage.name for stage in stages]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        fail("stages", f"must have unique names; repeated: {repeated}", names, source)
    selection = dataclasses.asdict(keys.selection)
    for optional in ("tie_break", "min_mean_delta"):  # absent: the hash of plans without them
        if selection[optional] is None:
            del selection[optional]
    spec = GateSpec(
        primary_metric=metric.name,
        direction=metric.direction,
        baseline=keys.baseline,
        alpha_correction=keys.alpha_correction,
        min_groups=keys.min_groups,
        selection=selection,
        stages=stages,
        hash="",
        min_power=keys.min_power,
        checks=parse_checks(keys.checks, source),
    )
    return replace(spec, hash=spec_hash(spec))


def _metric(name: str, source: str) -> metrics.Metric:
    if name not in metrics.METRICS:
        known = list(metrics.METRICS)
        fail("primary_metric", f"must be a metric of avgate.metrics, one of {known}", name, source)
    return metrics.METRICS[name]


def parse_stage(data: Any, source: str = "gates.yaml", index: int = 0) -> GateStage:
    """One stage mapping of gates.yaml (the `index`-th) as a `GateStage`, its criteria included.

    >>> parse_stage({"name": "q", "split": "test", "seeds": [0, 1], "statistic": "paired_t",
    ...              "alternative": "greater", "alpha": 0.05, "looks": 1, "min_delat": 0.0})
    Traceback (most recent call last):
    ...
    avgate.declare.ConfigError: gates.yaml: unknown key(s) ['min_delat'] in stages[q]; known: \
['alpha', 'alternative', 'ci_low_min', 'looks', 'min_delta', 'name', 'non_inferiority', \
'resample_seeds', 'seeds', 'split', 'statistic']
    """
    where = f"stages[{data.get('name', index) if isinstance(data, dict) else index}]"
    if not isinstance(data, dict):
        fail(where, "must be a mapping of the stage's keys", data, source)
    core_keys = [f.name for f in dataclasses.fields(StageKeys)]
    owners = _criterion_keys(core_keys)
    check_known(data, [*core_keys, *owners], where, source)
    core = section(StageKeys, {k: v for k, v in data.items() if k in core_keys}, where, source)
    statistic = _statistic(core.statistic, len(core.seeds), where, source)
    stage = GateStage(
        name=core.name,
        split=core.split,
        seeds=tuple(core.seeds),
        statistic=statistic.name,
        alternative=core.alternative,
        alpha=core.alpha,
        looks=core.looks,
    )
    criteria = []
    for cls in CRITERIA.values():
        mine = {k: v for k, v in data.items() if owners.get(k) == cls.name}
        criterion = cls(section(cls.options_type, mine, where, source))
        criterion.check(stage, where, source)
        if criterion.applies():
            criteria.append(criterion)
    return replace(stage, criteria=tuple(criteria))


def parse_checks(data: dict | None, source: str = "gates.yaml") -> tuple[GoCheck, ...]:
    """The `checks:` mapping of gates.yaml (check name -> its thresholds and optional `phase`;
    null for the defaults) as registered go/no-go checks, in the order written.

    >>> [(c.name, c.phase) for c in parse_checks({"files_load": None,
    ...                                           "seed_std": {"max_std": 0.03, "phase": "data"}})]
    [('files_load', 'data'), ('seed_std', 'data')]
    >>> parse_checks({"seed_std": {"max_std": "small"}})
    Traceback (most recent call last):
    ...
    avgate.declare.ConfigError: gates.yaml: checks.seed_std.max_std must be a number, got 'small'
    """
    if not data:
        return ()
    check_known(data, CHECKS, "checks", source)
    checks = []
    for name, entry in data.items():
        where = f"checks.{name}"
        entry = {} if entry is None else entry
        if not isinstance(entry, dict):
            fail(where, "must be a mapping of the check's thresholds (or null)", entry, source)
        cls = CHECKS[name]
        check_known(entry, [*(f.name for f in dataclasses.fields(cls.options_type)), PHASE_KEY],
                    where, source)  # fmt: skip
        options = {key: value for key, value in entry.items() if key != PHASE_KEY}
        phase = entry.get(PHASE_KEY)
        if phase is not None and phase not in PHASES:
            fail(f"{where}.{PHASE_KEY}", f"must be one of {list(PHASES)}", phase, source)
        checks.append(cls(section(cls.options_type, options, where, source), phase))
    return tuple(checks)


def _criterion_keys(core_keys: list[str]) -> dict[str, str]:
    """Each criterion's stage key -> the criterion's name; a stage's own key is refused."""
    owners = {key: name for name, cls in CRITERIA.items() for key in cls.stage_keys()}
    clash = sorted(set(owners) & set(core_keys))
    if clash:
        raise TypeError(f"gate criterion {owners[clash[0]]!r} reads the stage's own key(s) {clash}")
    return owners


def _statistic(name: str, n: int, where: str, source: str) -> stats.PairedStatistic:
    """The registered statistic `name`, refused when unknown or unable to run on `n` seeds."""
    if name not in stats.STATISTICS:
        fail(f"{where}.statistic", f"must be one of {list(stats.STATISTICS)}", name, source)
    statistic = stats.STATISTICS[name]
    problem = statistic.seeds_problem(n)
    if problem:
        able = [other for other, s in stats.STATISTICS.items() if not s.seeds_problem(n)]
        fewer = n < statistic.min_seeds  # more seeds is the fix, and the message says so
        fix = f"; use statistic: {' or '.join(able)}" if able and not fewer else ""
        raise ConfigError(f"{source}: {where}.seeds: {problem}{fix}")
    return statistic


def canonical(spec: GateSpec) -> dict:
    """The spec as the plain values its hash is of: every key with its parsed value.

    A stage carries its own keys and each of its criteria's; a criterion the stage does not use
    adds its keys' defaults only when it is `hashed_when_absent` (those that existed before the
    registry). An absent `min_power` is left out, and so are absent (or empty) `checks`; each
    declared check carries its phase and every threshold, defaults included. So plans written
    before either existed keep their hash, and their ledger entries.
    """
    plain = {
        "primary_metric": spec.primary_metric,
        "direction": spec.direction,
        "baseline": spec.baseline,
        "alpha_correction": spec.alpha_correction,
        "min_groups": spec.min_groups,
        "selection": spec.selection,
        "stages": [_canonical_stage(stage) for stage in spec.stages],
    }
    if spec.min_power is not None:
        plain["min_power"] = spec.min_power
    if spec.checks:
        plain["checks"] = {check.name: check.canonical() for check in spec.checks}
    return plain


def _canonical_stage(stage: GateStage) -> dict:
    plain = {
        "name": stage.name,
        "split": stage.split,
        "seeds": list(stage.seeds),
        "statistic": stage.statistic,
        "alternative": stage.alternative,
        "alpha": stage.alpha,
        "looks": stage.looks,
    }
    for name, cls in CRITERIA.items():
        used = stage.criterion(name)
        if used is not None:
            plain |= dataclasses.asdict(used.options)
        elif cls.hashed_when_absent:
            plain |= dataclasses.asdict(cls.options_type())
    return plain


def spec_hash(spec: GateSpec) -> str:
    """sha256 of the spec's canonical JSON (sorted keys, no spaces), its own `hash` left out.

    >>> a = GateSpec("acc", "maximize", "v1", "bonferroni", 8, {}, (), hash="")
    >>> spec_hash(a) == spec_hash(replace(a, hash="x"))
    True
    >>> spec_hash(a) == spec_hash(replace(a, min_power=0.8))
    False
    """
    text = json.dumps(canonical(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def check_params(spec: GateSpec, kind: str, evaluate_primary_metric: str, source: str) -> None:
    """Refuse params.yaml's `evaluate.primary_metric` when `task.kind` does not compute it, and a
    plan whose primary metric is not that one: the gate, `avgate plan check` and `avgate
    promote` call this before they start.

    >>> spec = GateSpec("segment_accuracy", "maximize", "v1", "bonferroni", 8, {}, (), "")
    >>> check_params(spec, "event", "macro_f1", "gates.yaml")
    Traceback (most recent call last):
    ...
    avgate.declare.ConfigError: gates.yaml: primary_metric 'segment_accuracy' differs from \
params.yaml: evaluate.primary_metric 'macro_f1'; the gate judges the metric evaluate reports: \
make the two the same
    """
    metrics.check_primary(kind, evaluate_primary_metric)
    if spec.primary_metric != evaluate_primary_metric:
        raise ConfigError(
            f"{source}: primary_metric {spec.primary_metric!r} differs from {PARAMS_FILE}: "
            f"evaluate.primary_metric {evaluate_primary_metric!r}; the gate judges the metric "
            "evaluate reports: make the two the same"
        )


def check_groups(spec: GateSpec, stage: GateStage, n_groups: int, source: str) -> None:
    """Refuse, before a look, a stage whose interval would rest on fewer than `min_groups` groups.

    >>> stage = parse_stage({"name": "full", "split": "test", "seeds": [0, 1], "looks": 1,
    ...                      "statistic": "paired_t", "alternative": "greater", "alpha": 0.05,
    ...                      "min_delta": 0.0, "ci_low_min": 0.0})
    >>> spec = GateSpec("acc", "maximize", "v1", "bonferroni", 8, {}, (stage,), "")
    >>> check_groups(spec, stage, 8, "gates.yaml")
    >>> check_groups(spec, stage, 3, "gates.yaml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    avgate.declare.ConfigError: gates.yaml: min_groups: stage full's interval needs at least 8 ...
    """
    grouped = [c.name for c in stage.criteria if c.rests_on_groups]
    if not grouped or n_groups >= spec.min_groups:
        return
    raise ConfigError(
        f"{source}: min_groups: stage {stage.name}'s interval needs at least {spec.min_groups} "
        f"{stage.split} groups ({', '.join(grouped)}) and the split has {n_groups}; the interval "
        "would not generalise to new groups: split with more groups in test"
    )
