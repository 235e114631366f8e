"""The contract of a probe: evidence for the go/no-go checks that no other stage computes.

A probe is a registered plugin (`register_probe`) that the `probe` stage runs on the trained
workspace: it says when it does not apply (`applies` returns the reason: an audio-only model has
no audio branch to gate) and otherwise computes its evidence (`run`, a JSON-ready mapping). The
stage writes each probe's result to `reports/probe/<name>.json` (`layout.results.probe_path`), with
`{"applies": false, "reason": ...}` when it does not apply, and the checks of `avgate.go` read
those files (`go.base.probe_result`). Probes read the pipeline's files through `Params` and
write nothing else, except a `plot` table (a DVC plot: deterministic values only; wall-clock
timings go to data/profiles/, which no DVC output holds).

>>> plot_path(type("Curve", (Probe,), {"plot_name": "curve", "run": None})).as_posix()
'plots/curve.csv'
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pandas as pd

from avgate.config import Params

DECIMALS = 6  # probe floats in JSON and plots: the same bytes on any x86 CPU


def rounded(value: float | None) -> float | None:
    """`value` to DECIMALS places (None stays None).

    >>> rounded(0.12345678), rounded(None)
    (0.123457, None)
    """
    return None if value is None else round(float(value), DECIMALS)


def round_floats(data: Any) -> Any:
    """`data` with every float rounded to DECIMALS places (nested dicts and lists too).

    >>> round_floats({"loss": 0.12345678, "epochs": 3, "per": [1e-9]})
    {'loss': 0.123457, 'epochs': 3, 'per': [0.0]}
    """
    if isinstance(data, float):
        return round(data, DECIMALS)
    if isinstance(data, dict):
        return {key: round_floats(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [round_floats(value) for value in data]
    return data


def plot_path(kind: type[Probe]) -> Path:
    """The CSV of a probe's plot."""
    return Path("plots") / f"{kind.plot_name}.csv"


@dataclass
class ProbeOutput:
    """What a probe found: `result` (its JSON file's content), optionally a `plot` table (written
    to `plots/<plot_name>.csv`), `timings` (wall-clock figures for data/profiles/) and `line`,
    its findings in a few words for the console."""

    result: dict[str, Any]
    plot: pd.DataFrame | None = None
    timings: dict[str, Any] = field(default_factory=dict)
    line: str = ""


class Probe(ABC):
    """One probe. Class attributes: `name` (set by `register_probe`), `plot_name`, the stem of
    the CSV under plots/ it writes ("" for none; dvc.yaml lists it as an output), and
    `plot_columns`, that CSV's header (written alone when the probe does not apply)."""

    name: ClassVar[str]
    plot_name: ClassVar[str] = ""
    plot_columns: ClassVar[tuple[str, ...]] = ()

    def applies(self, params: Params) -> str | None:
        """Why it does not apply to this workspace, or None when it does."""
        return None

    @abstractmethod
    def run(self, params: Params) -> ProbeOutput:
        """Compute the evidence (only called when it applies)."""


PROBES: dict[str, type[Probe]] = {}
Kind = TypeVar("Kind", bound=type[Probe])


def register_probe(name: str) -> Callable[[Kind], Kind]:
    """Class decorator: run the `Probe` in the `probe` stage under `name`; it sets the class's
    `name`. TypeError for a class that is not a Probe, ValueError for a name registered twice."""

    def add(cls: Kind) -> Kind:
        if not issubclass(cls, Probe):
            raise TypeError(f"{cls.__name__} is not a Probe")
        if bool(cls.plot_name) != bool(cls.plot_columns):
            raise TypeError(f"{cls.__name__}: plot_name and plot_columns go together")
        if name in PROBES:
            raise ValueError(f"probe {name!r} is registered twice")
        cls.name = name
        PROBES[name] = cls
        return cls

    return add
