"""Every declared param, fed hostile values, either loads or fails with a ConfigError naming its
key; never another exception. The cases issue 14 found fail naming the key and the range."""

from __future__ import annotations

import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avgate.config import Params
from avgate.declare import ConfigError, declared
from avgate.encoders.registry import make

ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),  # NaN and infinities included
    st.text(max_size=12),
    st.lists(
        st.one_of(st.integers(-5, 5), st.floats(), st.text(max_size=3), st.none()), max_size=4
    ),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
OF_TYPE = {
    bool: st.booleans(),
    int: st.integers(min_value=-(10**6), max_value=10**6),
    float: st.floats(min_value=-1e6, max_value=1e6),
    str: st.one_of(st.text(max_size=12), st.sampled_from(["", ".", "..", "a/b", "logmel"])),
}
OF_TYPE[dict[str, str]] = st.dictionaries(OF_TYPE[str], OF_TYPE[str], max_size=3)
# Free-form here, checked by the stage that imports the plugin's declarations: a dataset format's
# options (data.<format>, tests/test_format_contract.py), an encoder's (embed.<name>,
# tests/test_encoder_contract.py) and an eventness method's (tests/test_eventness_stage.py).
SECTIONS = ("data.<format>", "embed.<name>", "eventness.<method>")
KEYS = [item for item in declared(Params) if item.key not in SECTIONS]


def values_of(kind: typing.Any) -> st.SearchStrategy:
    """Values of the right type (in range or not), or of any other."""
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        return st.one_of(st.lists(OF_TYPE[item], max_size=4), ANY_VALUE)
    return st.one_of(OF_TYPE[kind], ANY_VALUE)


def nested(path: tuple[str, ...], value: typing.Any) -> dict:
    """{'train': {'lr': value}} from ('train', 'lr'); an `embed` key comes with the sections of
    the default encoders, which every name in `embed.encoders` needs."""
    for name in reversed(path[1:]):
        value = {name: value}
    if path[0] == "embed":
        value = {"logmel": {}, "frames": {}, **value}
    return {path[0]: value}


@pytest.mark.parametrize("item", KEYS, ids=[item.key for item in KEYS])
def test_any_value_loads_or_names_its_key(item):
    @settings(max_examples=25, deadline=None)
    @given(value=values_of(item.kind))
    def check(value):
        try:
            Params.from_dict(nested(item.path, value))
        except ConfigError as error:
            assert item.key in str(error)

    check()


ISSUE_14 = [  # key, value, what the message must show as allowed
    ("train.lr", -0.1, "> 0"),
    ("train.lr", 0, "> 0"),
    ("train.weight_decay", -0.0001, ">= 0"),
    ("train.dropout", 1.5, "[0, 1)"),
    ("train.batch_size", 0, ">= 1"),
    ("train.batch_size", -8, ">= 1"),
    ("train.num_threads", 0, ">= 1"),
    ("train.max_epochs", 0, ">= 1"),
    ("train.hidden", 0, ">= 1"),
    ("embed.encoders", {}, "not be empty"),
    ("ingest.workers", -1, ">= 0"),
    ("ingest.duration_tolerance_s", -0.5, ">= 0"),
    ("audit.max_pairs_listed", -1, ">= 0"),
    ("data.name", "../raw/demo", "plain folder name"),
    ("data.name", "raw/demo", "plain folder name"),
    ("data.name", "raw\\demo", "plain folder name"),
    ("data.name", "..", "plain folder name"),
    ("data.name", ".hidden", "plain folder name"),
    ("data.name", "", "plain folder name"),
]


ISSUE_14_ENCODER_OPTIONS = [  # embed.<name>.<option>, checked by the kind's options dataclass
    ("logmel", "hop_length", 0, ">= 1"),
    ("logmel", "sample_rate", -16000, ">= 1"),
    ("logmel", "n_mels", 0, ">= 1"),
    ("frames", "fps", 0, ">= 1"),
    ("frames", "size", 0, ">= 1"),
]


@pytest.mark.parametrize(("key", "value", "allowed"), ISSUE_14)
def test_each_bad_value_of_issue_14_names_the_key_and_the_range(key, value, allowed):
    with pytest.raises(ConfigError) as error:
        Params.from_dict(nested(tuple(key.split(".")), value))
    message = str(error.value)
    assert f"params.yaml: {key} must" in message and allowed in message


@pytest.mark.parametrize(("kind", "option", "value", "allowed"), ISSUE_14_ENCODER_OPTIONS)
def test_each_bad_encoder_option_of_issue_14_names_the_key_and_the_range(
    kind, option, value, allowed
):
    with pytest.raises(ConfigError) as error:
        make(kind, **{option: value})
    message = str(error.value)
    assert f"params.yaml: embed.{kind}.{option} must" in message and allowed in message
