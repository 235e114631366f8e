"""The dataset format contract, run on every registered format (timm's manner): a format is
tested the day it is registered. A new format needs its module in src/avgate/datasets/, its
section in params.yaml and its fixture in tests/formats.py `FIXTURES` (docs/extending.md)."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import pandas as pd
import pytest
import yaml

from avgate.datasets import (
    FORMATS,
    DatasetError,
    DatasetFormat,
    NoOptions,
    Records,
    format_named,
    load_records,
    options_of,
    options_table_markdown,
    register,
)
from avgate.datasets import formats as format_names
from avgate.datasets.checks import COLUMNS, OPTIONAL_COLUMNS, make_records
from avgate.declare import ConfigError, declared, param
from avgate.stages.ingest import MANIFEST_COLUMNS
from avgate.stages.ingest import OPTIONAL_COLUMNS as MANIFEST_OPTIONAL
from tests import formats
from tests.scratch import REPO

EVERY_FORMAT = pytest.mark.parametrize("name", format_names())


def test_every_format_has_a_fixture():
    missing = sorted(set(format_names()) - set(formats.FIXTURES))
    assert missing == [], f"add a Fixture for {missing} to tests/formats.py FIXTURES"


@EVERY_FORMAT
def test_loads_its_fixture_to_records_with_the_manifest_columns(name, tmp_path):
    fixture = formats.FIXTURES[name]
    expected = fixture.write(tmp_path)
    before = formats.snapshot(tmp_path)
    records = load_records(name, tmp_path, **fixture.options)
    assert formats.snapshot(tmp_path) == before  # never writes under the root
    assert isinstance(records, Records)
    frame = records.frame
    optional = [c for c in OPTIONAL_COLUMNS if c in frame]
    assert frame.columns.tolist() == [*COLUMNS, *optional]
    assert set(frame.columns) <= set(MANIFEST_COLUMNS + MANIFEST_OPTIONAL)  # ingest keeps each
    pd.testing.assert_frame_equal(frame, expected)
    assert frame["clip_id"].is_unique and frame["clip_id"].is_monotonic_increasing
    assert all(Path(path).is_relative_to(tmp_path) for path in frame["path"])
    assert all(frame[c].dtype == "int64" for c in ("start_s", "end_s", "fold") if c in frame)


@EVERY_FORMAT
def test_refuses_a_malformed_fixture_naming_the_file(name, tmp_path):
    fixture = formats.FIXTURES[name]
    fixture.write(tmp_path)
    spoiled = fixture.spoil(tmp_path)
    before = formats.snapshot(tmp_path)
    with pytest.raises(DatasetError) as error:
        load_records(name, tmp_path, **fixture.options)
    assert str(spoiled) in str(error.value)
    assert formats.snapshot(tmp_path) == before


@EVERY_FORMAT
def test_an_empty_or_missing_folder_is_refused_with_the_layout(name, tmp_path):
    layout = FORMATS[name].layout
    with pytest.raises(DatasetError) as error:
        load_records(name, tmp_path)
    assert layout in str(error.value)
    with pytest.raises(DatasetError) as error:
        load_records(name, tmp_path / "nowhere")
    assert f"{tmp_path / 'nowhere'}: no such folder; a {name} dataset needs {layout}" in str(
        error.value
    )


@EVERY_FORMAT
def test_declares_its_layout_group_fix_and_options_with_meanings(name):
    cls = FORMATS[name]
    assert cls.name == name and format_named(name) is cls
    assert cls.layout.strip() and cls.group_fix.strip()
    defaults = cls.options_type()  # every option has a default
    for item in declared(cls.options_type, ("data", name)):
        assert item.key.startswith(f"data.{name}.") and item.spec.meaning.strip(), item.key
        value = functools.reduce(getattr, item.path[2:], defaults)
        assert all(rule.ok(value) for rule in item.spec.rules), f"{item.key}'s default breaks it"
    assert options_of(name, {}) == defaults
    assert options_of(name, dataclasses.asdict(defaults)) == defaults
    with pytest.raises(ConfigError, match=rf"unknown key\(s\) \['no_such_option'\] in data.{name}"):
        options_of(name, {"no_such_option": 1})


@EVERY_FORMAT
def test_lives_in_its_own_module(name):
    """Name = module: `data.format: csv` is src/avgate/datasets/csv.py, options beside it."""
    cls = FORMATS[name]
    assert cls.__module__ == f"avgate.datasets.{name}"
    assert (REPO / "src/avgate/datasets" / f"{name}.py").is_file()
    assert cls.options_type.__module__ in (cls.__module__, NoOptions.__module__)


@EVERY_FORMAT
def test_params_yaml_has_its_section_at_the_defaults(name):
    """dvc.yaml's ingest stage depends on `data.${data.format}`, which DVC requires to exist."""
    data = yaml.safe_load((REPO / "params.yaml").read_text())["data"]
    assert name in data, f"params.yaml: add the section data.{name} (`{{}}` without options)"
    assert options_of(name, data[name]) == FORMATS[name].options_type()


def test_the_ingest_stage_depends_on_the_section_of_its_format():
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["ingest"]
    assert "data.${data.format}" in stage["params"]


def test_docs_format_options_table_is_the_rendering_of_the_declarations():
    doc = (REPO / "docs/params.md").read_text()
    start = doc.index("<!-- format options table: generated by")
    table = doc[start : doc.index("<!-- end of format options table -->")].split("\n", 1)[1]
    assert table.strip() == options_table_markdown().strip(), (
        "docs/params.md's format options table is stale: paste the output of .venv/bin/python "
        "-c 'from avgate.datasets import options_table_markdown as t; print(t())'"
    )


def test_the_csv_module_does_not_shadow_the_standard_library():
    import csv

    from avgate.datasets import checks

    assert checks.csv is csv and hasattr(csv, "reader") and not csv.__name__.startswith("avgate")


# --- the registry refuses what breaks the contract --------------------------------------------


@pytest.fixture
def registry():
    saved = dict(FORMATS)
    yield FORMATS
    FORMATS.clear()
    FORMATS.update(saved)


@dataclasses.dataclass(frozen=True)
class TinyOptions:
    label: str = param("tone", "the label of every clip")


class Tiny(DatasetFormat):
    """Every .wav under the root, one label, each file its own group."""

    layout = "<file>.wav"
    group_fix = "there is none"
    options_type = TinyOptions

    def load(self, root: Path, options: TinyOptions) -> Records:
        paths = sorted(root.glob("*.wav"))
        frame = pd.DataFrame({"clip_id": [p.stem for p in paths], "path": list(map(str, paths))})
        frame["label"] = options.label
        frame["group"] = frame["clip_id"]
        return make_records(frame, [])


def test_a_format_registered_outside_the_package_loads_by_name(registry, tmp_path):
    register("tiny")(Tiny)
    formats.write_tone(tmp_path / "a.wav", 300.0)
    records = load_records("tiny", tmp_path, label="beep")
    assert records.frame[["clip_id", "label", "group"]].to_numpy().tolist() == [["a", "beep", "a"]]


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"layout": ""}, TypeError, "Tiny.layout must be a non-empty string"),
        ({"group_fix": None}, TypeError, "Tiny.group_fix must be a non-empty string"),
        ({"options_type": dict}, TypeError, "options_type must be a dataclass of its options"),
        (
            {"options_type": dataclasses.make_dataclass("Loose", [("k", int, 1)])},
            TypeError,
            "options_type Loose must be frozen",
        ),
        (
            {"options_type": dataclasses.make_dataclass("Bare", [("k", int, 1)], frozen=True)},
            TypeError,
            "declare ['k'] with avgate.declare.param",
        ),
    ],
)
def test_registering_a_class_that_breaks_the_contract_fails(registry, change, error, message):
    broken = type("Tiny", (Tiny,), change)
    with pytest.raises(error) as raised:
        register("tiny")(broken)
    assert message in str(raised.value) and "tiny" not in FORMATS


def test_registering_a_format_without_load_fails(registry):
    class NoLoad(DatasetFormat):
        layout, group_fix = "x", "y"

    with pytest.raises(TypeError, match=r"NoLoad does not implement load\(self, root, options\)"):
        register("no_load")(NoLoad)


def test_registering_a_taken_or_unusable_name_or_a_non_format_fails(registry):
    with pytest.raises(ValueError, match="'csv' is registered twice"):
        register("csv")(Tiny)
    with pytest.raises(ValueError, match="'my-format' must be a Python identifier"):
        register("my-format")(Tiny)
    with pytest.raises(TypeError, match="is not a DatasetFormat"):
        register("plain")(dict)  # type: ignore[arg-type]
    assert FORMATS["csv"] is not Tiny and "my-format" not in FORMATS


def test_a_load_without_the_contract_columns_is_a_plugin_bug(registry, tmp_path):
    class NoGroup(Tiny):
        def load(self, root: Path, options: TinyOptions) -> Records:
            frame = pd.DataFrame({"clip_id": ["a"], "path": [str(root / "a.wav")], "label": ["x"]})
            return Records(frame, [])

    register("no_group")(NoGroup)
    with pytest.raises(TypeError, match=r"'no_group': load must return .* missing \['group'\]"):
        load_records("no_group", tmp_path)
