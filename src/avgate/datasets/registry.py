"""Dataset formats by name: `format_named` imports `avgate.datasets.<name>` (that module only)
when the format is not registered yet, `formats()` every module of the package. Apart from
base.py because it may import any format, and every format imports base.py.

>>> formats()
['ave', 'csv', 'esc50', 'folder', 'fsdd']
>>> options_of("csv", {"manifest": "lists/all.csv"})
CsvOptions(manifest='lists/all.csv')
>>> options_of("csv", {"manfest": "all.csv"})
Traceback (most recent call last):
...
avgate.declare.ConfigError: params.yaml: unknown key(s) ['manfest'] in data.csv; known: ['manifest']
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from avgate.datasets.base import FORMATS, DatasetFormat, NoOptions
from avgate.declare import PARAMS_FILE, ConfigError, section, table_markdown


def formats() -> list[str]:
    """Every format's name, after importing each module of this package (the formats register;
    base.py, checks.py and this module register nothing)."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"avgate.datasets.{module.name}")
    return sorted(FORMATS)


def format_named(name: str) -> type[DatasetFormat]:
    """The format registered as `name`, importing `avgate.datasets.<name>` when it is not
    registered yet; ConfigError naming `data.format` otherwise."""
    if name not in FORMATS and name.isidentifier():
        try:
            importlib.import_module(f"avgate.datasets.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"avgate.datasets.{name}":
                raise
    if name not in FORMATS:
        raise ConfigError(
            f"{PARAMS_FILE}: data.format names unknown dataset format {name!r}; known: "
            f"{formats()} (a new format is one module in src/avgate/datasets/, "
            "docs/extending.md)"
        )
    return FORMATS[name]


def options_of(name: str, given: Mapping[str, Any]) -> Any:
    """The section `data.<name>` (a mapping of option values) as format `name`'s options,
    checked against their declarations; errors name `data.<name>.<key>`."""
    return section(format_named(name).options_type, dict(given), f"data.{name}")


def check_sections(fmt: str, sections: Mapping[str, Any]) -> list[str]:
    """Check every `data.<name>` section of params.yaml against its format's options, so that a
    typo fails even in a section `fmt` does not read; return a note for each option of another
    format set away from its default (ingest ignores it).

    >>> import avgate.datasets
    >>> check_sections("fsdd", {"folder": {"group_pattern": "^(x)"}, "csv": {}})
    ["data.folder.group_pattern '^(x)' is ignored: it applies to data.format folder, not fsdd"]
    """
    format_named(fmt)
    known = formats()
    notes = []
    for name, given in sorted(sections.items()):
        if name not in known:
            raise ConfigError(
                f"{PARAMS_FILE}: data.{name} is the options section of no dataset format; "
                f"known formats: {known} (data.<format> holds a format's options)"
            )
        if not isinstance(given, Mapping):
            raise ConfigError(
                f"{PARAMS_FILE}: data.{name} must be a mapping of format {name}'s options, "
                f"got {given!r}"
            )
        options = options_of(name, given)
        if name == fmt:
            continue
        defaults = FORMATS[name].options_type()
        for field in dataclasses.fields(options):
            value = getattr(options, field.name)
            if value != getattr(defaults, field.name):
                notes.append(
                    f"data.{name}.{field.name} {value!r} is ignored: it applies to data.format "
                    f"{name}, not {fmt}"
                )
    return notes


def options_table_markdown() -> str:
    """The table of docs/params.md's dataset format options: `data.<format>.<key>` of every
    registered format, and `data.<format>` alone for a format without options."""
    rows = table_markdown(NoOptions).splitlines()  # the header: NoOptions has no rows
    for name in formats():
        cls = FORMATS[name]
        own = table_markdown(cls.options_type).splitlines()[2:]
        rows += [row.replace("| `", f"| `data.{name}.", 1) for row in own] or [
            f"| `data.{name}` | mapping | empty | `{{}}` | format {name} takes no options |"
        ]
    return "\n".join(rows) + "\n"
