import re
import subprocess
import sys

import pytest
import yaml

from avgate.config import (
    EVENTNESS_METHODS,
    Params,
    params_table_markdown,
)
from avgate.declare import ConfigError, declared
from tests.scratch import REPO


def test_repo_params_load_with_their_stated_values():
    params = Params.load(REPO / "params.yaml")
    assert params.task.kind == "event"
    assert params.train.seeds == [0, 1, 2]
    assert params.embed.encoders == {
        "logmel": "logmel", "frames": "frames", "frames_low": "frames", "frames_high": "frames"
    }  # fmt: skip
    assert params.budget.policy == "uniform" and params.budget.encoders() == (
        "frames_low", "frames", "frames_high"
    )  # fmt: skip
    assert params.evaluate.primary_metric == "segment_accuracy"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"train": {"lr": "fast"}}, "train.lr must be a number, got 'fast'"),
        ({"train": {"seeds": [0, 0]}}, "train.seeds must not repeat a value"),
        ({"train": {"seeds": []}}, "train.seeds must not be empty"),
        ({"train": {"batch_size": 1.5}}, "train.batch_size must be an integer"),
        ({"train": {"lrr": 0.1}}, "unknown key(s) ['lrr'] in train"),
        ({"task": {"kind": "frame"}}, "task.kind must be one of ['event', 'clip']"),
        ({"split": {"test_fraction": 0.7}}, "split.test_fraction must lie in (0, 0.5)"),
        ({"demo": {"snr_db": [10, 0]}}, "demo.snr_db must be [low, high]"),
        ({"demo": {"event_seconds": [2, 12]}}, "demo.event_seconds must be [shortest, longest]"),
        ({"embed": {"encoders": ["logmel"]}}, "embed.encoders must be a mapping, got ['logmel']"),
        ({"embed": {"encoders": {"x": "hf-audio"}}}, "embed.encoders.x must be an encoder kind"),
        ({"bogus": {}}, "unknown key(s) ['bogus'] in top level"),
    ],
)
def test_bad_params_name_the_key(section, message):
    with pytest.raises(ConfigError) as error:
        Params.from_dict(section)
    assert message in str(error.value)


def test_missing_params_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="params.yaml: not found"):
        Params.load(tmp_path / "params.yaml")


def test_params_file_must_be_a_mapping(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ConfigError, match="must be a mapping of sections"):
        Params.load(path)


def test_demo_settings_only_the_generator_checks_are_reported_as_params_errors(tmp_path):
    from avgate.stages import demo_data

    params = Params.from_dict({"demo": {"n_groups": 4}})
    with pytest.raises(ConfigError, match="params.yaml: demo section: .*n_groups must be >= 6"):
        demo_data.run(params, tmp_path / "demo")
    assert not (tmp_path / "demo").exists()


def test_an_encoder_without_its_section_gets_the_exact_override_to_type():
    with pytest.raises(ConfigError) as caught:
        Params.from_dict({"embed": {"encoders": {"logmel": "logmel", "wavlm": "hf_audio"},
                                    "logmel": {}}})  # fmt: skip
    message = str(caught.value)
    assert "names 'wavlm' (kind hf_audio), which has no section embed.wavlm" in message
    assert "-S '+embed.encoders.wavlm=hf_audio' -S '+embed.wavlm={}'" in message
    section = {"encoders": {"wavlm": "hf_audio"}, "wavlm": {"model": "some/model"}}
    assert Params.from_dict({"embed": section}).embed.sections == {"wavlm": section["wavlm"]}


@pytest.mark.parametrize("name", ["a/b", "..", "-x", "workers", "a.b", ""])
def test_an_encoder_name_is_a_plain_name_and_not_a_shared_key(name):
    with pytest.raises(ConfigError, match=rf"embed\.encoders\.{re.escape(name)} must be named"):
        Params.from_dict({"embed": {"encoders": {name: "logmel"}}})


def test_config_leaves_the_options_and_the_kinds_modules_to_the_embed_stage():
    """A kind's options are checked by its module, which imports torch: config imports none, so
    no stage depends on the encoders' code through params (tests/test_encoder_contract.py)."""
    params = Params.from_dict({"embed": {"logmel": {"n_mels": True}, "frames": {}}})
    assert params.embed.sections["logmel"] == {"n_mels": True}
    code = "import sys, avgate.config; print([m for m in sys.modules if 'encoders' in m])"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def test_every_key_of_the_repo_params_is_declared_and_every_declared_key_is_there():
    def keys(section: dict, prefix: str) -> set[str]:
        found = set()
        for name, value in section.items():
            key = prefix + name
            if prefix == "embed." and name == "encoders":  # a mapping name: kind, one value
                found.add(key)
            elif prefix == "embed." and isinstance(value, dict):  # an encoder's options
                found.add(prefix + "<name>")
            elif prefix == "eventness." and name in EVENTNESS_METHODS:  # a method's options
                found.add(prefix + "<method>")
            elif prefix == "data." and isinstance(value, dict):  # a dataset format's options
                found.add(prefix + "<format>")
            elif isinstance(value, dict) and value:
                found |= keys(value, key + ".")
            else:
                found.add(key)
        return found

    in_file = keys(yaml.safe_load((REPO / "params.yaml").read_text()), "")
    assert in_file == {item.key for item in declared(Params)}


def test_docs_params_table_is_the_rendering_of_the_declarations():
    doc = (REPO / "docs/params.md").read_text()
    start = doc.index("<!-- params table: generated by avgate.config.params_table_markdown() -->")
    table = doc[start : doc.index("<!-- end of params table -->")].split("\n", 1)[1].strip()
    assert table == params_table_markdown().strip(), (
        "docs/params.md's table is stale: paste the output of "
        ".venv/bin/python -c 'from avgate.config import params_table_markdown as t; print(t())'"
    )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"data": {"name": "../raw/demo"}}, "data.name must be a plain folder name"),
        ({"data": {"group_pattern": "(x)"}}, "unknown key(s) ['group_pattern'] in data"),
        ({"train": {"lr": float("nan")}}, "train.lr must be a finite number, got nan"),
        ({"train": {"lr": 10**400}}, "train.lr must be a finite number"),
        ({"train": {"seeds": [0, -1]}}, "train.seeds[1] must be >= 0"),
        ({"demo": {"shape_opacity": [0.5, 1.5]}}, "demo.shape_opacity[1] must lie in [0, 1]"),
        ({"evaluate": {"primary_metric": ""}}, "evaluate.primary_metric must not be empty"),
        ({"train": {"finetune": "lora"}}, "when train.finetune is lora, got ''"),
    ],
)
def test_declared_rules_and_cross_key_rules_name_the_key(section, message):
    with pytest.raises(ConfigError) as error:
        Params.from_dict(section)
    assert message in str(error.value)


def test_a_clip_task_loads_with_a_clip_metric():
    params = Params.from_dict({"task": {"kind": "clip"}, "evaluate": {"primary_metric": "tail_f1"}})
    assert params.evaluate.primary_metric == "tail_f1"


def test_the_primary_metric_is_checked_by_the_metric_registry_not_when_params_load():
    """config does not import avgate.metrics (no stage depends on the metrics' code through
    params); the stages that score the primary metric check it (`metrics.check_primary`)."""
    code = "import sys, avgate.config; print('avgate.metrics' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"
    from avgate import metrics

    params = Params.from_dict({"task": {"kind": "clip"}})  # segment_accuracy: an event metric
    with pytest.raises(ConfigError, match=r"primary_metric must be one of \['accuracy',"):
        metrics.check_primary(params.task.kind, params.evaluate.primary_metric)


def test_config_imports_no_heavy_module():  # every process imports it before torch
    code = "import sys, avgate.config; print({'torch', 'pandas', 'sklearn'} & set(sys.modules))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "set()"
