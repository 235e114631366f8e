"""The pretrained-model encoders, run on tiny randomly initialised models saved to disk."""

import json
import time
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from avgate.config import EmbedParams
from avgate.declare import ConfigError
from avgate.encoders.crepe import CrepeEncoder
from avgate.encoders.hf_audio import HFAudioEncoder
from avgate.encoders.hf_vision import HFVisionEncoder
from avgate.encoders.registry import build, make

RATE = 16000
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
CONV = dict(  # a 2-layer CNN front end at 50 frames per second, as in the real models
    conv_dim=(16, 16),
    conv_kernel=(40, 8),
    conv_stride=(40, 8),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
)
CLIP_VISION = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    image_size=32,
    patch_size=8,
)
CLIP_PREPROCESSOR = {
    "image_processor_type": "CLIPImageProcessor",
    "do_resize": True,
    "size": {"shortest_edge": 32},
    "do_center_crop": True,
    "crop_size": {"height": 32, "width": 32},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
}


def save_audio_models(root: Path) -> None:
    from transformers import (
        ASTConfig,
        ASTFeatureExtractor,
        ASTModel,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Model,
        WavLMConfig,
        WavLMModel,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperModel,
    )

    for seed, name in enumerate(("w2v", "w2v-other")):
        torch.manual_seed(seed)
        Wav2Vec2Model(Wav2Vec2Config(**SMALL, **CONV)).save_pretrained(root / name)
    WavLMModel(WavLMConfig(**SMALL, **CONV, num_buckets=16)).save_pretrained(root / "wavlm")
    for name in ("w2v", "w2v-other", "wavlm"):
        Wav2Vec2FeatureExtractor(sampling_rate=RATE).save_pretrained(root / name)
    ast = ASTConfig(**SMALL, num_mel_bins=32, max_length=100, frequency_stride=16, time_stride=16)
    ASTModel(ast).save_pretrained(root / "ast")
    ASTFeatureExtractor(num_mel_bins=32, max_length=100).save_pretrained(root / "ast")
    whisper = WhisperConfig(
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_mel_bins=16,
        max_source_positions=100,  # 2 s of input instead of 30: a second is half of it
        max_target_positions=8,
        vocab_size=16,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=3,
    )
    WhisperModel(whisper).save_pretrained(root / "whisper")
    WhisperFeatureExtractor(feature_size=16, chunk_length=2).save_pretrained(root / "whisper")
    save_clap(root / "clap")


def save_clap(folder: Path) -> None:
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    audio = dict(
        window_size=4,
        num_mel_bins=16,
        spec_size=64,
        patch_size=4,
        patch_stride=(4, 4),
        hidden_size=32,
        patch_embeds_hidden_size=16,
        depths=(1, 1),
        num_attention_heads=(2, 2),
        num_hidden_layers=2,
    )
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=16)).save_pretrained(
        folder
    )
    ClapFeatureExtractor(
        feature_size=16,
        sampling_rate=RATE,
        hop_length=160,
        max_length_s=1,
        fft_window_size=400,
        frequency_max=8000,
        truncation="rand_trunc",
    ).save_pretrained(folder)


def save_vision_models(root: Path) -> None:
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(**CLIP_VISION)).save_pretrained(root / "clip-vision")
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    config = CLIPConfig(text_config=text, vision_config=CLIP_VISION, projection_dim=24)
    CLIPModel(config).save_pretrained(root / "clip")
    for name in ("clip-vision", "clip"):
        (root / name / "preprocessor_config.json").write_text(json.dumps(CLIP_PREPROCESSOR))


def write_wav(path: Path, seconds: int, seed: int) -> Path:
    """A 220 Hz sine plus noise; the sine's level changes every second."""
    rng = np.random.default_rng(seed)
    t = np.arange(seconds * RATE) / RATE
    level = np.repeat(rng.uniform(0.2, 0.8, seconds), RATE)
    sf.write(path, level * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.normal(size=len(t)), RATE)
    return path


def write_mp4(path: Path, seconds: int, width: int, height: int, fps: int = 4) -> Path:
    """A square moving across a gradient, H.264 in MP4."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options={"x264-params": "mbtree=0"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        for i in range(seconds * fps):
            rgb = np.zeros((height, width, 3), np.uint8)
            rgb[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)
            x = 2 * i % (width - 8)
            rgb[8:16, x : x + 8] = (255, 255, 0)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    save_audio_models(root)
    save_vision_models(root)
    return root


@pytest.fixture(scope="module")
def media_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    return {
        "wav3": write_wav(root / "three.wav", 3, seed=0),
        "wav2": write_wav(root / "two.wav", 2, seed=1),
        "wide": write_mp4(root / "wide.mp4", 3, 64, 48),
        "tall": write_mp4(root / "tall.mp4", 2, 48, 64),
    }


def audio(model: Path, **options) -> HFAudioEncoder:
    """An hf_audio encoder of the model saved in `model`, on the CPU."""
    return make("hf_audio", model=str(model), **options)


def vision(model: Path, **options) -> HFVisionEncoder:
    """An hf_vision encoder of the model saved in `model`, on the CPU."""
    return make("hf_vision", model=str(model), **options)


@pytest.fixture(scope="module")
def w2v(models: Path) -> HFAudioEncoder:
    return audio(models / "w2v", layer="all")


# hf_audio


@pytest.mark.parametrize("name", ["w2v", "wavlm", "ast", "whisper", "clap"])
def test_audio_shape_dtype_and_determinism(models, media_files, name):
    encoder = audio(models / name)
    first = encoder.embed_seconds(media_files["wav3"], 3)
    assert first.shape == (3, encoder.dim) == (3, 32)
    assert first.dtype == np.float32 and np.isfinite(first).all()
    np.testing.assert_array_equal(first, encoder.embed_seconds(media_files["wav3"], 3))
    assert np.abs(first[0] - first[1]).max() > 1e-4  # seconds with different audio differ


def test_audio_layer_choices_and_all_is_the_layers_side_by_side(models, media_files, w2v):
    wave = w2v.load(media_files["wav3"], 3)
    everything = w2v.embed([wave])[0]
    assert (w2v.n_layers, w2v.layer_dim, w2v.dim) == (3, 32, 96)
    assert everything.shape == (3, 96)
    for index in range(3):
        single = audio(models / "w2v", layer=index)
        assert (single.n_layers, single.dim) == (1, 32)
        block = everything.reshape(3, w2v.n_layers, w2v.layer_dim)[:, index]
        np.testing.assert_allclose(single.embed([wave])[0], block, rtol=1e-5, atol=1e-6)
    last = audio(models / "w2v", layer="last").embed([wave])[0]
    np.testing.assert_allclose(last, everything[:, 64:], rtol=1e-5, atol=1e-6)


def test_audio_changing_one_second_changes_only_its_row(media_files, w2v):
    wave = w2v.load(media_files["wav3"], 3)
    changed = wave.copy()
    changed[RATE : 2 * RATE] = np.random.default_rng(5).normal(0, 0.3, RATE)
    before, after = w2v.embed([wave, changed])
    np.testing.assert_allclose(before[[0, 2]], after[[0, 2]], rtol=1e-5, atol=1e-6)
    assert np.abs(before[1] - after[1]).max() > 1e-3


@pytest.mark.parametrize(("name", "layer"), [("w2v", "all"), ("ast", "all"), ("clap", "last")])
def test_audio_batch_equals_each_clip_alone(models, media_files, name, layer):
    encoder = audio(models / name, layer=layer)
    waves = [encoder.load(media_files["wav3"], 3), encoder.load(media_files["wav2"], 2)]
    together = encoder.embed(waves)
    assert [a.shape for a in together] == [(3, encoder.dim), (2, encoder.dim)]
    for wave, row in zip(waves, together, strict=True):
        np.testing.assert_allclose(row, encoder.embed([wave])[0], rtol=1e-4, atol=1e-5)
    assert encoder.embed([]) == []


def test_audio_load_pads_with_silence_and_trims(media_files, w2v):
    assert w2v.load(media_files["wav2"], 4).shape == (4 * RATE,)
    assert not w2v.load(media_files["wav2"], 4)[2 * RATE :].any()
    np.testing.assert_array_equal(
        w2v.load(media_files["wav3"], 1), w2v.load(media_files["wav3"], 3)[:RATE]
    )


def test_audio_rows_match_a_direct_transformers_call(models, media_files, w2v):
    from transformers import AutoFeatureExtractor, AutoModel, ClapModel, WhisperModel

    wave = w2v.load(media_files["wav3"], 3)
    window = wave[2 * RATE :]
    extractor = AutoFeatureExtractor.from_pretrained(models / "w2v")
    model = AutoModel.from_pretrained(models / "w2v").eval()
    with torch.inference_mode():
        inputs = extractor(window, sampling_rate=RATE, return_tensors="pt")
        states = model(**inputs, output_hidden_states=True).hidden_states
    expected = torch.cat([s.mean(dim=1) for s in states], dim=1)[0].numpy()
    np.testing.assert_allclose(w2v.embed([wave])[0][2], expected, rtol=1e-4, atol=1e-5)

    encoder = audio(models / "whisper")
    extractor = AutoFeatureExtractor.from_pretrained(models / "whisper")
    whisper = WhisperModel.from_pretrained(models / "whisper").eval()
    with torch.inference_mode():
        features = extractor(window, sampling_rate=RATE, return_tensors="pt").input_features
        states = whisper.encoder(features).last_hidden_state
    assert states.shape[1] == 100  # the second padded to 2 s: only its first half is pooled
    expected = states[0, :50].mean(dim=0).numpy()
    np.testing.assert_allclose(encoder.embed([wave])[0][2], expected, rtol=1e-4, atol=1e-5)

    encoder = audio(models / "clap")
    extractor = AutoFeatureExtractor.from_pretrained(models / "clap")
    clap = ClapModel.from_pretrained(models / "clap").eval()
    with torch.inference_mode():
        inputs = extractor(window, sampling_rate=RATE, return_tensors="pt")
        expected = clap.audio_model(**inputs).pooler_output[0].numpy()
    np.testing.assert_allclose(encoder.embed([wave])[0][2], expected, rtol=1e-4, atol=1e-5)


def test_audio_identity_names_what_decides_the_arrays(models, w2v):
    same = audio(models / "w2v", layer="all")
    assert same.identity() == w2v.identity()
    assert json.loads(json.dumps(w2v.identity())) == w2v.identity()
    assert w2v.identity()["weights"] == "local folder"
    others = [
        audio(models / "w2v", layer=1),
        audio(models / "w2v", layer="last"),
        audio(models / "w2v-other", layer="all"),  # same config, other weights
    ]
    identities = [w2v.identity()] + [o.identity() for o in others]
    assert len({json.dumps(i, sort_keys=True) for i in identities}) == 4
    assert others[2].identity()["weights_sha256"] != w2v.identity()["weights_sha256"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"layer": 3}, r"embed\.hf_audio\.layer 3 is out of range.*0\.\.2"),
        ({"layer": "first"}, r"embed\.hf_audio\.layer must be 'last', 'all' or a hidden-state"),
        ({"layer": -1}, r"embed\.hf_audio\.layer must be .*, got '-1'"),
        ({"layer": 1.5}, r"embed\.hf_audio\.layer must be a string, got 1\.5"),
        ({"sample_rate": 22050}, r"embed\.hf_audio\.sample_rate 22050 differs.*set it to 16000"),
        ({"sample_rate": 0}, r"embed\.hf_audio\.sample_rate must be >= 1"),
        ({"revision": ""}, r"embed\.hf_audio\.revision must not be empty"),
        ({"device": "quantum"}, r"embed\.device 'quantum' is not a torch device"),
    ],
)
def test_audio_bad_params_name_the_key(models, params, message):
    with pytest.raises(ConfigError, match=message):
        audio(models / "w2v", **params)


def test_audio_unloadable_model_names_the_key(models, tmp_path):
    with pytest.raises(ConfigError, match=r"embed\.hf_audio\.model '.*' .* could not be loaded"):
        audio(tmp_path)
    with pytest.raises(ConfigError, match=r"embed\.hf_audio\.layer 'all': a CLAP audio tower"):
        audio(models / "clap", layer="all")
    with pytest.raises(ConfigError, match=r"embed\.hf_audio\.model is missing; add it"):
        make("hf_audio")


@pytest.mark.parametrize("offline", ["HF_HUB_OFFLINE", "no network"])
def test_an_uncached_hub_id_fails_at_once_offline_naming_the_encoder_key(offline, monkeypatch):
    from huggingface_hub import constants

    if offline == "HF_HUB_OFFLINE":
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    else:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", "https://hub.invalid")
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        build("wavlm", EmbedParams(encoders={"wavlm": "hf_audio"},
                                   sections={"wavlm": {"model": "org/not-cached"}}))  # fmt: skip
    assert time.perf_counter() - started < 10, "no retries against an unreachable hub"
    message = str(caught.value)
    assert "embed.wavlm.model 'org/not-cached'" in message and "unreachable" in message


# hf_vision


@pytest.fixture(scope="module")
def clip_vision(models: Path) -> HFVisionEncoder:
    return vision(models / "clip-vision", fps=2, size=32)


def test_vision_shape_dtype_determinism_and_features(models, media_files, clip_vision):
    first = clip_vision.embed_seconds(media_files["wide"], 3)
    assert (first.shape, first.dtype) == ((3, 32), np.float32)
    assert clip_vision.features == "pooler_output"
    np.testing.assert_array_equal(first, clip_vision.embed_seconds(media_files["wide"], 3))
    assert np.abs(first[0] - first[2]).max() > 1e-4  # the square moved
    clip = vision(models / "clip", fps=2, size=32)
    assert (clip.features, clip.dim) == ("image_features", 24)
    assert clip.embed_seconds(media_files["wide"], 3).shape == (3, 24)


def test_vision_load_resizes_crops_and_fits_length(media_files, clip_vision):
    frames = clip_vision.load(media_files["wide"], 4)  # 3 s of video: the last frame repeats
    assert (frames.shape, frames.dtype) == ((8, 32, 32, 3), np.uint8)
    np.testing.assert_array_equal(frames[6], frames[7])
    assert clip_vision.load(media_files["tall"], 2).shape == (4, 32, 32, 3)


def test_vision_rows_are_mean_frame_features_of_a_direct_call(models, media_files, clip_vision):
    from transformers import CLIPModel, CLIPVisionModel

    frames = clip_vision.load(media_files["wide"], 3)
    pixels = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    mean, std = (
        torch.tensor(CLIP_PREPROCESSOR[k]).view(3, 1, 1) for k in ("image_mean", "image_std")
    )
    pixels = (pixels - mean) / std
    with torch.inference_mode():
        tower = CLIPVisionModel.from_pretrained(models / "clip-vision").eval()
        pooled = tower(pixel_values=pixels).pooler_output
        clip = CLIPModel.from_pretrained(models / "clip").eval()
        projected = clip.get_image_features(pixel_values=pixels).pooler_output
    rows = clip_vision.embed([frames])[0]
    np.testing.assert_allclose(rows[1], pooled[2:4].mean(dim=0).numpy(), rtol=1e-4, atol=1e-5)
    encoder = vision(models / "clip", fps=2, size=32)
    rows = encoder.embed([frames])[0]
    np.testing.assert_allclose(rows[2], projected[4:6].mean(dim=0).numpy(), rtol=1e-4, atol=1e-5)


def test_vision_batch_equals_each_clip_alone(media_files, clip_vision):
    clips = [clip_vision.load(media_files["wide"], 3), clip_vision.load(media_files["tall"], 2)]
    together = clip_vision.embed(clips)
    assert [a.shape for a in together] == [(3, 32), (2, 32)]
    for frames, rows in zip(clips, together, strict=True):
        np.testing.assert_allclose(rows, clip_vision.embed([frames])[0], rtol=1e-4, atol=1e-5)


def test_vision_sizes_cache_side_by_side(models, media_files, clip_vision):
    larger = vision(models / "clip-vision", fps=2, size=48)  # interpolated
    assert larger.load(media_files["wide"], 3).shape == (6, 48, 48, 3)
    assert larger.embed_seconds(media_files["wide"], 3).shape == (3, 32)
    again = vision(models / "clip-vision", fps=2, size=32)
    assert again.identity() == clip_vision.identity()
    assert larger.identity()["size"] == 48 and larger.identity() != clip_vision.identity()
    assert vision(models / "clip", size=32).identity() != clip_vision.identity()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"fps": 0}, r"embed\.hf_vision\.fps must be >= 1"),
        ({"size": 1.5}, r"embed\.hf_vision\.size must be an integer, got 1\.5"),
        ({"device": "cuda:x"}, r"embed\.device 'cuda:x'"),
    ],
)
def test_vision_bad_params_name_the_key(models, params, message):
    with pytest.raises(ConfigError, match=message):
        vision(models / "clip-vision", **params)


def test_vision_model_without_preprocessor_names_the_key(models, tmp_path):
    with pytest.raises(ConfigError, match=r"embed\.hf_vision\.model '.*' .* preprocessor"):
        vision(tmp_path)


# crepe


@pytest.fixture(scope="module")
def crepe() -> CrepeEncoder:
    return make("crepe", hop_ms=20)


def test_crepe_shape_dtype_determinism_and_locality(media_files, crepe):
    wave = crepe.load(media_files["wav3"], 3)
    first = crepe.embed([wave])[0]
    assert (first.shape, first.dtype) == ((3, 256), np.float32)
    np.testing.assert_array_equal(first, crepe.embed_seconds(media_files["wav3"], 3))
    changed = wave.copy()
    changed[RATE : 2 * RATE] = np.sin(2 * np.pi * 660 * np.arange(RATE) / RATE)
    after = crepe.embed([changed])[0]
    np.testing.assert_allclose(first[[0, 2]], after[[0, 2]], rtol=1e-5, atol=1e-6)
    assert np.abs(first[1] - after[1]).max() > 1e-3


def test_crepe_matches_torchcrepe_embed_on_one_second(media_files, crepe):
    import torchcrepe

    wave = crepe.load(media_files["wav3"], 1)
    with torch.inference_mode():
        reference = torchcrepe.embed(torch.from_numpy(wave)[None], RATE, 320, model="tiny")
    expected = reference[0, :50].reshape(50, -1).mean(dim=0).numpy()  # frames centred in 0..1 s
    np.testing.assert_allclose(crepe.embed([wave])[0][0], expected, rtol=1e-4, atol=1e-5)


def test_crepe_batch_and_identity(media_files, crepe):
    waves = [crepe.load(media_files["wav3"], 3), crepe.load(media_files["wav2"], 2)]
    together = crepe.embed(waves)
    for wave, rows in zip(waves, together, strict=True):
        np.testing.assert_allclose(rows, crepe.embed([wave])[0], rtol=1e-4, atol=1e-5)
    identity = crepe.identity()
    assert identity == make("crepe", model="tiny", hop_ms=20).identity()
    assert identity != make("crepe", hop_ms=10).identity()
    assert identity["model"] == "tiny" and len(identity["weights_sha256"]) == 64
    assert json.loads(json.dumps(identity)) == identity


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"model": "huge"}, r"embed\.crepe\.model must be one of \['tiny', 'full'\]"),
        ({"hop_ms": 7}, r"embed\.crepe\.hop_ms must be a positive integer that divides 1000"),
        ({"device": "quantum"}, r"embed\.device 'quantum'"),
    ],
)
def test_crepe_bad_params_name_the_key(params, message):
    with pytest.raises(ConfigError, match=message):
        make("crepe", **params)


def test_embed_stage_and_heads_run_on_saved_wavlm_ast_and_clip(project, models):
    from avgate.stages import embed, ingest, split
    from tests.conftest import train_every_seed, write_params

    kinds = {"wavlm": "hf_audio", "ast": "hf_audio", "clipv": "hf_vision"}
    sections = {
        "wavlm": {"model": str(models / "wavlm"), "layer": "all"},
        "ast": {"model": str(models / "ast"), "layer": "last"},
        "clipv": {"model": str(models / "clip-vision"), "fps": 1, "size": 32},
    }
    embed_params = {"encoders": kinds, "workers": 1, "device": "cpu", "batch_seconds": 8}
    train_params = {"seeds": [0], "fusion": "gated", "max_epochs": 4}
    params = write_params(
        project,
        {"embed": {**embed_params, "dtype": "float16", **sections}, "train": train_params},
    )
    ingest.run(params)
    split.run(params)
    metas = {name: embed.run(params, name) for name in sections}
    assert (metas["wavlm"]["n_layers"], metas["wavlm"]["layer_dim"]) == (3, 32)
    assert metas["ast"]["architecture"] == "ASTModel" and metas["ast"]["dim"] == 32
    assert metas["wavlm"]["modality"] == "audio" and metas["clipv"]["modality"] == "visual"
    train_every_seed(params)
    head = json.loads((project / "models/seed0/head.json").read_text())
    blocks = [(b["encoder"], b["n_layers"]) for b in head["architecture"]["blocks"]]
    assert blocks == [("wavlm", 3), ("ast", 1), ("clipv", 1)]
    assert set(head["gates"]) == {"audio", "visual"}
    table = pd.read_parquet(project / "predictions/seed0/test.parquet")
    assert len(table) and np.isfinite(table.filter(like="logit_").to_numpy()).all()
    for name, meta in metas.items():
        array = np.load(project / f"data/embeddings/{name}/test.npy")
        assert array.dtype == np.float16 and array.shape == (meta["rows"]["test"], meta["dim"])
        assert np.isfinite(array.astype(np.float32)).all()
    wavlm = json.loads((project / "data/embeddings/wavlm/meta.json").read_text())
    assert wavlm == json.loads(json.dumps(metas["wavlm"]))  # the identity is the whole meta
    assert metas["wavlm"]["encoder"] == "hf_audio" and "model" not in metas["wavlm"]
    bad = params.embed.sections | {"wavlm": sections["wavlm"] | {"layer": 7}}
    with pytest.raises(ConfigError, match=r"embed\.wavlm\.layer 7 is out of range"):
        build("wavlm", replace(params.embed, sections=bad))
    with pytest.raises(ConfigError, match=r"embed\.wavlm\.model must not be empty"):
        build("wavlm", replace(params.embed, sections={"wavlm": {"model": ""}}))
    with pytest.raises(ConfigError, match="unknown encoder kind 'hf_text'"):
        build("wavlm", replace(params.embed, encoders={"wavlm": "hf_text"}))


def test_demo_wavlm_is_byte_identical_per_seed_and_loads_as_an_encoder(tmp_path, media_files):
    from avgate.demo.encoder import write_demo_wavlm

    first, again, other = (
        write_demo_wavlm(tmp_path / n, s) for n, s in (("a", 0), ("b", 0), ("c", 1))
    )
    weights = [(f / "model.safetensors").read_bytes() for f in (first, again, other)]
    assert weights[0] == weights[1] != weights[2]
    encoder = audio(first, layer="last")
    rows = encoder.embed_seconds(media_files["wav3"], 3)
    assert rows.shape == (3, 64) and np.isfinite(rows).all()
