"""Deterministic AVE-style audio-visual demo dataset.

Each clip is an MP4 (H.264 + AAC) with a background "recording channel" that belongs to a group
(coloured noise and a hum tone in the audio, a tint in the video) and one event: a sound and a
moving shape during a span of whole seconds. With ``confound > 0`` groups carry class
information, so a split that ignores groups leaks.

What tells the class is chosen per modality. ``visual_cue="shape"``: a large shape of the class's
own form and colour, visible at any resolution. ``visual_cue="texture"``: the same yellow disc
for every class, filled with the class's fine texture (:data:`TEXTURES`): stripes or a checker
of period 2 or 4 pixels, fixed to the pixel grid, on the 4 x 4 pixel blocks wholly inside the
disc (the rim takes the texture's mean colour). Area-averaging 2 x 2 pixels flattens the
period-2 textures and 4 x 4 flattens all of them, so with 64-px frames the class shows at 64 px,
at 32 px only for the period-4 textures, at 16 px not at all. ``audio_cue="class"``: a
class-specific sound; ``audio_cue="onset"``: one shared sound (noise taps) for every class, whose
energy marks the event seconds but not the class.

>>> summary = generate(DemoConfig(n_clips=6, clip_seconds=3), Path("demo"))  # doctest: +SKIP
>>> sorted(Path("demo").iterdir())[:2]  # doctest: +SKIP
[PosixPath('demo/Annotations.txt'), PosixPath('demo/corrupt.csv')]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import numpy as np

from avgate.datasets.ave import ANNOTATIONS, GROUPS
from avgate.files import atomic_dir
from avgate.parallel import ordered_map

CLASSES: tuple[str, ...] = ("harmonic", "chirp", "am_noise", "impulses", "bell", "rumble")
VISUAL_CUES = ("shape", "texture")
AUDIO_CUES = ("class", "onset")
CORRUPTIONS = ("garbage", "truncated", "empty")
CORRUPT = "corrupt.csv"

_COLOURS = {  # saturated, one per class
    "harmonic": (230, 30, 30),
    "chirp": (30, 200, 40),
    "am_noise": (40, 70, 240),
    "impulses": (240, 220, 20),
    "bell": (220, 40, 220),
    "rumble": (20, 220, 230),
}
_BACKGROUND_RMS = 0.05
_PEAK = 0.8  # headroom: AAC overshoots the source peak a little
_FADE_S = 0.01
_AUDIO_FRAME = 1024
_TRUNCATE_TO = 0.4
_X264_OPTIONS = {"x264-params": "mbtree=0"}
_TAP_S, _TAP_DECAY_S = 0.25, 0.06  # the onset sound's strike period and decay
# Dark and light yellow, far from every tint (blue >= 60), with a whole-number mean colour.
_TEXTURE_LEVELS = ((120, 110, 0), (254, 240, 0))
TEXTURE_BLOCK = 4  # the texture fills whole blocks of this many pixels square: frame size % 4 == 0
_BELL_PARTIALS = (  # (frequency ratio, amplitude, decay time in s)
    (1.0, 1.0, 0.25),
    (2.76, 0.6, 0.15),
    (5.40, 0.4, 0.1),
    (8.93, 0.25, 0.07),
)
# Independent random streams: default_rng([seed, stream, index]).
_DATASET, _PLAN, _RENDER, _CORRUPT, _GROUP = range(5)


@dataclass(frozen=True)
class DemoConfig:
    """Everything that decides the dataset; the same config gives byte-identical files."""

    seed: int = 0
    n_clips: int = 120
    n_groups: int = 16
    clip_seconds: int = 10
    fps: int = 4
    size: int = 64  # square frames, even
    sample_rate: int = 16000
    snr_db: tuple[float, float] = (0.0, 12.0)  # event-to-background ratio range, drawn per clip
    shape_opacity: tuple[float, float] = (1.0, 1.0)  # the shape's alpha over the background
    confound: float = 0.3  # 0: group independent of class; 1: class's own groups only
    corrupt_fraction: float = 0.0
    min_event_seconds: int = 2
    max_event_seconds: int = 8
    visual_cue: str = "shape"  # VISUAL_CUES: the class's shape and colour, or its fine texture
    audio_cue: str = "class"  # AUDIO_CUES: the class's sound, or one shared onset sound

    def __post_init__(self) -> None:
        low, high = self.snr_db
        checks = (
            (self.seed >= 0, "seed must be >= 0"),
            (self.n_clips >= 1, "n_clips must be >= 1"),
            (self.n_groups >= len(CLASSES), f"n_groups must be >= {len(CLASSES)}, one per class"),
            (self.size >= 16 and self.size % 2 == 0, "size must be even and >= 16"),
            (
                self.visual_cue != "texture" or self.size % TEXTURE_BLOCK == 0,
                f"size must be a multiple of {TEXTURE_BLOCK} for visual_cue texture",
            ),
            (self.sample_rate >= 8000, "sample_rate must be >= 8000 (the chirp reaches 3 kHz)"),
            (self.fps >= 1, "fps must be >= 1"),
            (
                1 <= self.min_event_seconds <= self.max_event_seconds <= self.clip_seconds,
                "need 1 <= min_event_seconds <= max_event_seconds <= clip_seconds",
            ),
            (low <= high, "snr_db must be (low, high) with low <= high"),
            (
                0.0 <= self.shape_opacity[0] <= self.shape_opacity[1] <= 1.0,
                "shape_opacity must be (low, high) with 0 <= low <= high <= 1",
            ),
            (0.0 <= self.confound <= 1.0, "confound must be in [0, 1]"),
            (0.0 <= self.corrupt_fraction <= 1.0, "corrupt_fraction must be in [0, 1]"),
            (self.visual_cue in VISUAL_CUES, f"visual_cue must be one of {VISUAL_CUES}"),
            (self.audio_cue in AUDIO_CUES, f"audio_cue must be one of {AUDIO_CUES}"),
        )
        failed = [message for ok, message in checks if not ok]
        if failed:
            raise ValueError("DemoConfig: " + "; ".join(failed))


@dataclass(frozen=True)
class Clip:
    """The random choices behind one clip, apart from its samples and pixels."""

    index: int
    label: int  # index into CLASSES
    group: int
    start: int  # event span [start, end) in whole seconds
    end: int
    snr_db: float
    corruption: str | None
    opacity: float = 1.0

    @property
    def video_id(self) -> str:
        return f"v{self.index:04d}"


def group_name(group: int) -> str:
    """`ch00`, `ch01`, ... the recording channel a clip comes from."""
    return f"ch{group:02d}"


def generate(config: DemoConfig, out_dir: Path, workers: int = 1, progress: bool = True) -> dict:
    """Write the dataset to `out_dir` atomically and return counts per class, group, corruption.

    Layout: `<VideoID>.mp4`, `Annotations.txt` (AVE format), `groups.csv`, `corrupt.csv`.
    `workers > 1` writes clips in that many processes; the files do not depend on it.
    """
    clips = plan(config)
    with atomic_dir(out_dir) as tmp:
        make = partial(_make_clip, config, tmp)
        list(ordered_map(make, clips, workers if workers > 1 else 0, "demo clips", progress))
        _write_tables(tmp, clips)
    return _summary(clips)


def plan(config: DemoConfig) -> list[Clip]:
    """Draw class, group, event span, SNR and corruption of every clip."""
    rng = _rng(config, _DATASET)
    labels = rng.permutation(config.n_clips) % len(CLASSES)
    n_corrupt = round(config.corrupt_fraction * config.n_clips)
    corrupt = np.sort(rng.choice(config.n_clips, n_corrupt, replace=False))
    kinds = {int(i): CORRUPTIONS[k % len(CORRUPTIONS)] for k, i in enumerate(corrupt)}
    return [_plan_clip(config, i, int(labels[i]), kinds.get(i)) for i in range(config.n_clips)]


def _rng(config: DemoConfig, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([config.seed, stream, index])


def _plan_clip(config: DemoConfig, index: int, label: int, corruption: str | None) -> Clip:
    rng = _rng(config, _PLAN, index)
    own = np.arange(label, config.n_groups, len(CLASSES))
    if rng.random() < config.confound:
        group = int(rng.choice(own))
    else:
        group = int(rng.integers(config.n_groups))
    length = int(rng.integers(config.min_event_seconds, config.max_event_seconds + 1))
    start = int(rng.integers(0, config.clip_seconds - length + 1))
    snr_db = float(rng.uniform(*config.snr_db))
    opacity = float(rng.uniform(*config.shape_opacity))
    return Clip(index, label, group, start, start + length, snr_db, corruption, opacity)


def _make_clip(config: DemoConfig, out_dir: Path, clip: Clip) -> None:
    rng = _rng(config, _RENDER, clip.index)
    slope, hum_hz, tint = _group_style(config, clip.group)
    audio = _audio(config, clip, slope, hum_hz, rng)
    frames = _frames(config, clip, tint, rng)
    path = out_dir / f"{clip.video_id}.mp4"
    _write_mp4(path, audio, frames, config)
    if clip.corruption:
        _corrupt(path, clip.corruption, _rng(config, _CORRUPT, clip.index))


def _group_style(config: DemoConfig, group: int) -> tuple[float, float, np.ndarray]:
    """Spectral slope (0 white .. 2 brown), hum frequency and video tint of a group."""
    rng = _rng(config, _GROUP, group)
    slope = 2.0 * group / (config.n_groups - 1)
    return slope, float(rng.uniform(100.0, 1000.0)), rng.integers(60, 180, 3)


# Audio


def _audio(
    config: DemoConfig, clip: Clip, slope: float, hum_hz: float, rng: np.random.Generator
) -> np.ndarray:
    sr = config.sample_rate
    n = config.clip_seconds * sr
    t = np.arange(n) / sr
    mix = _BACKGROUND_RMS * _unit(_coloured_noise(rng, n, sr, slope))
    mix += 0.3 * _BACKGROUND_RMS * np.sin(2 * np.pi * hum_hz * t + rng.uniform(0, 2 * np.pi))
    start, end = clip.start * sr, clip.end * sr
    sound = _onset if config.audio_cue == "onset" else _SOUNDS[CLASSES[clip.label]]
    event = _unit(sound(rng, t[: end - start], sr))
    event *= _fades(end - start, int(_FADE_S * sr))
    mix[start:end] += _rms(mix) * 10 ** (clip.snr_db / 20) * event
    return (mix * min(1.0, _PEAK / np.abs(mix).max())).astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / _rms(x)


def _fades(n: int, ramp: int) -> np.ndarray:
    gain = np.ones(n)
    gain[:ramp] = np.linspace(0.0, 1.0, ramp)
    gain[n - ramp :] = np.linspace(1.0, 0.0, ramp)
    return gain


def _coloured_noise(rng: np.random.Generator, n: int, sr: int, slope: float) -> np.ndarray:
    """Noise with power falling as 1/f**slope (above 20 Hz)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n, 1 / sr), 20.0)
    return np.fft.irfft(spectrum * freqs ** (-slope / 2), n)


def _band_noise(rng: np.random.Generator, n: int, sr: int, low: float, high: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    return np.fft.irfft(spectrum * ((freqs >= low) & (freqs <= high)), n)


def _harmonic(rng: np.random.Generator, t: np.ndarray, sr: int) -> np.ndarray:
    f0 = rng.uniform(200.0, 400.0)
    phases = rng.uniform(0, 2 * np.pi, 6)
    return sum(0.6**h * np.sin(2 * np.pi * (h + 1) * f0 * t + phases[h]) for h in range(6))


def _chirp(rng: np.random.Generator, t: np.ndarray, sr: int) -> np.ndarray:
    tau = t % 1.0  # sweeps 300 -> 3000 Hz once per second
    return np.sin(2 * np.pi * (300.0 * tau + 0.5 * 2700.0 * tau**2))


def _am_noise(rng: np.random.Generator, t: np.ndarray, sr: int) -> np.ndarray:
    centre = rng.uniform(800.0, 2500.0)
    band = _band_noise(rng, len(t), sr, centre / 1.4, centre * 1.4)
    return band * (1 + np.sin(2 * np.pi * 8.0 * t + rng.uniform(0, 2 * np.pi)))


def _impulses(rng: np.random.Generator, t: np.ndarray, sr: int) -> np.ndarray:
    """About 10 clicks per second, each a 5 ms decaying noise burst."""
    beats = np.arange(0.05, t[-1], 0.1)
    times = beats + rng.uniform(-0.02, 0.02, len(beats))
    train = np.zeros(len(t))
    train[np.clip((times * sr).astype(int), 0, len(t) - 1)] = 1.0
    length = int(0.005 * sr)
    click = rng.standard_normal(length) * np.exp(-np.arange(length) / (0.001 * sr))
    return np.convolve(train, click)[: len(t)]


def _bell(rng: np.random.Generator, t: np.ndarray, sr: int) -> np.ndarray:
    """Inharmonic partials, restruck every 0.5 s."""
    base = rng.uniform(250.0, 500.0)
    since_strike = t % 0.5
    return sum(
        amp * np.exp(-since_strike / decay) * np.sin(2 * np.pi * ratio * base * t)
        for ratio, amp, decay in _BELL_PARTIALS
    )


def _rumble(rng: np.random.Generator, t: np.ndarray, sr: int) -> np.ndarray:
    tone = np.sqrt(2) * np.sin(2 * np.pi * rng.uniform(50.0, 60.0) * t)
    return _unit(_band_noise(rng, len(t), sr, 20.0, 150.0)) + 0.7 * tone


def _onset(rng: np.random.Generator, t: np.ndarray, sr: int) -> np.ndarray:
    """The shared event sound: 300-3000 Hz noise taps, struck every 0.25 s, 60 ms decay."""
    band = _band_noise(rng, len(t), sr, 300.0, 3000.0)
    return band * np.exp(-(t % _TAP_S) / _TAP_DECAY_S)


_SOUNDS: dict[str, Callable[[np.random.Generator, np.ndarray, int], np.ndarray]] = {
    "harmonic": _harmonic,
    "chirp": _chirp,
    "am_noise": _am_noise,
    "impulses": _impulses,
    "bell": _bell,
    "rumble": _rumble,
}

# Video


def _frames(
    config: DemoConfig, clip: Clip, tint: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    n, size = config.clip_seconds * config.fps, config.size
    noise = rng.normal(0.0, 6.0, (n, size, size, 3))
    frames = np.clip(tint + noise, 0, 255).astype(np.uint8)
    radius = 0.15 * size
    event = np.arange(clip.start * config.fps, clip.end * config.fps)
    centres = _bounce(rng, event / config.fps - clip.start, size, margin=1.6 * radius)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    shape, paint = _look(config, CLASSES[clip.label])
    for i, (cx, cy) in zip(event, centres, strict=True):
        inside = shape(xx - cx, yy - cy, radius)
        blend = clip.opacity * paint(inside) + (1 - clip.opacity) * frames[i][inside]
        frames[i][inside] = np.round(blend).astype(np.uint8)
    return frames


def _look(config: DemoConfig, name: str) -> tuple[Shape, Callable[[np.ndarray], np.ndarray]]:
    """The event's shape, and what colours the pixels of a (size, size) mask of it."""
    if config.visual_cue == "texture":
        return _circle, partial(_textured, TEXTURES[name])
    colour = np.asarray(_COLOURS[name])
    return _SHAPES[name], lambda inside: colour


def _textured(texture: Texture, inside: np.ndarray) -> np.ndarray:
    """Colours (k, 3) of the k pixels of `inside`: `texture` on the blocks of TEXTURE_BLOCK x
    TEXTURE_BLOCK pixels (from the top left corner) that lie wholly inside, its mean colour on
    the rest, so that an area average over such blocks shows no trace of the texture."""
    size, block = len(inside), TEXTURE_BLOCK
    whole = inside.reshape(size // block, block, size // block, block).all(axis=(1, 3))
    core = np.kron(whole, np.ones((block, block), bool))
    y, x = np.mgrid[0:size, 0:size]
    levels = np.asarray(_TEXTURE_LEVELS)
    picture = np.where(core[..., None], levels[texture(x, y)], levels.mean(axis=0))
    return picture[inside]


def _bounce(rng: np.random.Generator, t: np.ndarray, size: int, margin: float) -> np.ndarray:
    """Centres (len(t), 2) moving linearly from a random point, reflecting off the walls."""
    low, span = margin, size - 2 * margin
    angle = rng.uniform(0, 2 * np.pi)
    velocity = rng.uniform(0.4, 1.0) * size * np.array([np.cos(angle), np.sin(angle)])
    position = rng.uniform(0, span, 2) + velocity * t[:, None]
    folded = np.mod(position, 2 * span)
    return low + span - np.abs(folded - span)


def _circle(dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    return dx**2 + dy**2 <= r**2


def _square(dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    return np.maximum(np.abs(dx), np.abs(dy)) <= 0.85 * r


def _triangle(dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    return (dy <= r) & (np.abs(dx) <= (dy + r) / 2)


def _cross(dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    arm = r / 3
    return ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))


def _ring(dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    return ((0.55 * r) ** 2 <= dx**2 + dy**2) & (dx**2 + dy**2 <= r**2)


def _bar(dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    return (np.abs(dx) <= 1.6 * r) & (np.abs(dy) <= r / 3)


Shape = Callable[[np.ndarray, np.ndarray, float], np.ndarray]  # (dx, dy, radius) -> inside
Texture = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (x, y) pixel indices -> 0 or 1
_SHAPES: dict[str, Shape] = {
    "harmonic": _circle,
    "chirp": _square,
    "am_noise": _triangle,
    "impulses": _cross,
    "bell": _ring,
    "rumble": _bar,
}
# Class textures on pixel columns x and rows y: 0 dark, 1 light (_TEXTURE_LEVELS).
TEXTURES: dict[str, Texture] = {
    "harmonic": lambda x, y: y % 2,  # horizontal lines, period 2
    "chirp": lambda x, y: x % 2,  # vertical lines, period 2
    "am_noise": lambda x, y: (x + y) % 2,  # checker of 1-pixel squares
    "impulses": lambda x, y: y // 2 % 2,  # horizontal bands, period 4
    "bell": lambda x, y: x // 2 % 2,  # vertical bands, period 4
    "rumble": lambda x, y: (x // 2 + y // 2) % 2,  # checker of 2-pixel squares
}

# Files


def _write_mp4(path: Path, audio: np.ndarray, frames: np.ndarray, config: DemoConfig) -> None:
    """H.264 + AAC in MP4, moov first (faststart) so a truncated file still opens."""
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        # mbtree off: on tiny frames x264's macroblock-tree rate control gives run-to-run
        # different bitstreams for the same input (it reads memory it did not write).
        video = container.add_stream("libx264", rate=config.fps, options=_X264_OPTIONS)
        video.width = video.height = config.size
        video.pix_fmt = "yuv420p"
        video.codec_context.thread_count = 1
        sound = container.add_stream("aac", rate=config.sample_rate)
        sound.layout = "mono"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode())
        for start in range(0, len(audio), _AUDIO_FRAME):
            chunk = audio[None, start : start + _AUDIO_FRAME]
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = config.sample_rate
            frame.pts = start
            frame.time_base = Fraction(1, config.sample_rate)
            container.mux(sound.encode(frame))
        container.mux(sound.encode())


def _corrupt(path: Path, kind: str, rng: np.random.Generator) -> None:
    data = path.read_bytes()
    if kind == "garbage":
        path.write_bytes(rng.bytes(len(data)))
    elif kind == "truncated":
        path.write_bytes(data[: int(_TRUNCATE_TO * len(data))])
    else:
        path.write_bytes(b"")


def _write_tables(root: Path, clips: list[Clip]) -> None:
    annotations = ["Category&VideoID&Quality&StartTime&EndTime"]
    annotations += [f"{CLASSES[c.label]}&{c.video_id}&good&{c.start}&{c.end}" for c in clips]
    groups = ["video_id,group"] + [f"{c.video_id},{group_name(c.group)}" for c in clips]
    corrupt = ["video_id,corruption"]
    corrupt += [f"{c.video_id},{c.corruption}" for c in clips if c.corruption]
    for name, lines in ((ANNOTATIONS, annotations), (GROUPS, groups), (CORRUPT, corrupt)):
        (root / name).write_text("\n".join(lines) + "\n")


def _summary(clips: list[Clip]) -> dict:
    classes = Counter(CLASSES[c.label] for c in clips)
    groups = Counter(group_name(c.group) for c in clips)
    return {
        "n_clips": len(clips),
        "per_class": {name: classes[name] for name in CLASSES},
        "per_group": dict(sorted(groups.items())),
        "corrupt": {c.video_id: c.corruption for c in clips if c.corruption},
    }
