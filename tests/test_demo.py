import hashlib
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avgate.config import Params
from avgate.declare import ConfigError
from avgate.demo.dataset import (
    AUDIO_CUES,
    CLASSES,
    CORRUPTIONS,
    VISUAL_CUES,
    DemoConfig,
    generate,
    plan,
)
from avgate.media import MediaError, decode_audio, verify
from avgate.stages import demo_data

SMALL = DemoConfig(seed=3, n_clips=6, clip_seconds=4, min_event_seconds=1, max_event_seconds=3)
TEXTURED = replace(SMALL, visual_cue="texture", audio_cue="onset")


def digests(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}


def annotations(root: Path) -> list[list[str]]:
    lines = (root / "Annotations.txt").read_text().splitlines()
    assert lines[0] == "Category&VideoID&Quality&StartTime&EndTime"
    return [line.split("&") for line in lines[1:]]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "small"
    generate(SMALL, root, progress=False)
    return root


@pytest.mark.parametrize("workers", [1, 2])
def test_same_config_gives_identical_files_whatever_the_workers(small, tmp_path, workers):
    generate(SMALL, tmp_path / "again", workers=workers, progress=False)
    again = digests(tmp_path / "again")
    assert len(again) == SMALL.n_clips + 3
    assert again == digests(small)


def test_the_texture_and_onset_cues_give_identical_files_and_other_clips(small, tmp_path):
    generate(TEXTURED, tmp_path / "one", progress=False)
    generate(TEXTURED, tmp_path / "two", workers=2, progress=False)
    one, two, shapes = digests(tmp_path / "one"), digests(tmp_path / "two"), digests(small)
    assert one == two
    assert one["Annotations.txt"] == shapes["Annotations.txt"]  # the cues change no plan
    assert all(one[f"v{i:04d}.mp4"] != shapes[f"v{i:04d}.mp4"] for i in range(SMALL.n_clips))


def test_different_seed_gives_different_files(small, tmp_path):
    generate(replace(SMALL, seed=4), tmp_path / "other", progress=False)
    before, after = digests(small), digests(tmp_path / "other")
    assert before["Annotations.txt"] != after["Annotations.txt"]
    assert all(before[f"v{i:04d}.mp4"] != after[f"v{i:04d}.mp4"] for i in range(SMALL.n_clips))


def test_annotations_are_ave_lines_with_valid_spans(small):
    rows = annotations(small)
    assert [row[1] for row in rows] == [f"v{i:04d}" for i in range(SMALL.n_clips)]
    assert sorted(row[0] for row in rows) == sorted(CLASSES)  # 6 clips: one per class
    for _, video_id, quality, start, end in rows:
        assert quality == "good"
        assert (small / f"{video_id}.mp4").stat().st_size > 0
        assert 0 <= int(start) < int(end) <= SMALL.clip_seconds
        assert SMALL.min_event_seconds <= int(end) - int(start) <= SMALL.max_event_seconds


def test_tables_and_summary_agree(tmp_path):
    summary = generate(SMALL, tmp_path / "d", progress=False)
    groups = pd.read_csv(tmp_path / "d" / "groups.csv")
    assert list(groups.columns) == ["video_id", "group"]
    assert groups["group"].str.fullmatch(r"ch(0\d|1[0-5])").all()
    assert summary["per_group"] == dict(sorted(Counter(groups["group"]).items()))
    assert summary["per_class"] == dict.fromkeys(CLASSES, 1)
    assert summary["corrupt"] == {}
    assert (tmp_path / "d" / "corrupt.csv").read_text() == "video_id,corruption\n"


@pytest.mark.parametrize("audio_cue", AUDIO_CUES)
def test_event_seconds_are_louder_than_background_seconds(tmp_path, audio_cue):
    config = replace(SMALL, snr_db=(20.0, 20.0), audio_cue=audio_cue)
    generate(config, tmp_path / "loud", progress=False)
    rate = config.sample_rate
    for label, video_id, _, start, end in annotations(tmp_path / "loud"):
        audio = decode_audio(tmp_path / "loud" / f"{video_id}.mp4", rate)
        per_second = audio[: config.clip_seconds * rate].reshape(config.clip_seconds, rate)
        energy = (per_second**2).mean(axis=1)
        in_event = np.zeros(config.clip_seconds, bool)
        in_event[int(start) : int(end)] = True
        assert energy[in_event].min() > 10 * energy[~in_event].max(), label


def spectral_centroids(config: DemoConfig, root: Path) -> list[float]:
    """The spectral centroid (Hz) of each clip's event seconds."""
    generate(config, root, progress=False)
    rate, centroids = config.sample_rate, []
    for _, video_id, _, start, end in annotations(root):
        audio = decode_audio(root / f"{video_id}.mp4", rate)[int(start) * rate : int(end) * rate]
        power = np.abs(np.fft.rfft(audio)) ** 2
        centroids.append(float((power * np.fft.rfftfreq(len(audio), 1 / rate)).sum() / power.sum()))
    return centroids


def test_the_onset_cue_sounds_the_same_for_every_class(tmp_path):
    loud = replace(SMALL, snr_db=(20.0, 20.0))
    own = spectral_centroids(loud, tmp_path / "class")  # 6 clips, one per class
    shared = spectral_centroids(replace(loud, audio_cue="onset"), tmp_path / "onset")
    assert max(own) > 10 * min(own)  # a rumble and a bell
    assert max(shared) < 1.1 * min(shared)


@pytest.mark.parametrize(("confound", "low", "high"), [(0.0, 0.1, 0.25), (0.3, 0.35, 0.5)])
def test_confound_sets_how_often_a_clip_comes_from_its_class_groups(confound, low, high):
    clips = plan(DemoConfig(n_clips=1200, confound=confound))
    own = np.mean([c.group % len(CLASSES) == c.label for c in clips])
    assert low < own < high


def test_classes_are_balanced():
    counts = Counter(c.label for c in plan(DemoConfig(n_clips=20)))
    assert sorted(counts) == list(range(len(CLASSES)))
    assert max(counts.values()) - min(counts.values()) <= 1


def test_full_confound_and_corruption(tmp_path):
    config = replace(SMALL, confound=1.0, corrupt_fraction=0.5)
    summary = generate(config, tmp_path / "bad", progress=False)
    rows = {row[1]: row[0] for row in annotations(tmp_path / "bad")}
    assert len(rows) == config.n_clips  # corrupt clips stay annotated
    groups = pd.read_csv(tmp_path / "bad" / "groups.csv")
    for video_id, group in zip(groups["video_id"], groups["group"], strict=True):
        assert int(group[2:]) % len(CLASSES) == CLASSES.index(rows[video_id])
    corrupt = pd.read_csv(tmp_path / "bad" / "corrupt.csv")
    assert sorted(corrupt["corruption"]) == sorted(CORRUPTIONS)
    assert summary["corrupt"] == dict(zip(corrupt["video_id"], corrupt["corruption"], strict=True))
    for video_id in rows:
        path = tmp_path / "bad" / f"{video_id}.mp4"
        if video_id in summary["corrupt"]:
            with pytest.raises(MediaError, match=str(path)):
                verify(path)
        else:
            assert verify(path).duration_s == pytest.approx(config.clip_seconds, abs=0.1)


def test_existing_out_dir_is_replaced_whole(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    generate(replace(SMALL, n_clips=1), out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [
        "Annotations.txt",
        "corrupt.csv",
        "groups.csv",
        "v0000.mp4",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # no temporary siblings left


@pytest.mark.parametrize(
    "change",
    [
        {"size": 63},
        {"n_groups": 5},
        {"min_event_seconds": 5},
        {"confound": 1.5},
        {"seed": -1},
        {"visual_cue": "colour"},
        {"audio_cue": "speech"},
        {"visual_cue": "texture", "size": 66},  # the texture fills 4 x 4 blocks
    ],
)
def test_invalid_config_is_rejected(change):
    with pytest.raises(ValueError, match="DemoConfig"):
        replace(SMALL, **change)


@pytest.mark.parametrize(
    ("visual_cue", "audio_cue"), list(zip(VISUAL_CUES, AUDIO_CUES, strict=True))
)
def test_the_demo_params_choose_the_cues(visual_cue, audio_cue):
    params = Params.from_dict({"demo": {"visual_cue": visual_cue, "audio_cue": audio_cue}})
    config = demo_data._demo_config(params)
    assert (config.visual_cue, config.audio_cue) == (visual_cue, audio_cue)


@pytest.mark.parametrize("key", ["visual_cue", "audio_cue"])
def test_an_unknown_cue_is_refused_naming_the_key(key):
    with pytest.raises(ConfigError, match=rf"demo\.{key} must be one of \["):
        Params.from_dict({"demo": {key: "colour"}})
