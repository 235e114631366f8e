"""The contract of a go/no-go check: what must hold before a team spends compute on a plan.

A check is a registered plugin (`register_check`) that reads files the pipeline already writes
(its `evidence`), says when it does not apply (`applies` returns the reason, and the verdict
lists it as not applicable: never silently passed), and judges the rest (`run`, one
`CheckResult`). Its thresholds are a frozen dataclass of `avgate.declare.param` fields
(`options_type`), written under `checks.<name>` in gates.yaml next to an optional `phase`
(default: the check's own). `gating.spec` parses them with errors naming `checks.<name>.<key>`;
the `go` stage runs the declared checks (`gating.go_verdict`). docs/extending.md says how to add
one.

>>> at_most(4.0, 5.0, "largest / smallest class", ("metrics/leakage.json",)).detail
'largest / smallest class 4 <= 5'
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from avgate.declare import check_options_type
from avgate.layout.results import APPLIES, probe_path

PHASES = ("data", "safety", "learning", "efficiency", "robustness", "reproducibility")
PHASE_KEY = "phase"  # the gates.yaml key every check takes besides its options
RERUN = "run `dvc repro`"


class EvidenceError(Exception):
    """An evidence file is missing, unreadable, or lacks what a check reads; the message names
    the file and the fix. The verdict records the check as failed with that message."""


@dataclass(frozen=True)
class Context:
    """What a check may look at: the seeds of `train.seeds` and the files under `root` (the
    workspace: the `go` stage's working directory)."""

    seeds: tuple[int, ...]
    root: Path = Path(".")

    def read(self, path: Path) -> Any:
        """The JSON file at `path` (relative to the workspace), or EvidenceError naming it."""
        file = self.root / path
        if not file.is_file():
            raise EvidenceError(f"{path}: missing; {RERUN} to produce it")
        try:
            return json.loads(file.read_text())
        except json.JSONDecodeError as error:
            raise EvidenceError(f"{path}: not valid JSON ({error}); {RERUN}") from None


def probe_result(context: Context, name: str) -> tuple[dict | None, str | None]:
    """The probe `name`'s findings (reports/probe/<name>.json) and None, or None and the reason
    it did not apply (the check that reads it is then not applicable)."""
    data = context.read(probe_path(name))
    if not data.get(APPLIES, False):
        return None, f"{probe_path(name)}: {data.get('reason', 'the probe did not apply')}"
    return data, None


def lookup(data: Any, path: Path, *keys: str) -> Any:
    """`data[k1][k2]...`, read from the file `path`; EvidenceError naming the file and the key
    when it is not there (a file written before avgate recorded it).

    >>> lookup({"a": {"b": 1}}, Path("m.json"), "a", "b")
    1
    >>> lookup({"a": {}}, Path("m.json"), "a", "b")
    Traceback (most recent call last):
    ...
    avgate.go.base.EvidenceError: m.json: no a.b (written by an older avgate?); run `dvc repro`
    """
    value = data
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            where = ".".join(keys)
            raise EvidenceError(f"{path}: no {where} (written by an older avgate?); {RERUN}")
        value = value[key]
    return value


@dataclass(frozen=True)
class CheckResult:
    """One judged check: its measured `value`, the `threshold` from gates.yaml, how the two are
    compared (`rule`: `>=`, `<=`, `<`), whether it passed, a line for the report, and the files
    the verdict rests on."""

    value: float | None
    threshold: float | None
    passed: bool
    detail: str
    evidence: tuple[str, ...]
    rule: str = ""


def _compare(value: float, threshold: float, rule: str, what: str, evidence: tuple) -> CheckResult:
    passed = {">=": value >= threshold, "<=": value <= threshold, "<": value < threshold}[rule]
    shown = rule if passed else {">=": "<", "<=": ">", "<": ">="}[rule]
    detail = f"{what} {value:.4g} {shown} {threshold:.4g}"
    return CheckResult(value, threshold, bool(passed), detail, tuple(map(str, evidence)), rule)


def at_least(value: float, threshold: float, what: str, evidence: tuple) -> CheckResult:
    """Passes when `value` >= `threshold`."""
    return _compare(value, threshold, ">=", what, evidence)


def at_most(value: float, threshold: float, what: str, evidence: tuple) -> CheckResult:
    """Passes when `value` <= `threshold`."""
    return _compare(value, threshold, "<=", what, evidence)


def below(value: float, threshold: float, what: str, evidence: tuple) -> CheckResult:
    """Passes when `value` < `threshold` (strictly)."""
    return _compare(value, threshold, "<", what, evidence)


class GoCheck(ABC):
    """One go/no-go criterion.

    Class attributes: `name` (set by `register_check`); `phase`, its default phase (one of
    PHASES; a plan may move it with `phase:`); `options_type`, the frozen dataclass of `param`
    fields whose names are its gates.yaml keys (thresholds); `example`, those keys as a plan
    would write them (the contract test parses and runs it).
    """

    name: ClassVar[str]
    phase: str
    options_type: ClassVar[type]
    example: ClassVar[dict[str, Any]]

    def __init__(self, options: Any, phase: str | None = None) -> None:
        self.options = options
        self.phase = phase or type(self).phase

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and other.options == self.options  # type: ignore[attr-defined]
            and other.phase == self.phase  # type: ignore[attr-defined]
        )

    __hash__ = None  # type: ignore[assignment]  # options may hold a list

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options!r}, phase={self.phase!r})"

    def canonical(self) -> dict:
        """Its phase and every option with its parsed value: what the plan's hash is of."""
        return {PHASE_KEY: self.phase, **dataclasses.asdict(self.options)}

    @abstractmethod
    def evidence(self, context: Context) -> tuple[Path, ...]:
        """The files (relative to the workspace) it reads; `applies` and `run` read no other."""

    def applies(self, context: Context) -> str | None:
        """Why it does not apply to this workspace (audio-visual checks on audio-only data, LoRA
        checks on a head), or None when it does."""
        return None

    @abstractmethod
    def run(self, context: Context) -> CheckResult:
        """Judge the workspace (only called when it applies); EvidenceError when a file lacks
        what it reads."""


class ProbeCheck(GoCheck):
    """A check on the findings of one probe (`probe`: its name in `avgate.probes`): its evidence
    is that probe's file, and it does not apply where the probe did not."""

    probe: ClassVar[str]

    def evidence(self, context: Context) -> tuple[Path, ...]:
        return (probe_path(self.probe),)

    def applies(self, context: Context) -> str | None:
        return probe_result(context, self.probe)[1]

    def findings(self, context: Context) -> tuple[dict, Path]:
        """The probe's findings and their file; EvidenceError where the probe did not apply."""
        data, reason = probe_result(context, self.probe)
        if data is None:
            raise EvidenceError(str(reason))
        return data, probe_path(self.probe)


CHECKS: dict[str, type[GoCheck]] = {}
Kind = TypeVar("Kind", bound=type[GoCheck])


def register_check(name: str) -> Callable[[Kind], Kind]:
    """Class decorator: make a `GoCheck` declarable as `checks.<name>` in gates.yaml; it sets
    the class's `name`. TypeError for a class that breaks the contract, ValueError for a name
    registered twice."""

    def add(cls: Kind) -> Kind:
        if not issubclass(cls, GoCheck):
            raise TypeError(f"{cls.__name__} is not a GoCheck")
        check_options_type(cls)
        if getattr(cls, "phase", None) not in PHASES:
            raise TypeError(f"{cls.__name__}.phase must be one of {list(PHASES)}")
        if not isinstance(getattr(cls, "example", None), dict):
            raise TypeError(f"{cls.__name__}.example must be a mapping of its options")
        if PHASE_KEY in {f.name for f in dataclasses.fields(cls.options_type)}:
            raise TypeError(f"{cls.__name__}.options_type: `{PHASE_KEY}` is every check's key")
        if name in CHECKS:
            raise ValueError(f"go/no-go check {name!r} is registered twice")
        cls.name = name
        CHECKS[name] = cls
        return cls

    return add


@dataclass(frozen=True)
class NoOptions:
    """The options of a check without a threshold of its own (it passes on zero findings)."""
