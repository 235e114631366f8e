"""The extension point: `DatasetFormat`, the registry `FORMATS` and `register`.

A format is a subclass registered under the name `data.format` selects, in a module of that name
in this package (`csv` in csv.py); `avgate.datasets.registry` finds it by that name. Its options
are a frozen dataclass of `avgate.declare.param` fields (meaning and rules declared once) that
sit in params.yaml as the section `data.<name>`. docs/extending.md walks through adding one.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from avgate.datasets.checks import Records
from avgate.declare import check_options_type


@dataclass(frozen=True)
class NoOptions:
    """The options of a format that takes none; its params.yaml section is `data.<name>: {}`."""


class DatasetFormat(ABC):
    """A layout of `data/raw/<name>` that the ingest stage reads as records, one row per clip.

    `name` is set by `register`. `layout` is one line saying which files the format needs (errors
    show it: "a <name> dataset needs <layout>"); `group_fix` says how a user gives clips their
    real recording groups (the split stage shows it when every group holds one clip);
    `options_type` is the frozen dataclass of `param` fields that `load` receives, the section
    `data.<name>` of params.yaml (`NoOptions` for none).
    """

    name: ClassVar[str]
    layout: ClassVar[str]
    group_fix: ClassVar[str]
    options_type: ClassVar[type] = NoOptions

    @abstractmethod
    def load(self, root: Path, options: Any) -> Records:
        """The records of the dataset at `root` (an existing folder), read with `options` (an
        `options_type`): `checks.make_records` of a frame with clip_id (stable, from the path
        relative to `root`), path (under `root`), label and group, plus start_s/end_s (an event
        span in whole seconds), fold or split where the layout gives them. A file that cannot
        be read raises `DatasetError` naming it and the fix; a source line that can be left out
        alone goes to `Records.rejected`. Never writes under `root`."""


FORMATS: dict[str, type[DatasetFormat]] = {}
Format = TypeVar("Format", bound=type[DatasetFormat])


def register(name: str) -> Callable[[Format], Format]:
    """Class decorator: make a format selectable as `data.format: <name>`; it sets the class's
    `name` and checks the rest of the contract that can be checked without data."""

    def add(cls: Format) -> Format:
        if not (isinstance(cls, type) and issubclass(cls, DatasetFormat)):
            raise TypeError(f"{cls!r} is not a DatasetFormat")
        if not name.isidentifier():
            raise ValueError(f"dataset format name {name!r} must be a Python identifier")
        if inspect.isabstract(cls):
            raise TypeError(f"{cls.__name__} does not implement load(self, root, options)")
        for attribute in ("layout", "group_fix"):
            text = getattr(cls, attribute, None)
            if not isinstance(text, str) or not text.strip():
                raise TypeError(f"{cls.__name__}.{attribute} must be a non-empty string")
        check_options_type(cls)
        if name in FORMATS:
            raise ValueError(f"dataset format {name!r} is registered twice")
        cls.name = name
        FORMATS[name] = cls
        return cls

    return add
