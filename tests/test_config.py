import pytest
import yaml

from avgate.config import ConfigError, Params
from tests.scratch import REPO


def test_repo_params_load_with_their_stated_values():
    params = Params.load(REPO / "params.yaml")
    assert params.task.kind == "event"
    assert params.train.seeds == [0, 1, 2]
    assert params.embed.encoders == ["logmel", "frames"]
    assert params.evaluate.primary_metric == "segment_accuracy"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"train": {"lr": "fast"}}, "train.lr must be a number, got 'fast'"),
        ({"train": {"seeds": [0, 0]}}, "train.seeds must not repeat a seed"),
        ({"train": {"seeds": []}}, "train.seeds must list at least one seed"),
        ({"train": {"batch_size": 1.5}}, "train.batch_size must be an integer"),
        ({"train": {"lrr": 0.1}}, "unknown key(s) ['lrr'] in train"),
        ({"task": {"kind": "frame"}}, "task.kind must be one of ['event', 'clip']"),
        ({"split": {"test_fraction": 0.7}}, "split.test_fraction must lie strictly between"),
        ({"demo": {"snr_db": [10, 0]}}, "demo.snr_db must be [low, high]"),
        ({"demo": {"event_seconds": [2, 12]}}, "demo.event_seconds must be [shortest, longest]"),
        ({"embed": {"logmel": {"n_mels": True}}}, "embed.logmel.n_mels must be an integer"),
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
