"""Probe, verify and decode audio/video files with PyAV.

Pure functions with no pipeline knowledge. Every failure is a :class:`MediaError` that names
the file, never a raw PyAV exception.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import av
import numpy as np
import soundfile
from av.video.reformatter import Interpolation
from scipy.signal import firwin, resample_poly

_EPS = 1e-6
SOUNDFILE_SUFFIXES = (".wav", ".flac")  # read with libsndfile: many times faster than PyAV here
FLOAT_FORMATS = frozenset({"flt", "fltp", "dbl", "dblp"})  # sample formats that can hold NaN/Inf


class MediaError(Exception):
    """A media file that cannot be used; str() names the file and the reason.

    Example: ``data/raw/demo/v0003.mp4: truncated: decoded 3.9 s of 10.0 s declared``.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass(frozen=True)
class MediaInfo:
    """What a media file holds; durations in seconds."""

    duration_s: float  # audio duration if there is audio, else video duration
    sample_rate: int | None  # native audio rate
    channels: int | None
    has_video: bool
    fps: float | None
    width: int | None
    height: int | None
    video_duration_s: float | None = None  # decoded video duration (verify only)
    audio_sha256: str | None = None  # hash of the decoded mono 16-bit PCM (verify only)


@contextmanager
def _open(path: str | Path) -> Iterator[av.container.InputContainer]:
    """Open `path` for reading; PyAV errors inside the block become MediaError."""
    file = Path(path)
    if not file.is_file():
        raise MediaError(path, "no such file")
    if file.stat().st_size == 0:
        raise MediaError(path, "empty file (0 bytes)")
    try:
        container = av.open(str(file))
    except av.FFmpegError as e:
        raise MediaError(path, f"not a media file: {_reason(e)}") from e
    with container:
        try:
            yield container
        except av.FFmpegError as e:
            raise MediaError(path, f"corrupt stream: {_reason(e)}") from e


def _reason(error: av.FFmpegError) -> str:
    return error.strerror or str(error)


def _declared_s(stream: av.stream.Stream, container: av.container.InputContainer) -> float | None:
    """Duration the stream (or else the container) declares, in seconds."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _info(path: str | Path, container: av.container.InputContainer) -> MediaInfo:
    audio = container.streams.audio[0] if container.streams.audio else None
    video = container.streams.video[0] if container.streams.video else None
    if audio is None and video is None:
        raise MediaError(path, "no audio and no video stream")
    duration = _declared_s(audio or video, container)
    if duration is None:
        if not _has_packets(container, audio or video):
            raise MediaError(path, f"empty: a header and 0 {'samples' if audio else 'frames'}")
        raise MediaError(path, "unknown duration")
    rate = (video.average_rate or video.guessed_rate) if video else None
    return MediaInfo(
        duration_s=duration,
        sample_rate=audio.sample_rate if audio else None,
        channels=audio.channels if audio else None,
        has_video=video is not None,
        fps=float(rate) if rate else None,
        width=video.width if video else None,
        height=video.height if video else None,
    )


def _has_packets(container: av.container.InputContainer, stream: av.stream.Stream) -> bool:
    """True when `stream` holds at least one non-empty packet (reads until the first)."""
    return any(packet.size for packet in container.demux(stream))


def probe(path: str | Path) -> MediaInfo:
    """Read container metadata only (fast; nothing is decoded).

    >>> probe("v0000.mp4").duration_s  # doctest: +SKIP
    10.0
    """
    with _open(path) as container:
        return _info(path, container)


def verify(path: str | Path, tolerance_s: float = 0.5) -> MediaInfo:
    """Decode every audio and video packet; return MediaInfo with the DECODED audio duration.

    Raises MediaError when the file is empty (0 bytes, or a header and no samples), not media,
    has no audio stream, has a corrupt packet, decodes to more than `tolerance_s` less audio
    than it declares (truncated), holds NaN or infinite samples, or is digitally silent (every
    sample zero).
    """
    with _open(path) as container:
        info = _info(path, container)
        if not container.streams.audio:
            raise MediaError(path, "no audio stream")
        audio = container.streams.audio[0]
        pcm = av.AudioResampler(format="s16", layout="mono", rate=audio.sample_rate)
        digest = hashlib.sha256()
        decoded, video_end, peak = 0.0, None, 0
        non_finite = np.zeros(2, np.int64)  # NaN and Inf samples, counted before any conversion
        for packet in container.demux(*container.streams.audio, *container.streams.video):
            if packet.is_corrupt:  # a partial packet: the file usually just ends early
                _check_length(path, decoded, info.duration_s, tolerance_s)
                raise MediaError(path, f"corrupt stream: damaged {packet.stream.type} packet")
            for frame in packet.decode():
                if packet.stream is audio:
                    decoded += frame.samples / frame.sample_rate
                    non_finite += _frame_non_finite(frame)
                    for chunk in pcm.resample(frame):
                        peak = _absorb(digest, chunk, peak)
                elif frame.time is not None and info.fps:
                    video_end = max(video_end or 0.0, frame.time + 1 / info.fps)
        for chunk in pcm.resample(None):
            peak = _absorb(digest, chunk, peak)
        _check_length(path, decoded, info.duration_s, tolerance_s)
        _check_finite(path, non_finite)
        if peak == 0:
            raise MediaError(path, "silent: every decoded audio sample is zero")
        return replace(
            info,
            duration_s=decoded,
            video_duration_s=video_end,
            audio_sha256=digest.hexdigest(),
        )


def _absorb(digest: hashlib._Hash, chunk: av.AudioFrame, peak: int) -> int:
    """Add a 16-bit PCM chunk to the audio hash; return the running peak amplitude."""
    samples = chunk.to_ndarray()
    digest.update(samples.tobytes())
    return max(peak, int(np.abs(samples.astype(np.int32)).max(initial=0)))


def _frame_non_finite(frame: av.AudioFrame) -> np.ndarray:
    """[NaN, Inf] sample counts of a decoded frame; integer formats hold neither."""
    if frame.format.name not in FLOAT_FORMATS:
        return np.zeros(2, np.int64)
    return _non_finite_counts(frame.to_ndarray())


def _non_finite_counts(samples: np.ndarray) -> np.ndarray:
    """[NaN, Inf] counts of `samples` (one fast pass when every sample is finite)."""
    if np.isfinite(samples).all():
        return np.zeros(2, np.int64)
    return np.array([np.isnan(samples).sum(), np.isinf(samples).sum()], np.int64)


def _check_finite(path: str | Path, counts: np.ndarray) -> None:
    if counts.any():
        raise MediaError(path, f"non-finite samples: {counts[0]} NaN, {counts[1]} Inf")


def _check_length(path: str | Path, decoded: float, declared: float, tolerance_s: float) -> None:
    if declared - decoded > tolerance_s:
        raise MediaError(path, f"truncated: decoded {decoded:.1f} s of {declared:.1f} s declared")


def decode_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode the first audio stream to float32 mono at `sample_rate`, shape (samples,).

    Channels are averaged and the rate converted with a polyphase filter, the same way for
    every container: WAV and FLAC are read with soundfile (fast), everything else with PyAV.
    A NaN or infinite sample is a MediaError, as in `verify`.
    """
    if Path(path).suffix.lower() in SOUNDFILE_SUFFIXES:
        samples, native = _read_soundfile(path)
    else:
        samples, native = _read_pyav(path)
    _check_finite(path, _non_finite_counts(samples))
    mono = samples.mean(axis=0) if len(samples) else np.zeros(0, np.float32)
    if native != sample_rate and len(mono):
        factor = math.gcd(native, sample_rate)
        up, down = sample_rate // factor, native // factor
        mono = resample_poly(mono, up, down, window=_resampling_filter(up, down))
    return mono.astype(np.float32)


@functools.cache
def _resampling_filter(up: int, down: int) -> np.ndarray:
    """The low-pass FIR filter `resample_poly` designs for (up, down) by default, designed once:
    designing it costs a third of a short clip's decode. Same coefficients, same output bits.
    """
    max_rate = max(up, down)
    taps = firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))
    taps = taps.astype(np.float32)
    taps.setflags(write=False)
    return taps


def _read_soundfile(path: str | Path) -> tuple[np.ndarray, int]:
    """float32 (channels, samples) and the native rate, read with libsndfile."""
    file = Path(path)
    if not file.is_file():
        raise MediaError(path, "no such file")
    try:
        samples, native = soundfile.read(file, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise MediaError(path, f"not a readable audio file: {error}") from error
    return samples.T, native


def _read_pyav(path: str | Path) -> tuple[np.ndarray, int]:
    """float32 (channels, samples) and the native rate, decoded with PyAV."""
    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError(path, "no audio stream")
        stream = container.streams.audio[0]
        planar = av.AudioResampler(format="fltp", layout=stream.layout, rate=stream.sample_rate)
        chunks = []
        for frame in container.decode(stream):
            chunks += [f.to_ndarray() for f in planar.resample(frame)]
        chunks += [f.to_ndarray() for f in planar.resample(None)]
    if not chunks:
        return np.zeros((1, 0), np.float32), stream.sample_rate
    return np.concatenate(chunks, axis=1), stream.sample_rate


def decode_frames(path: str | Path, fps: float, size: tuple[int, int] | None = None) -> np.ndarray:
    """Sample RGB frames at `fps`: uint8 array (n, height, width, 3).

    Output frame k is the last decoded frame whose time is <= k / fps, and
    n = floor(video duration * fps), at least 1. `size` is (width, height) to resize to; a
    smaller size is an area average of the decoded pixels (see `_rgb`).
    """
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(path, "no video stream")
        stream = container.streams.video[0]
        n = max(1, math.floor((_declared_s(stream, container) or 0.0) * fps + _EPS))
        picked: list[np.ndarray] = []
        latest, rgb = None, None
        for frame in container.decode(stream):
            if frame.time is None:
                raise MediaError(path, "video frame without a timestamp")
            while latest is not None and len(picked) < n and len(picked) / fps < frame.time - _EPS:
                rgb = _rgb(latest, size) if rgb is None else rgb
                picked.append(rgb)
            if len(picked) == n:
                break
            latest, rgb = frame, None
        if latest is None:
            raise MediaError(path, "no video frames decoded")
        rgb = _rgb(latest, size) if rgb is None else rgb
        picked += [rgb] * (n - len(picked))
    return np.stack(picked)


def _rgb(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    """The frame as RGB, resized to `size`: shrinking averages the pixels each output pixel
    covers (area), so detail finer than the new pixels is averaged away rather than aliased;
    enlarging interpolates bilinearly."""
    if size is None:
        return frame.to_ndarray(format="rgb24")
    width, height = size
    shrinks = width <= frame.width and height <= frame.height
    how = Interpolation.AREA if shrinks else Interpolation.BILINEAR
    return frame.reformat(width, height, "rgb24", interpolation=how).to_ndarray()


def seconds_in(duration_s: float) -> int:
    """Whole seconds a clip is cut into for per-second tasks.

    >>> seconds_in(9.98), seconds_in(10.4), seconds_in(0.2)
    (10, 10, 1)
    """
    return max(1, round(duration_s))


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Trim the first axis to `n`, or pad it by repeating the last row (zeros if `x` is empty).

    >>> fit_length(np.array([1, 2]), 4)
    array([1, 2, 2, 2])
    """
    if len(x) >= n:
        return x[:n]
    if len(x) == 0:
        return np.zeros((n, *x.shape[1:]), x.dtype)
    return np.concatenate([x, np.repeat(x[-1:], n - len(x), axis=0)])
