import itertools
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avgate.config import EmbedParams
from avgate.declare import ConfigError
from avgate.demo.dataset import CLASSES, TEXTURES, DemoConfig, generate
from avgate.encoders.frames import DETAIL_LAGS, DETAIL_STEPS, detail
from avgate.encoders.registry import build, make


def two_tones(path, first_hz: float, second_hz: float, rate: int = 16000) -> None:
    """One second: the first half at first_hz, the second half at second_hz."""
    t = np.arange(rate // 2) / rate
    halves = [np.sin(2 * np.pi * f * t) for f in (first_hz, second_hz)]
    sf.write(path, 0.5 * np.concatenate(halves), rate)


def test_logmel_segments_keep_the_order_of_sounds_inside_a_second(tmp_path):
    two_tones(tmp_path / "up.wav", 300, 3000)
    two_tones(tmp_path / "down.wav", 3000, 300)
    summary = make("logmel", n_mels=32, segments=1)
    ordered = make("logmel", n_mels=32, segments=2)
    up, down = (summary.embed_seconds(tmp_path / f"{n}.wav", 1) for n in ("up", "down"))
    assert up.shape == (1, 64)
    assert np.abs(up - down).max() < 1.0  # mean and spread barely tell them apart
    up, down = (ordered.embed_seconds(tmp_path / f"{n}.wav", 1) for n in ("up", "down"))
    assert up.shape == (1, 96)
    assert np.abs(up[0, :32] - down[0, 32:64]).max() < 1.0  # the halves swap places
    assert np.abs(up[0, :32] - down[0, :32]).max() > 10.0


def test_logmel_checks_its_options_naming_the_encoder_section():
    with pytest.raises(ConfigError, match=r"embed\.logmel\.segments 3 must divide the 100 frames"):
        make("logmel", segments=3)
    with pytest.raises(ConfigError, match=r"embed\.mel\.hop_length 170 must divide sample_rate"):
        make("logmel", name="mel", hop_length=170)
    with pytest.raises(ConfigError, match=r"embed\.logmel\.n_mels must be an integer, got True"):
        make("logmel", n_mels=True)


@pytest.mark.parametrize(
    ("embed", "message"),
    [
        ({}, r"embed\.encoders has no encoder named 'wavlm'; it lists \['logmel', 'frames'\]"),
        ({"encoders": {"wavlm": "wavlm"}}, r"names unknown encoder kind 'wavlm'; known: \['crepe'"),
        ({"encoders": {"wavlm": "base"}}, r"names unknown encoder kind 'base'"),
        ({"encoders": {"wavlm": "hf_audio"}}, r"embed\.wavlm\.model is missing; add it"),
        ({"encoders": {"wavlm": "logmel"}, "sections": {"wavlm": {"n_mel": 3}}},
         r"unknown key\(s\) \['n_mel'\] in embed\.wavlm"),
        ({"encoders": {"wavlm": "logmel"}, "sections": {"wavlm": {"n_mels": 0}}},
         r"embed\.wavlm\.n_mels must be >= 1"),
    ],
)  # fmt: skip
def test_build_names_the_encoder_its_kind_and_its_section(embed, message):
    with pytest.raises(ConfigError, match=message):
        build("wavlm", EmbedParams(**embed))


def test_a_name_takes_its_kind_and_its_own_options():
    embed = EmbedParams(
        encoders={"fine": "logmel", "coarse": "logmel"},
        sections={"fine": {"n_mels": 32, "segments": 4}, "coarse": {"n_mels": 16}},
    )
    fine, coarse = build("fine", embed), build("coarse", embed)
    assert (fine.name, fine.kind, fine.dim) == ("fine", "logmel", 160)
    assert (coarse.name, coarse.kind, coarse.dim) == ("coarse", "logmel", 32)
    assert fine.identity()["encoder"] == "logmel" and fine.identity()["segments"] == 4


def test_frames_features_see_the_foreground_not_the_tint():
    encoder = make("frames")
    rng = np.random.default_rng(0)
    features = []
    for tint in ((40, 120, 200), (60, 200, 40)):
        clip = np.tile(np.array(tint, np.uint8), (8, 32, 32, 1))
        clip = np.clip(clip + rng.normal(0, 2, clip.shape), 0, 255).astype(np.uint8)
        clip[5:, 8:16, 8:16] = (230, 30, 30)  # a red square in the last 3 of 8 frames
        features.append(encoder.frame_features(clip))
    share = [f[:, 0] for f in features]  # foreground share comes first
    for s in share:
        assert s[:5].max() == 0 and s[5:].min() == pytest.approx(64 / 1024)
    colour = [f[5:, 1:4] for f in features]  # mean foreground colour: the square's, any tint
    np.testing.assert_allclose(colour[0], colour[1], atol=0.02)
    assert features[0].shape[1] == encoder.dim == 3 * 8 + 16 + 19


@pytest.mark.parametrize("size", [16, 32, 64])
def test_frames_dim_depends_on_the_options_not_the_size(size):
    encoder = make("frames", size=size)
    clip = np.random.default_rng(0).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    assert encoder.dim == make("frames").dim == 3 * 8 + 16 + 19
    assert encoder.frame_features(clip).shape == (3, encoder.dim)


def test_detail_is_the_mean_gap_between_foreground_pixels_along_each_direction():
    y, x = np.mgrid[0:8, 0:8]
    lines = (y % 2).astype(np.float32)[None]  # horizontal lines, period 2
    everywhere = np.ones((1, 8, 8), bool)
    gaps = detail(lines, everywhere).reshape(len(DETAIL_LAGS), len(DETAIL_STEPS))
    np.testing.assert_allclose(gaps, [[0, 1, 1, 1], [0, 0, 0, 0]])  # rows, columns, diagonals
    left = everywhere.copy()
    left[:, :, 4:] = False
    np.testing.assert_allclose(detail(lines, left), detail(lines[:, :, :4], everywhere[:, :, :4]))
    assert not detail(lines, ~everywhere).any()


TEXTURED = DemoConfig(
    n_clips=6, clip_seconds=3, min_event_seconds=3, max_event_seconds=3, visual_cue="texture"
)  # one clip per class, the event all along


@pytest.fixture(scope="module")
def textured(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("textured")
    generate(TEXTURED, root, progress=False)
    rows = (root / "Annotations.txt").read_text().splitlines()[1:]
    return {row.split("&")[0]: root / f"{row.split('&')[1]}.mp4" for row in rows}


def detail_gaps(textured: dict[str, Path], size: int) -> dict[tuple[str, str], float]:
    """The largest difference in mean detail features between each two classes' clips, with
    the clips decoded at size x size."""
    encoder = make("frames", size=size)
    mean = {
        name: encoder.frame_features(encoder.load(path, TEXTURED.clip_seconds))[:, -8:].mean(0)
        for name, path in textured.items()
    }
    return {
        (a, b): float(np.abs(mean[a] - mean[b]).max())
        for a, b in itertools.combinations(CLASSES, 2)
    }


def test_frames_see_the_demo_texture_at_full_size_and_lose_it_when_downsized(textured):
    assert min(detail_gaps(textured, 64).values()) > 0.1  # every class its own
    assert max(detail_gaps(textured, 16).values()) < 0.1  # 4 x 4 averages: all alike
    half = detail_gaps(textured, 32)  # 2 x 2 averages keep the period-4 textures only
    fine = {"harmonic", "chirp", "am_noise"}  # period 2: every 2 x 2 block half light
    y, x = np.mgrid[0:64, 0:64]
    for name in fine:
        assert (TEXTURES[name](x, y).reshape(32, 2, 32, 2).sum(axis=(1, 3)) == 2).all()
    for pair, gap in half.items():
        assert (gap < 0.05) if set(pair) <= fine else (gap > 0.1), pair


def test_logmel_agrees_with_torchaudio_melspectrogram_and_torch_std(tmp_path):
    """The fused transform is a faster route to the same numbers as the library's."""
    import torch
    import torchaudio

    rng = np.random.default_rng(0)
    audio = torch.from_numpy(rng.normal(0, 0.1, (3, 32000)).astype(np.float32))
    encoder = make("logmel", n_mels=40, segments=2)
    mel = torchaudio.transforms.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=40)
    reference = torch.log(mel(audio) + 1e-6)
    assert torch.allclose(encoder.logmel(audio), reference, atol=1e-4)
    frames = reference[:, :, :200].reshape(3, 40, 2, 100)
    halves = frames.reshape(3, 40, 2, 2, 50).mean(dim=4).permute(0, 2, 3, 1).reshape(3, 2, 80)
    expected = torch.cat([halves, frames.std(dim=3).permute(0, 2, 1)], dim=2).numpy()
    np.testing.assert_allclose(encoder._features(audio, 2), expected, atol=1e-4)
