import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from avgate.demo.dataset import DemoConfig, generate
from avgate.media import (
    MediaError,
    decode_audio,
    decode_frames,
    fit_length,
    probe,
    seconds_in,
    verify,
)

SECONDS, FPS, SIZE, RATE = 3, 4, 64, 16000


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("media") / "demo"
    config = DemoConfig(n_clips=1, clip_seconds=SECONDS, min_event_seconds=1, max_event_seconds=2)
    generate(config, root, progress=False)
    return root / "v0000.mp4"


def write_wav(path: Path, seconds: float, rate: int, channels: int) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.repeat(tone[:, None], channels, axis=1).tobytes())
    return path


def write_video_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=4)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(8):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, 4)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def test_probe_reads_metadata(clip):
    info = probe(clip)
    assert info.duration_s == pytest.approx(SECONDS, abs=0.1)
    assert (info.sample_rate, info.channels) == (RATE, 1)
    assert info.has_video
    assert info.fps == FPS
    assert (info.width, info.height) == (SIZE, SIZE)


def test_verify_returns_decoded_audio_duration(clip):
    info = verify(clip)
    assert info.duration_s == pytest.approx(SECONDS, abs=0.1)
    assert info.has_video


@pytest.mark.parametrize("rate", [16000, 8000])
def test_decode_audio_is_mono_float32_at_requested_rate(clip, rate):
    audio = decode_audio(clip, rate)
    assert audio.dtype == np.float32
    assert audio.ndim == 1
    assert len(audio) == pytest.approx(SECONDS * rate, abs=0.1 * rate)
    assert 0 < np.abs(audio).max() < 1.0


def test_decode_frames_gives_seconds_times_fps_rgb_frames(clip):
    frames = decode_frames(clip, FPS)
    assert frames.shape == (SECONDS * FPS, SIZE, SIZE, 3)
    assert frames.dtype == np.uint8


def test_decode_frames_samples_last_frame_at_or_before_each_time(clip):
    native = decode_frames(clip, FPS)
    slower = decode_frames(clip, FPS / 2)
    faster = decode_frames(clip, FPS * 2)
    assert len(slower) == SECONDS * FPS // 2
    np.testing.assert_array_equal(slower, native[::2])
    assert len(faster) == SECONDS * FPS * 2
    np.testing.assert_array_equal(faster[::2], native)
    np.testing.assert_array_equal(faster[1::2], native)


def test_decode_frames_resizes_to_width_height(clip):
    frames = decode_frames(clip, FPS, size=(32, 16))
    assert frames.shape == (SECONDS * FPS, 16, 32, 3)


def write_lines(path: Path, size: int = 32) -> Path:
    """One second of horizontal grey lines 1 pixel wide (60 and 200), losslessly coded."""
    rows = np.where(np.arange(size) % 2, 200, 60).astype(np.uint8)
    rgb = np.ascontiguousarray(np.broadcast_to(rows[:, None, None], (size, size, 3)))
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"qp": "0"})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(FPS):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def test_decode_frames_shrinks_by_averaging_so_fine_lines_vanish(tmp_path):
    path = write_lines(tmp_path / "lines.mp4")
    native = decode_frames(path, FPS)
    np.testing.assert_array_equal(native[:, :4, 0, 0], [[60, 200, 60, 200]] * FPS)
    for size in [(16, 16), (8, 8), (32, 16)]:  # every output pixel covers light and dark rows
        assert np.ptp(decode_frames(path, FPS, size).astype(int)) == 0, size
    narrower = decode_frames(path, FPS, (16, 32))  # full height: the lines stay
    np.testing.assert_allclose(narrower[:, :, 0], native[:, :, 0], atol=2)
    larger = decode_frames(path, FPS, (64, 64))  # enlarging interpolates: lines, blurred
    assert larger.shape == (FPS, 64, 64, 3) and np.ptp(larger[0, :8, 0, 0].astype(int)) > 100


def test_stereo_wav_decodes_to_mono_at_resampled_rate(tmp_path):
    path = write_wav(tmp_path / "tone.wav", seconds=1.5, rate=22050, channels=2)
    info = verify(path)
    assert (info.sample_rate, info.channels, info.has_video) == (22050, 2, False)
    assert info.fps is None
    assert info.duration_s == pytest.approx(1.5, abs=1e-3)
    audio = decode_audio(path, 16000)
    assert audio.shape == pytest.approx((24000,), abs=32)
    # channels are averaged, whatever the container: equal channels keep their level
    assert np.abs(audio).max() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("native", [8000, 22050, 44100, 48000])
def test_resampling_matches_scipy_resample_poly_bit_for_bit(tmp_path, native):
    """decode_audio designs each rate pair's filter once; the samples are scipy's own."""
    import soundfile
    from scipy.signal import resample_poly

    rng = np.random.default_rng(native)
    samples = rng.uniform(-0.5, 0.5, native * 3 // 4).astype(np.float32)
    soundfile.write(tmp_path / "noise.wav", samples, native, subtype="FLOAT")
    factor = np.gcd(native, 16000)
    expected = resample_poly(samples, 16000 // factor, native // factor).astype(np.float32)
    np.testing.assert_array_equal(decode_audio(tmp_path / "noise.wav", 16000), expected)


@pytest.mark.parametrize(
    ("duration", "seconds"), [(9.98, 10), (10.4, 10), (10.6, 11), (0.2, 1), (0.0, 1)]
)
def test_seconds_in(duration, seconds):
    assert seconds_in(duration) == seconds


def test_fit_length_trims_pads_and_fills_empty():
    x = np.arange(6).reshape(3, 2)
    np.testing.assert_array_equal(fit_length(x, 2), x[:2])
    np.testing.assert_array_equal(fit_length(x, 3), x)
    np.testing.assert_array_equal(fit_length(x, 5), [[0, 1], [2, 3], [4, 5], [4, 5], [4, 5]])
    empty = fit_length(np.zeros((0, 4), np.float32), 3)
    assert empty.shape == (3, 4)
    assert empty.dtype == np.float32
    assert not empty.any()


def assert_rejected(fn, path: Path, reason: str, *args) -> None:
    with pytest.raises(MediaError) as caught:
        fn(path, *args)
    assert str(path) in str(caught.value)
    assert reason in caught.value.reason


@pytest.mark.parametrize("fn", [probe, verify, decode_audio, decode_frames])
def test_empty_missing_and_non_media_files_are_rejected_by_every_function(tmp_path, fn):
    args = (RATE,) if fn in (decode_audio, decode_frames) else ()
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert_rejected(fn, empty, "empty file (0 bytes)", *args)
    assert_rejected(fn, tmp_path / "missing.mp4", "no such file", *args)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    assert_rejected(fn, text, "not a media file", *args)


def test_truncated_file_probes_but_fails_verify(clip, tmp_path):
    cut = tmp_path / "cut.mp4"
    data = clip.read_bytes()
    cut.write_bytes(data[: int(0.4 * len(data))])
    assert probe(cut).duration_s == pytest.approx(SECONDS, abs=0.1)
    assert_rejected(verify, cut, "truncated: decoded")


def test_missing_streams_are_named(tmp_path):
    video_only = write_video_only(tmp_path / "silent.mp4")
    assert_rejected(verify, video_only, "no audio stream")
    assert_rejected(decode_audio, video_only, "no audio stream", RATE)
    wav = write_wav(tmp_path / "tone.wav", seconds=1.0, rate=8000, channels=1)
    assert_rejected(decode_frames, wav, "no video stream", FPS)


def rewrap(source: Path, target: Path, codec: str) -> Path:
    """Copy the audio of `source` into another container and codec, losslessly, with PyAV."""
    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        audio = src.streams.audio[0]
        stream = out.add_stream(codec, rate=audio.sample_rate, layout=audio.layout.name)
        for frame in src.decode(audio):
            frame.pts = None
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return target


def test_same_sound_in_other_containers_decodes_and_hashes_the_same(tmp_path):
    wav = write_wav(tmp_path / "tone.wav", seconds=1.0, rate=16000, channels=2)
    flac = rewrap(wav, tmp_path / "tone.flac", "flac")
    mka = rewrap(wav, tmp_path / "tone.mka", "pcm_s16le")
    hashes = {verify(path).audio_sha256 for path in (wav, flac, mka)}
    assert len(hashes) == 1
    reference = decode_audio(wav, 8000)
    for other in (flac, mka):  # soundfile reads WAV/FLAC, PyAV reads Matroska: same samples
        np.testing.assert_allclose(decode_audio(other, 8000), reference, atol=1e-4)
    mono = write_wav(tmp_path / "mono.wav", seconds=1.0, rate=16000, channels=1)
    assert verify(mono).audio_sha256 in hashes  # the hash is of the mono mix: same sound
    longer = write_wav(tmp_path / "longer.wav", seconds=1.2, rate=16000, channels=1)
    assert verify(longer).audio_sha256 not in hashes


def test_verify_measures_the_decoded_video_duration(clip):
    info = verify(clip)
    assert info.video_duration_s == pytest.approx(SECONDS, abs=0.3)
    assert info.audio_sha256 and len(info.audio_sha256) == 64


def test_silent_file_is_rejected_by_verify(tmp_path):
    path = tmp_path / "silence.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(np.zeros(16000, "<i2").tobytes())
    assert_rejected(verify, path, "silent: every decoded audio sample is zero")


@pytest.mark.parametrize(("channels", "subtype"), [(1, "PCM_16"), (3, "FLOAT")])
@pytest.mark.parametrize("fn", [probe, verify])
def test_a_wav_header_without_samples_is_reported_empty(tmp_path, fn, channels, subtype):
    path = tmp_path / "header_only.wav"
    soundfile.write(path, np.zeros((0, channels)), RATE, subtype)
    assert path.stat().st_size > 0  # 44 bytes of header, or 96 with a float format's chunks
    assert_rejected(fn, path, "empty: a header and 0 samples")


def test_a_header_declaring_samples_the_file_lacks_is_reported_empty(tmp_path):
    path = write_wav(tmp_path / "cut.wav", seconds=0.01, rate=RATE, channels=1)
    path.write_bytes(path.read_bytes()[:44])  # the header still declares 160 samples
    assert_rejected(verify, path, "empty: a header and 0 samples")


@pytest.mark.parametrize(
    ("subtype", "channels", "inf", "reason"),
    [
        ("FLOAT", 1, np.inf, "non-finite samples: 12 NaN, 3 Inf"),
        ("DOUBLE", 2, -np.inf, "non-finite samples: 24 NaN, 6 Inf"),  # counted in every channel
    ],
)
@pytest.mark.parametrize("fn", [verify, decode_audio])
def test_nan_and_inf_samples_are_counted_and_refused(tmp_path, fn, subtype, channels, inf, reason):
    samples = np.repeat(0.5 * np.sin(np.arange(RATE) / 10.0)[:, None], channels, axis=1)
    samples[100:112] = np.nan
    samples[500:503] = inf
    path = tmp_path / "poisoned.wav"
    soundfile.write(path, samples, RATE, subtype)
    assert_rejected(fn, path, reason, *((8000,) if fn is decode_audio else ()))


def test_finite_float_samples_beyond_full_scale_are_kept(tmp_path):
    path = tmp_path / "loud.wav"
    soundfile.write(path, 4.0 * np.sin(np.arange(RATE) / 10.0), RATE, "FLOAT")
    assert verify(path).duration_s == pytest.approx(1.0)
    assert np.abs(decode_audio(path, RATE)).max() == pytest.approx(4.0, rel=1e-3)
