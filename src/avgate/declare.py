"""How params are declared and checked: `param(default, meaning, *rules)` on a frozen dataclass
field, the rules (`bound`, `one_of`, ...), and `build`/`section`, which turn a mapping from
params.yaml into the dataclass with errors that name the key.

`avgate.config` assembles params.yaml's sections from these; a plugin (an encoder, a dataset
format, an eventness method, a gate criterion) declares its options next to its code with the
same `param`. `gates.yaml` is read with them too: `build`, `section`, `check_known` and `fail` take
the file they name in errors (`source`, params.yaml unless told). A key declared with the
default `REQUIRED` must be written; a `float | None` key may be null.

>>> @dataclass(frozen=True)
... class Options:
...     k: int = param(1, "how many", bound(">= 1"))
>>> section(Options, {"k": 2}, "embed.mine").k
2
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import operator
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PARAMS_FILE = "params.yaml"
SPEC = "avgate.spec"  # the metadata key of a field's declaration


class ConfigError(ValueError):
    """A value in params.yaml or gates.yaml that is missing, unknown, of the wrong type or out of
    its range; the message names the file and the key."""


class _Required:
    """The default of a key that has none: `build` refuses a mapping without it."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Rule:
    """What a value must satisfy: `ok` tests it, `allowed` shows it in the docs, `must` in errors.

    `each` applies the rule to every item of a list instead of the list.
    """

    allowed: str
    must: str
    ok: Callable[[Any], bool]
    each: bool = False


@dataclass(frozen=True)
class Spec:
    """One key's declaration: what it means and the rules its value must satisfy."""

    meaning: str
    rules: tuple[Rule, ...] = ()
    key: str = ""  # the key as written in params.yaml where it differs from the field's name
    gathers: Callable[[str, Any], bool] | None = None  # which unknown sub-sections it collects


def param(
    default: Any,
    meaning: str,
    *rules: Rule,
    key: str = "",
    gathers: Callable[[str, Any], bool] | None = None,
) -> Any:
    """A dataclass field carrying its declaration (a list or dict default is copied per use).

    A dict field with `gathers` collects the section's other keys for which
    `gathers(name, value)` holds (plugin sections such as `embed.<name>`), under `key`.
    `default` REQUIRED makes the key one that must be written.
    """
    metadata = {SPEC: Spec(meaning, rules, key, gathers)}
    if isinstance(default, list | dict):
        return field(default_factory=functools.partial(copy.copy, default), metadata=metadata)
    return field(default=default, metadata=metadata)


_ABOVE = {">": operator.gt, ">=": operator.ge}
_LOW = {"(": operator.gt, "[": operator.ge}
_HIGH = {")": operator.lt, "]": operator.le}


def bound(text: str, each: bool = False) -> Rule:
    """Numbers in a range written as the docs show it: '> 0', '>= 1', '[0, 1]', '(0, 0.5)'.

    >>> [bound("(0, 0.5)").ok(x) for x in (0, 0.25, 0.5)], bound(">= 1").ok(1)
    ([False, True, False], True)
    """
    if text[0] in _LOW:
        low, high = (float(number) for number in text[1:-1].split(","))

        def inside(value: float) -> bool:
            return _LOW[text[0]](value, low) and _HIGH[text[-1]](value, high)

        return Rule(text, f"lie in {text}", inside, each)
    sign, number = text.split()
    limit = float(number)

    def beyond(value: float) -> bool:
        return _ABOVE[sign](value, limit)

    return Rule(text, f"be {text}", beyond, each)


def one_of(*choices: str) -> Rule:
    """One of the named strings."""
    shown = ", ".join(f"`{choice}`" for choice in choices)
    return Rule(shown, f"be one of {list(choices)}", choices.__contains__)


def _plain_name(name: str) -> bool:
    """A single folder name that stays inside its parent folder."""
    bad = ("/", "\\", "..", "\0")
    return bool(name) and not name.startswith(".") and not any(part in name for part in bad)


def _group_regex(text: str) -> bool:
    """Empty, or a regex with a capture group."""
    try:
        return not text or re.compile(text).groups > 0
    except re.error:
        return False


def _ordered_pair(values: list) -> bool:
    return len(values) == 2 and values[0] <= values[1]


NOT_EMPTY = Rule("not empty", "not be empty", bool)
UNIQUE = Rule("no repeats", "not repeat a value", lambda values: len(set(values)) == len(values))
PAIR = Rule("[low, high], low <= high", "be [low, high] with low <= high", _ordered_pair)
FOLDER_NAME = Rule(
    "a folder name: no `/`, `\\`, `..` or leading `.`",
    "be a plain folder name without '/', '\\', '..' or a leading '.'",
    _plain_name,
)
GROUP_REGEX = Rule(
    "empty, or a regex with a capture group",
    "be empty or a regex with a capture group",
    _group_regex,
)


@dataclass(frozen=True)
class Declared:
    """A declared key: its name in params.yaml, where it sits in `Params`, its type and spec."""

    key: str
    path: tuple[str, ...]
    kind: Any
    default: Any
    spec: Spec


@functools.cache
def declared(section: type, path: tuple[str, ...] = ()) -> tuple[Declared, ...]:
    """Every key under `section` in declaration order, nested sections flattened."""
    hints = typing.get_type_hints(section)
    found: list[Declared] = []
    for f in dataclasses.fields(section):
        here = (*path, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            found += declared(hints[f.name], here)
            continue
        spec = f.metadata[SPEC]
        key = ".".join((*path, spec.key or f.name))
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        found.append(Declared(key, here, hints[f.name], default, spec))
    return tuple(found)


def check_declared(item: Declared, value: Any, source: str = PARAMS_FILE) -> None:
    """Refuse a value (or list item, or mapping value) that breaks one of the key's rules; a
    null (allowed only where the type says `| None`) has no rule to meet."""
    if value is None:
        return
    for rule in item.spec.rules:
        for key, each in _targets(item.key, value, rule.each):
            if not rule.ok(each):
                fail(key, f"must {rule.must} ({item.spec.meaning})", each, source)


def _targets(key: str, value: Any, each: bool) -> list[tuple[str, Any]]:
    if each and isinstance(value, dict):
        return [(f"{key}.{name}", item) for name, item in value.items()]
    if each:
        return [(f"{key}[{i}]", item) for i, item in enumerate(value)]
    return [(key, value)]


def section(cls: type, data: Any, key: str, source: str = PARAMS_FILE) -> Any:
    """`data` as `cls`, a dataclass of `param` fields outside `Params` (a plugin's options, or a
    part of gates.yaml), checked as params.yaml's own sections are; errors name `source`, `key`
    and its sub-keys.

    >>> @dataclass(frozen=True)
    ... class Options:
    ...     k: int = param(1, "how many", bound(">= 1"))
    >>> section(Options, {"k": 0}, "eventness.energy")
    Traceback (most recent call last):
    ...
    avgate.declare.ConfigError: params.yaml: eventness.energy.k must be >= 1 (how many), got 0
    >>> section(Options, {"k": 0}, "stages[quick]", "gates.yaml")
    Traceback (most recent call last):
    ...
    avgate.declare.ConfigError: gates.yaml: stages[quick].k must be >= 1 (how many), got 0
    """
    path = tuple(key.split(".")) if key else ()
    built = build(cls, data, f"{key}." if key else "", source)
    for item in declared(cls, path):
        check_declared(item, functools.reduce(getattr, item.path[len(path) :], built), source)
    return built


def fail(key: str, rule: str, value: Any, source: str = PARAMS_FILE) -> typing.NoReturn:
    """Refuse `value` of `key` in `source`: `<source>: <key> <rule>, got <value>`."""
    raise ConfigError(f"{source}: {key} {rule}, got {value!r}")


def check_known(data: dict, known: Any, where: str, source: str = PARAMS_FILE) -> None:
    """Refuse keys of the mapping `data` (at `where`, "" for the top level) not in `known`.

    >>> check_known({"k": 1, "kk": 2}, ["k"], "stages[quick]", "gates.yaml")
    Traceback (most recent call last):
    ...
    avgate.declare.ConfigError: gates.yaml: unknown key(s) ['kk'] in stages[quick]; known: ['k']
    """
    unknown = sorted(str(name) for name in set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {unknown} in {where or 'top level'}; known: {sorted(known)}"
        )


_TYPE_NAMES = {bool: "true/false", int: "integer", float: "number", str: "string", dict: "mapping"}


def table_markdown(section: type) -> str:
    """A markdown table of every key declared under `section`: type, rules, default, meaning."""
    rows = ["| key | type | allowed | default | meaning |", "| --- | --- | --- | --- | --- |"]
    rows += [_table_row(item) for item in declared(section)]
    return "\n".join(rows) + "\n"


def _table_row(item: Declared) -> str:
    rules = item.spec.rules
    allowed = "; ".join(("each " if rule.each else "") + rule.allowed for rule in rules) or "any"
    default = "required" if item.default is REQUIRED else f"`{json.dumps(item.default)}`"
    cells = [f"`{item.key}`", _type_name(item.kind), allowed, default, item.spec.meaning]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _type_name(kind: Any) -> str:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is list:
        return f"list of {_TYPE_NAMES[args[0]]}s"
    if origin is dict:
        return f"mapping to {_TYPE_NAMES[args[1]]}s"
    if origin in (typing.Union, types.UnionType):
        return f"{_type_name(_optional(kind, 'the key'))} or null"
    return _TYPE_NAMES[kind]


def build(cls: type, data: Any, prefix: str, source: str = PARAMS_FILE) -> Any:
    """`data` as the dataclass `cls`, each value converted to its field's type; errors name
    `source` and the key (`prefix` + the field's name). Rules are checked by `section`."""
    if not isinstance(data, dict):
        fail(prefix.rstrip(".") or "the file", "must be a mapping", data, source)
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields}
    data = _gather(cls, data, names)
    check_known(data, names, prefix.rstrip("."), source)
    for f in fields:
        if f.default is REQUIRED and f.name not in data:
            meaning = f.metadata[SPEC].meaning
            raise ConfigError(f"{source}: {prefix}{f.name} is missing; add it ({meaning})")
    values = {name: _convert(hints[name], data[name], prefix + name, source) for name in data}
    return cls(**values)


def _gather(cls: type, data: dict, names: set[str]) -> dict:
    """The section's unknown keys that a `gathers` field collects, moved under that field."""
    for f in dataclasses.fields(cls):
        gathers = f.metadata[SPEC].gathers if SPEC in f.metadata else None
        if gathers is not None:
            found = {k: v for k, v in data.items() if k not in names and gathers(k, v)}
            data = {**{k: v for k, v in data.items() if k not in found}, f.name: found}
    return data


def _optional(kind: Any, key: str) -> Any:
    """The `T` of `T | None`; TypeError for any other union."""
    args = typing.get_args(kind)
    others = [arg for arg in args if arg is not type(None)]
    if len(args) != 2 or len(others) != 1:
        raise TypeError(f"unsupported params type for {key}: {kind} (only `T | None`)")
    return others[0]


def _convert(kind: Any, value: Any, key: str, source: str) -> Any:
    if dataclasses.is_dataclass(kind):
        return build(kind, value, key + ".", source)
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        inner = _optional(kind, key)
        return None if value is None else _convert(inner, value, key, source)
    if kind is dict or origin is dict:
        if not isinstance(value, dict):
            fail(key, "must be a mapping", value, source)
        if origin is None:
            return value
        _, item = typing.get_args(kind)
        return {str(k): _convert(item, v, f"{key}.{k}", source) for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            fail(key, "must be a list", value, source)
        (item,) = typing.get_args(kind)
        return [_convert(item, v, f"{key}[{i}]", source) for i, v in enumerate(value)]
    return _scalar(kind, value, key, source)


def _scalar(kind: type, value: Any, key: str, source: str) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            fail(key, "must be true or false", value, source)
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail(key, "must be an integer", value, source)
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            fail(key, "must be a number", value, source)
        if not _finite(value):
            fail(key, "must be a finite number", value, source)
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            fail(key, "must be a string", value, source)
        return value
    raise TypeError(f"unsupported params type for {key}: {kind}")


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float's range
        return False


def check_options_type(cls: type) -> None:
    """TypeError unless the plugin class's `options_type` is a frozen dataclass of `param`
    fields: what a registry checks when a plugin registers."""
    options = getattr(cls, "options_type", None)
    if not (isinstance(options, type) and dataclasses.is_dataclass(options)):
        raise TypeError(f"{cls.__name__}.options_type must be a dataclass of its options")
    if not options.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__name__}.options_type {options.__name__} must be frozen")
    undeclared = [f.name for f in dataclasses.fields(options) if SPEC not in f.metadata]
    if undeclared:
        raise TypeError(
            f"{cls.__name__}.options_type: declare {undeclared} with avgate.declare.param "
            "(a default and a meaning)"
        )
