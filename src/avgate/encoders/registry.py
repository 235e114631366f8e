"""Encoders by name: the kind a name in `embed.encoders` has, its options, and the encoder itself.

`encoder_class(kind)` imports `avgate.encoders.<kind>` (that module only) when the kind is not
registered yet; `build(name, params.embed)` makes the encoder `embed@<name>` runs. This module is
apart from base.py because it may import any kind: the kinds, and the LoRA code that reads an
hf_audio section (`HFAudioEncoder.options_in`), import base.py and stay free of the others.

>>> from avgate.config import EmbedParams
>>> embed = EmbedParams(encoders={"wavlm": "hf_audio"}, sections={"wavlm": {"model": "x/y"}})
>>> options_of(embed, "wavlm")
HFAudioOptions(model='x/y', revision='main', layer='last', sample_rate=16000)
>>> encoder_class("framse")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
avgate.declare.ConfigError: params.yaml: embed.encoders names unknown encoder kind 'framse'; ...
>>> kinds()
['crepe', 'frames', 'hf_audio', 'hf_vision', 'logmel']
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avgate.declare import PARAMS_FILE, ConfigError, table_markdown
from avgate.encoders.base import ENCODERS, Encoder

if TYPE_CHECKING:
    from avgate.config import EmbedParams


def encoder_class(kind: str) -> type[Encoder]:
    """The class registered as `kind`, importing `avgate.encoders.<kind>` (that module only) when
    it is not registered yet; ConfigError naming `embed.encoders` otherwise."""
    if kind not in ENCODERS and kind.isidentifier():
        try:
            importlib.import_module(f"avgate.encoders.{kind}")
        except ModuleNotFoundError as error:
            if error.name != f"avgate.encoders.{kind}":
                raise
    if kind not in ENCODERS:
        raise ConfigError(
            f"{PARAMS_FILE}: embed.encoders names unknown encoder kind {kind!r}; known: "
            f"{kinds()} (a kind is one module in src/avgate/encoders/, docs/extending.md)"
        )
    return ENCODERS[kind]


def kinds() -> list[str]:
    """Every registered kind, after importing each module of this package (the kinds register;
    base.py, hf_common.py and this module register nothing)."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"avgate.encoders.{module.name}")
    return sorted(ENCODERS)


def kind_of(embed: EmbedParams, name: str) -> str:
    """The kind of the encoder `name` in `embed.encoders`; ConfigError when it is not listed."""
    if name not in embed.encoders:
        raise ConfigError(
            f"{PARAMS_FILE}: embed.encoders has no encoder named {name!r}; it lists "
            f"{list(embed.encoders)}"
        )
    return embed.encoders[name]


def options_of(embed: EmbedParams, name: str) -> Any:
    """The options of the encoder `name` of `embed.encoders`: its section `embed.<name>` (none:
    the kind's defaults) checked against its kind's `options_type`."""
    return encoder_class(kind_of(embed, name)).options_in(embed.encoders, embed.sections, name)


def build(name: str, embed: EmbedParams) -> Encoder:
    """The encoder listed as `name` in `embed.encoders`, with the options of `embed.<name>`, on
    `embed.device`.

    >>> from avgate.config import EmbedParams
    >>> encoder = build("logmel", EmbedParams(device="cpu"))
    >>> encoder.kind, encoder.name, encoder.dim, encoder.identity()["n_mels"]
    ('logmel', 'logmel', 128, 64)
    """
    cls = encoder_class(kind_of(embed, name))
    return cls(cls.options_in(embed.encoders, embed.sections, name), device=embed.device, name=name)


def make(kind: str, device: str = "cpu", name: str = "", **options: Any) -> Encoder:
    """An encoder of `kind` with `options` (unset ones take their defaults), checked as the
    params.yaml section `embed.<name>` (the kind by default) would be.

    >>> make("frames", size=16, grid=2).dim
    47
    """
    cls = encoder_class(kind)
    return cls(cls.check_options(options, f"embed.{name or kind}"), device=device, name=name)


def options_table_markdown() -> str:
    """The table of docs/params.md's encoder options: each option of each registered kind."""
    rows = ["| kind | option | type | allowed | default | meaning |", "| --- " * 6 + "|"]
    for kind in kinds():
        own = table_markdown(ENCODERS[kind].options_type).splitlines()[2:]
        rows += [f"| `{kind}` " + row for row in own]
    return "\n".join(rows) + "\n"
