"""Hostile media files, each with the outcome ingest must reach: a per-file reason naming the
file, or a correct decode (status ok with the right duration).

`CASES` lists them; `write_all` puts every case in one folder-format dataset so that a single
ingest run covers them all. Tones are those of `tests.formats` (16 kHz unless a case says).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000
LABEL = "hostile"  # the label folder the cases are written under


@dataclass(frozen=True)
class Case:
    """One hostile file: its name, how to write it, and what ingest must conclude.

    `reason` is how the per-file failure must start after "<path>: ", or None when the file
    must decode; then `duration_s` is its decoded duration.
    """

    name: str
    write: Callable[[Path], None]
    reason: str | None = None
    duration_s: float | None = None


def tone(seconds: float = 1.0, rate: int = RATE, amplitude: float = 0.5) -> np.ndarray:
    """A 440 Hz sine, float64, shape (samples,)."""
    t = np.arange(int(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * 440.0 * t)


def poisoned(nan: int, inf: int, channels: int = 1) -> np.ndarray:
    """A 1-s tone with `nan` NaN and `inf` infinite samples (half +Inf, half -Inf) in its
    first channel, shape (samples, channels)."""
    samples = np.repeat(tone()[:, None], channels, axis=1)
    samples[100 : 100 + nan, 0] = np.nan
    samples[1000 : 1000 + inf, 0] = np.inf
    samples[1000 + inf // 2 : 1000 + inf, 0] = -np.inf
    return samples


def write_nan_float(path: Path) -> None:
    sf.write(path, poisoned(nan=12, inf=0).astype(np.float32), RATE, "FLOAT")


def write_inf_float(path: Path) -> None:
    sf.write(path, poisoned(nan=0, inf=5).astype(np.float32), RATE, "FLOAT")


def write_nan_double_stereo(path: Path) -> None:
    sf.write(path, poisoned(nan=3, inf=2, channels=2), RATE, "DOUBLE")


def write_zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def write_header_only(path: Path) -> None:
    sf.write(path, np.zeros((0, 1)), RATE, "PCM_16")


def write_random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def write_text(path: Path) -> None:
    path.write_text("not audio\n" * 50)


def write_silence(path: Path) -> None:
    sf.write(path, np.zeros(RATE), RATE, "PCM_16")


def write_ten_hour_header(path: Path) -> None:
    """1 s of 16-bit samples under a header that declares 10 hours."""
    sf.write(path, tone(), RATE, "PCM_16")
    data = bytearray(path.read_bytes())
    declared = 10 * 3600 * RATE * 2
    chunk = data.find(b"data")
    data[chunk + 4 : chunk + 8] = struct.pack("<I", declared)
    data[4:8] = struct.pack("<I", declared + chunk)
    path.write_bytes(bytes(data))


def write_cut_in_half(path: Path) -> None:
    """A 2-s WAV whose last second is missing."""
    sf.write(path, tone(2.0), RATE, "PCM_16")
    path.write_bytes(path.read_bytes()[: 44 + RATE * 2])


def write_loud_float(path: Path) -> None:
    """Finite float samples beyond [-1, 1]: legal, and kept."""
    sf.write(path, tone(amplitude=4.0).astype(np.float32), RATE, "FLOAT")


def write_unsigned_8_bit(path: Path) -> None:
    sf.write(path, tone(), RATE, "PCM_U8")


def write_8_channels_48k(path: Path) -> None:
    sf.write(path, np.repeat(tone(0.5, rate=48000)[:, None], 8, axis=1), 48000, "PCM_24")


def write_flac(path: Path) -> None:
    sf.write(path, tone(), RATE, "PCM_16", format="FLAC")


CASES = (
    Case("nan_float.wav", write_nan_float, "non-finite samples: 12 NaN, 0 Inf"),
    Case("inf_float.wav", write_inf_float, "non-finite samples: 0 NaN, 5 Inf"),
    Case("nan_double_stereo.wav", write_nan_double_stereo, "non-finite samples: 3 NaN, 2 Inf"),
    Case("zero_bytes.wav", write_zero_bytes, "empty file (0 bytes)"),
    Case("header_only.wav", write_header_only, "empty: a header and 0 samples"),
    Case("random_bytes.wav", write_random_bytes, "not a media file"),
    Case("text.wav", write_text, "not a media file"),
    Case("silence.wav", write_silence, "silent: every decoded audio sample is zero"),
    Case("ten_hour_header.wav", write_ten_hour_header, "corrupt stream: damaged audio packet"),
    Case("cut_in_half.wav", write_cut_in_half, "corrupt stream: damaged audio packet"),
    Case("loud_float.wav", write_loud_float, duration_s=1.0),
    Case("unsigned_8_bit.wav", write_unsigned_8_bit, duration_s=1.0),
    Case("8_channels_48k.wav", write_8_channels_48k, duration_s=0.5),
    Case("tone.flac", write_flac, duration_s=1.0),
)


def write_all(root: Path) -> dict[str, Path]:
    """Write every case under `root/LABEL/`; return each case's path by name."""
    folder = root / LABEL
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for case in CASES:
        case.write(folder / case.name)
        paths[case.name] = folder / case.name
    return paths
