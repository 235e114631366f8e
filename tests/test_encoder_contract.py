"""The contract every registered encoder kind meets, checked the same way for each (timm's
registry-parametrised tests): it lives in src/avgate/encoders/<kind>.py, declares every option
with a meaning, embeds a fixture clip to `(seconds, dim)` finite float32 rows with
`n_layers * layer_dim == dim`, gives the same bytes every time, and states a JSON identity that
holds its options. A new kind needs an entry in FIXTURES (its options for the tiny fixture
models and which clip it reads); the test of a kind without one fails and says so."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from avgate.config import Params
from avgate.declare import REQUIRED, SPEC, ConfigError, param
from avgate.encoders.base import ENCODERS, Encoder, register
from avgate.encoders.hf_audio import HFAudioEncoder
from avgate.encoders.registry import encoder_class, kinds, make, options_table_markdown
from tests.scratch import REPO
from tests.test_hf_encoders import (
    CLIP_PREPROCESSOR,
    CLIP_VISION,
    CONV,
    RATE,
    SMALL,
    write_mp4,
    write_wav,
)

SECONDS = 3
KINDS = kinds()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random WavLM and CLIP vision tower, saved with save_pretrained."""
    from transformers import (
        CLIPVisionConfig,
        CLIPVisionModel,
        Wav2Vec2FeatureExtractor,
        WavLMConfig,
        WavLMModel,
    )

    root = tmp_path_factory.mktemp("contract-models")
    torch.manual_seed(0)
    WavLMModel(WavLMConfig(**SMALL, **CONV, num_buckets=16)).save_pretrained(root / "wavlm")
    Wav2Vec2FeatureExtractor(sampling_rate=RATE).save_pretrained(root / "wavlm")
    CLIPVisionModel(CLIPVisionConfig(**CLIP_VISION)).save_pretrained(root / "clip")
    (root / "clip" / "preprocessor_config.json").write_text(json.dumps(CLIP_PREPROCESSOR))
    return root


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("contract-media")
    return {
        "audio": write_wav(root / "clip.wav", SECONDS, seed=0),
        "visual": write_mp4(root / "clip.mp4", SECONDS, 64, 48),
    }


# kind -> its options for the fixture (given the saved models' folder)
FIXTURES: dict[str, Callable[[Path], dict]] = {
    "logmel": lambda models: {"n_mels": 32, "segments": 2},
    "frames": lambda models: {},
    "hf_audio": lambda models: {"model": str(models / "wavlm"), "layer": "all"},
    "hf_vision": lambda models: {"model": str(models / "clip"), "fps": 2, "size": 32},
    "crepe": lambda models: {"model": "tiny", "hop_ms": 20},
}


def fixture_encoder(kind: str, models: Path) -> Encoder:
    if kind not in FIXTURES:
        pytest.fail(f"encoder kind {kind!r} has no entry in FIXTURES of {__file__}: add one")
    return make(kind, **FIXTURES[kind](models))


@pytest.mark.parametrize("kind", KINDS)
def test_a_kind_lives_in_the_module_named_after_it(kind):
    cls = ENCODERS[kind]
    assert cls.kind == kind
    assert cls.__module__ == f"avgate.encoders.{kind}"
    assert Path(inspect.getfile(cls)) == REPO / "src" / "avgate" / "encoders" / f"{kind}.py"
    assert cls.options_type.__module__ == cls.__module__, "declare the options in the kind's module"


@pytest.mark.parametrize("kind", KINDS)
def test_every_option_is_declared_with_a_meaning_and_a_valid_default(kind):
    cls = ENCODERS[kind]
    assert cls.modality in ("audio", "visual")
    assert cls.options_type.__dataclass_params__.frozen
    fields = dataclasses.fields(cls.options_type)
    for field in fields:
        assert field.metadata[SPEC].meaning.strip(), f"{kind}.{field.name} has no meaning"
    required = {f.name: "x" for f in fields if f.default is REQUIRED}
    defaults = cls.check_options(required, f"embed.{kind}")  # every default meets its rules
    assert dataclasses.asdict(defaults).keys() == {f.name for f in fields}
    for option, reason in cls.not_in_identity.items():
        assert option in {f.name for f in fields} and reason.strip()


@pytest.mark.parametrize("kind", KINDS)
def test_a_kind_embeds_a_clip_to_its_dim_and_the_same_bytes_every_time(kind, models, clips):
    encoder = fixture_encoder(kind, models)
    clip = clips[encoder.modality]
    rows = encoder.embed_seconds(clip, SECONDS)
    assert rows.shape == (SECONDS, encoder.dim) and rows.dtype == np.float32
    assert np.isfinite(rows).all()
    assert encoder.n_layers * encoder.layer_dim == encoder.dim
    assert encoder.device == torch.device("cpu")
    assert encoder.embed_seconds(clip, SECONDS).tobytes() == rows.tobytes()
    again = fixture_encoder(kind, models)  # a fresh instance: the same weights, the same bytes
    assert again.embed([again.load(clip, SECONDS)])[0].tobytes() == rows.tobytes()
    shorter = encoder.embed([encoder.load(clip, 1), encoder.load(clip, SECONDS)])
    assert [r.shape for r in shorter] == [(1, encoder.dim), (SECONDS, encoder.dim)]


@pytest.mark.parametrize("kind", KINDS)
def test_a_kind_states_its_identity_with_its_options(kind, models):
    encoder = fixture_encoder(kind, models)
    identity = encoder.identity()
    assert json.loads(json.dumps(identity)) == identity
    assert identity["encoder"] == kind
    for option, value in dataclasses.asdict(encoder.options).items():
        if option not in encoder.not_in_identity:
            assert str(identity[option]) == str(value), f"identity() lacks {kind}.{option}"
    assert fixture_encoder(kind, models).identity() == identity


def test_the_docs_table_of_encoder_options_is_the_rendering_of_the_declarations():
    doc = (REPO / "docs/params.md").read_text()
    start = doc.index("<!-- encoder options table: generated by")
    table = doc[start : doc.index("<!-- end of encoder options table -->")].split("\n", 1)[1]
    assert table.strip() == options_table_markdown().strip(), (
        "docs/params.md's encoder options table is stale: paste the output of .venv/bin/python "
        "-c 'from avgate.encoders.registry import options_table_markdown as t; print(t())'"
    )


def test_building_one_encoder_imports_its_kind_and_no_other():
    code = (
        "import sys; from avgate.config import EmbedParams; "
        "from avgate.encoders.registry import build; build('frames', EmbedParams()); "
        "print(sorted(m for m in sys.modules if m.startswith('avgate.encoders.')))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = ["avgate.encoders.base", "avgate.encoders.frames", "avgate.encoders.registry"]
    assert run.stdout.strip() == str(loaded)


def test_the_embed_stage_depends_on_its_kinds_module_and_no_other_kind():
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["embed"]
    assert stage["foreach"] == "${embed.encoders}"
    body = stage["do"]
    assert body["cmd"] == "avgate embed --encoder ${key}"
    assert "src/avgate/encoders/${item}.py" in body["deps"]
    kind_files = {f"src/avgate/encoders/{kind}.py" for kind in KINDS}
    assert not kind_files & set(body["deps"]) and "src/avgate/encoders" not in body["deps"]
    assert {"embed.encoders.${key}", "embed.${key}"} <= set(body["params"])
    assert body["outs"] == ["data/embeddings/${key}"]


def test_the_repo_params_give_each_listed_encoder_a_section_its_kind_accepts():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    params = Params.from_dict(raw)
    for name, kind in params.embed.encoders.items():
        assert name in raw["embed"], f"params.yaml: embed.{name} is missing"
        encoder_class(kind).options_in(params.embed.encoders, params.embed.sections, name)
    lora = HFAudioEncoder.options_in(
        params.embed.encoders, params.embed.sections, params.train.lora.encoder
    )
    assert lora.model == "data/pretrained/demo-wavlm"


def test_a_section_used_as_another_kind_or_missing_names_the_key():
    embed = Params.from_dict({"embed": {"logmel": {}, "frames": {}}}).embed
    with pytest.raises(ConfigError, match=r"embed\.logmel must hold hf_audio options here, but"):
        HFAudioEncoder.options_in(embed.encoders, embed.sections, "logmel")
    with pytest.raises(ConfigError, match=r"there is no section embed\.wavlm \(the options of"):
        HFAudioEncoder.options_in(embed.encoders, embed.sections, "wavlm")


@dataclasses.dataclass(frozen=True)
class Declared:
    k: int = param(1, "how many")


@dataclasses.dataclass(frozen=True)
class Undeclared:
    k: int = 1


class Half(Encoder):
    options_type, modality = Declared, "audio"

    def load(self, path, n_seconds):
        return n_seconds


class Whole(Half):
    def embed(self, batch):
        return [np.zeros((n, 1), np.float32) for n in batch]


@pytest.mark.parametrize(
    ("kind", "cls", "error"),
    [
        ("half", Half, r"Half does not implement \['embed'\]"),
        ("whole", type("Odd", (Whole,), {"modality": "smell"}), "modality must be one of"),
        ("whole", type("Loose", (Whole,), {"options_type": Undeclared}), r"declare \['k'\]"),
        ("whole", type("Plain", (), {}), "is not an Encoder"),
        ("logmel", Whole, "'logmel' is registered twice"),
        ("not-a-name", Whole, "must be a Python identifier"),
    ],
)
def test_register_refuses_a_kind_that_breaks_the_contract(kind, cls, error):
    with pytest.raises((TypeError, ValueError), match=error):
        register(kind)(cls)
    assert kind not in ENCODERS or kind == "logmel"
