import numpy as np
import pytest
import soundfile as sf

from avgate.config import EmbedParams, FramesParams
from avgate.declare import ConfigError
from avgate.encoders import build
from avgate.encoders.frames import FramesEncoder
from avgate.encoders.logmel import LogmelEncoder


def two_tones(path, first_hz: float, second_hz: float, rate: int = 16000) -> None:
    """One second: the first half at first_hz, the second half at second_hz."""
    t = np.arange(rate // 2) / rate
    halves = [np.sin(2 * np.pi * f * t) for f in (first_hz, second_hz)]
    sf.write(path, 0.5 * np.concatenate(halves), rate)


def test_logmel_segments_keep_the_order_of_sounds_inside_a_second(tmp_path):
    two_tones(tmp_path / "up.wav", 300, 3000)
    two_tones(tmp_path / "down.wav", 3000, 300)
    summary = LogmelEncoder(16000, 32, 400, 160, segments=1)
    ordered = LogmelEncoder(16000, 32, 400, 160, segments=2)
    up, down = (summary.embed_seconds(tmp_path / f"{n}.wav", 1) for n in ("up", "down"))
    assert up.shape == (1, 64)
    assert np.abs(up - down).max() < 1.0  # mean and spread barely tell them apart
    up, down = (ordered.embed_seconds(tmp_path / f"{n}.wav", 1) for n in ("up", "down"))
    assert up.shape == (1, 96)
    assert np.abs(up[0, :32] - down[0, 32:64]).max() < 1.0  # the halves swap places
    assert np.abs(up[0, :32] - down[0, :32]).max() > 10.0


def test_logmel_checks_its_params():
    with pytest.raises(ConfigError, match="segments 3 must divide the 100 frames"):
        LogmelEncoder(16000, 32, 400, 160, segments=3)
    with pytest.raises(ConfigError, match="hop_length 170 must divide sample_rate"):
        LogmelEncoder(16000, 32, 400, 170, segments=1)
    with pytest.raises(ConfigError, match="unknown encoder 'wavlm'"):
        build("wavlm", EmbedParams())


def test_frames_features_see_the_foreground_not_the_tint():
    encoder = FramesEncoder(**vars(FramesParams()))
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
    assert features[0].shape[1] == encoder.dim == 3 * 8 + 16 + 11


def test_logmel_agrees_with_torchaudio_melspectrogram_and_torch_std(tmp_path):
    """The fused transform is a faster route to the same numbers as the library's."""
    import torch
    import torchaudio

    rng = np.random.default_rng(0)
    audio = torch.from_numpy(rng.normal(0, 0.1, (3, 32000)).astype(np.float32))
    encoder = LogmelEncoder(16000, 40, 400, 160, segments=2)
    mel = torchaudio.transforms.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=40)
    reference = torch.log(mel(audio) + 1e-6)
    assert torch.allclose(encoder.logmel(audio), reference, atol=1e-4)
    frames = reference[:, :, :200].reshape(3, 40, 2, 100)
    halves = frames.reshape(3, 40, 2, 2, 50).mean(dim=4).permute(0, 2, 3, 1).reshape(3, 2, 80)
    expected = torch.cat([halves, frames.std(dim=3).permute(0, 2, 1)], dim=2).numpy()
    np.testing.assert_allclose(encoder._features(audio, 2), expected, atol=1e-4)
