"""The extension point: `EventnessMethod`, the registry `METHODS`, `register` and `build`.

A method is a subclass registered under the name `eventness.method` selects. Its options are a
frozen dataclass of `avgate.declare.param` fields (meaning and rules declared once, so they can
sit in params.yaml as the section `eventness.<name>`), and `identity()` is the method's name plus
those options: everything besides the input rows that decides the scores.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import numpy as np

from avgate.declare import PARAMS_FILE, ConfigError, check_options_type
from avgate.eventness.data import SecondsData


class EventnessMethod(ABC):
    """Scores how eventful each second is: one float per row, higher = more eventful.

    `name` is set by `register`; `options_type` is the options dataclass the constructor takes;
    `needs_visual` says whether `fit` and `score` read `SecondsData.visual`. `fit` sees the
    train rows once (a no-op for training-free methods); `score` may then be called on any rows.
    The same options and rows give the same scores, bit for bit, on the same CPU.
    """

    name: ClassVar[str]
    options_type: ClassVar[type]
    needs_visual: ClassVar[bool] = False

    def __init__(self, options: Any) -> None:
        self.options = options

    @abstractmethod
    def fit(self, train: SecondsData) -> None:
        """Learn from the train rows (their labels, where the method needs them)."""

    @abstractmethod
    def score(self, data: SecondsData) -> np.ndarray:
        """(n,) float64 eventness of each row of `data`, finite."""

    def identity(self) -> dict:
        """What decides the scores besides the input rows, JSON-ready, for caching.

        >>> build("energy", onset=True).identity()
        {'method': 'energy', 'columns': [], 'onset': True}
        """
        return {"method": self.name, **dataclasses.asdict(self.options)}


METHODS: dict[str, type[EventnessMethod]] = {}
Method = TypeVar("Method", bound=type[EventnessMethod])


def register(name: str) -> Callable[[Method], Method]:
    """Class decorator: make a method selectable as `eventness.method: <name>`; it sets the
    class's `name`. The package's `__init__` shows a whole method."""

    def add(cls: Method) -> Method:
        if not issubclass(cls, EventnessMethod):
            raise TypeError(f"{cls.__name__} is not an EventnessMethod")
        check_options_type(cls)
        if name in METHODS:
            raise ValueError(f"eventness method {name!r} is registered twice")
        cls.name = name
        METHODS[name] = cls
        return cls

    return add


def build(name: str, **options: Any) -> EventnessMethod:
    """The method called `name`, with `options` (the keys of its `options_type`)."""
    if name not in METHODS:
        raise ConfigError(
            f"{PARAMS_FILE}: eventness.method names unknown method {name!r}; "
            f"known: {sorted(METHODS)}"
        )
    cls = METHODS[name]
    known = [f.name for f in dataclasses.fields(cls.options_type)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(
            f"{PARAMS_FILE}: unknown key(s) {unknown} in eventness.{name}; known: {known}"
        )
    return cls(cls.options_type(**options))


def not_fitted(method: EventnessMethod) -> RuntimeError:
    """The error for `score` before `fit`."""
    return RuntimeError(f"eventness method {method.name!r}: call fit before score")
