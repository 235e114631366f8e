"""Tiny datasets on disk in each real layout, with real short media and known answers.

Each `write_*` fills `root` and returns the records its format should give: the contract's
columns, sorted by clip_id. WAVs are 16 kHz mono tones, one frequency per clip. The layouts hold
3 labels x 6 groups x 2 clips with every group holding every label (ESC-50: 6 source recordings
per label, as in the real set; AVE: the demo's 6 classes over 6 recording channels), so a
grouped train/val/test split can see every label. `snapshot` proves a folder was left as is.
`FIXTURES` holds, per registered dataset format, what tests/test_format_contract.py runs it on.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from avgate.demo.dataset import CLASSES, DemoConfig, generate, group_name, plan

SAMPLE_RATE = 16000
LABELS = ("dog", "rain", "siren")
GROUPS = ("alice", "bob", "carol", "dave", "erin", "frank")
TAKES = 2
SPLIT_OF_GROUP = dict(zip(GROUPS, ("train",) * 4 + ("val", "test"), strict=True))
FOLDER_PATTERN = r"^(?P<group>[^_]+)_"
# Seed 1 puts every class in at least 3 of the 6 channels.
AVE_CONFIG = DemoConfig(
    seed=1, n_clips=36, n_groups=6, clip_seconds=2, min_event_seconds=1, max_event_seconds=2
)
AVE_SPLIT_OF_GROUP = {group_name(g): "train" for g in range(4)} | {"ch04": "val", "ch05": "test"}


def write_tone(path: Path, frequency: float, seconds: float = 0.5) -> None:
    """A mono sine at `frequency` Hz, 16-bit, format from the suffix (.wav, .flac)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    samples = 0.5 * np.sin(2 * np.pi * frequency * t)
    with open(path, "wb") as stream:  # soundfile cannot open a non-UTF-8 name itself
        sf.write(stream, samples, SAMPLE_RATE, "PCM_16", format=path.suffix[1:].upper())


def _frequency(label: int, group: int, take: int) -> float:
    return 220.0 * (label + 1) + 20.0 * group + 5.0 * take


def _expected(rows: list[dict]) -> pd.DataFrame:
    """The records contract: columns in order, int columns int64, sorted by clip_id."""
    frame = pd.DataFrame(rows)
    order = ["clip_id", "path", "label", "group", "start_s", "end_s", "fold", "split"]
    ints = {c: "int64" for c in ("start_s", "end_s", "fold") if c in frame}
    frame = frame[[c for c in order if c in frame]].astype(ints)
    return frame.sort_values("clip_id", ignore_index=True)


def write_fsdd(root: Path) -> pd.DataFrame:
    """`recordings/{digit}_{speaker}_{index}.wav` for digits 0-2 and six speakers, plus a README."""
    rows = []
    for d, g, take in np.ndindex(len(LABELS), len(GROUPS), TAKES):
        name = f"{d}_{GROUPS[g]}_{take}.wav"
        write_tone(root / "recordings" / name, _frequency(d, g, take))
        path = str(root / "recordings" / name)
        rows.append({"clip_id": name[:-4], "path": path, "label": str(d), "group": GROUPS[g]})
    (root / "README.md").write_text("# Free Spoken Digit Dataset (tiny)\n")
    return _expected(rows)


def write_esc50(root: Path) -> pd.DataFrame:
    """`meta/esc50.csv` and `audio/{fold}-{src_file}-{take}-{target}.wav`: six sources a label."""
    meta, rows = [], []
    for target, source, take in np.ndindex(len(LABELS), len(GROUPS), TAKES):
        src_file, fold = str(100000 + 1000 * target + source), source % 5 + 1
        filename = f"{fold}-{src_file}-{'AB'[take]}-{target}.wav"
        write_tone(root / "audio" / filename, _frequency(target, source, take))
        meta.append((filename, fold, target, LABELS[target], "False", src_file, "AB"[take]))
        rows.append(
            {
                "clip_id": filename[:-4],
                "path": str(root / "audio" / filename),
                "label": LABELS[target],
                "group": src_file,
                "fold": fold,
            }
        )
    (root / "meta").mkdir()
    with open(root / "meta/esc50.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        writer.writerows(meta)
    return _expected(rows)


def write_folder(root: Path) -> pd.DataFrame:
    """`<label>/<speaker>_<take>.wav|.flac` plus files to ignore; groups as FOLDER_PATTERN finds."""
    rows = []
    for label, g, take in np.ndindex(len(LABELS), len(GROUPS), TAKES):
        relative = f"{LABELS[label]}/{GROUPS[g]}_{take}.{('wav', 'flac')[take]}"
        write_tone(root / relative, _frequency(label, g, take))
        clip_id = relative.rsplit(".", 1)[0]
        path = str(root / relative)
        rows.append({"clip_id": clip_id, "path": path, "label": LABELS[label], "group": GROUPS[g]})
    (root / "README.txt").write_text("one folder per label\n")
    (root / LABELS[0] / "notes.csv").write_text("file,note\n")
    return _expected(rows)


def write_csv(
    root: Path,
    name: str = "manifest.csv",
    group: bool = True,
    split: bool = True,
    span: bool = True,
) -> pd.DataFrame:
    """`clips/<speaker>/<label>_<take>.wav` and a manifest with path,label and the optional
    columns asked for (split by speaker: four train, one val, one test; span [take, take + 1)).
    """
    columns = ["path", "label"] + ["group"] * group + ["split"] * split + ["start", "end"] * span
    lines, rows = [], []
    for label, g, take in np.ndindex(len(LABELS), len(GROUPS), TAKES):
        relative = f"clips/{GROUPS[g]}/{LABELS[label]}_{take}.wav"
        write_tone(root / relative, _frequency(label, g, take), seconds=2.0)
        clip_id = relative[:-4]
        cells = {"path": relative, "label": LABELS[label], "group": GROUPS[g]}
        cells |= {"split": SPLIT_OF_GROUP[GROUPS[g]], "start": take, "end": take + 1}
        lines.append([cells[c] for c in columns])
        row = {"clip_id": clip_id, "path": str(root / relative), "label": LABELS[label]}
        row["group"] = GROUPS[g] if group else clip_id
        if split:
            row["split"] = cells["split"]
        if span:
            row |= {"start_s": take, "end_s": take + 1}
        rows.append(row)
    with open(root / name, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        writer.writerows(lines)
    return _expected(rows)


def write_ave(root: Path, splits: bool = True) -> pd.DataFrame:
    """The demo generator's AVE layout (`<VideoID>.mp4`, Annotations.txt, groups.csv, ...) for
    AVE_CONFIG, and with `splits` official split files assigning whole channels (about 1 s).
    """
    generate(AVE_CONFIG, root, progress=False)
    clips = plan(AVE_CONFIG)
    rows = [
        {
            "clip_id": clip.video_id,
            "path": str(root / f"{clip.video_id}.mp4"),
            "label": CLASSES[clip.label],
            "group": group_name(clip.group),
            "start_s": clip.start,
            "end_s": clip.end,
        }
        for clip in clips
    ]
    if splits:
        lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
        for clip, row in zip(clips, rows, strict=True):
            row["split"] = AVE_SPLIT_OF_GROUP[row["group"]]
            line = f"{row['label']}&{clip.video_id}&good&{clip.start}&{clip.end}"
            lines[row["split"]].append(line)
        for split, name in (("train", "trainSet"), ("val", "valSet"), ("test", "testSet")):
            (root / f"{name}.txt").write_text("\n".join(lines[split]) + "\n")
    return _expected(rows)


def snapshot(root: Path) -> dict[str, bytes | str | None]:
    """Every entry under `root` without following links: file bytes, link targets, None for
    folders. Equal snapshots before and after mean nothing was written, renamed or removed.
    """
    entries: dict[str, bytes | str | None] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            key = os.path.relpath(path, root)
            if os.path.islink(path):
                entries[key] = "-> " + os.readlink(path)
            elif name in dirs:
                entries[key] = None
            else:
                entries[key] = Path(path).read_bytes()
    return entries


# --- one fixture per registered dataset format, for tests/test_format_contract.py -------------


@dataclass(frozen=True)
class Fixture:
    """A format's small dataset: `write(root)` fills `root` and returns the expected records,
    `options` are the ones it is read with (its `data.<format>` section), and `spoil(root)`
    breaks one file of a written dataset and returns that file, which the error must name."""

    write: Callable[[Path], pd.DataFrame]
    spoil: Callable[[Path], Path]
    options: dict = field(default_factory=dict)


def _append(path: Path, line: str) -> Path:
    with open(path, "a") as stream:
        stream.write(line + "\n")
    return path


def _spoil_ave(root: Path) -> Path:
    """Annotations.txt without a usable line."""
    path = root / "Annotations.txt"
    path.write_text("Category&VideoID&Quality&StartTime&EndTime\nbell&v0001&good&3\n")
    return path


def _spoil_fsdd(root: Path) -> Path:
    """A WAV not named {digit}_{speaker}_{index}.wav."""
    path = root / "recordings/jackson_3.wav"
    write_tone(path, 300.0)
    return path


def _spoil_folder(root: Path) -> Path:
    """A media file outside every label folder."""
    path = root / "stray.wav"
    write_tone(path, 300.0)
    return path


FIXTURES: dict[str, Fixture] = {
    "ave": Fixture(write_ave, _spoil_ave),
    "esc50": Fixture(
        write_esc50, lambda root: _append(root / "meta/esc50.csv", "x.wav,one,0,dog,False,1,A")
    ),
    "fsdd": Fixture(write_fsdd, _spoil_fsdd),
    "folder": Fixture(write_folder, _spoil_folder, {"group_pattern": FOLDER_PATTERN}),
    "csv": Fixture(write_csv, lambda root: _append(root / "manifest.csv", "a.wav,dog")),
}
