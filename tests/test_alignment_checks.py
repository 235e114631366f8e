"""The alignment probe and its checks: on the small demo the sound and the picture mark the same
seconds and no clip looks mismatched; rolling the video across clips makes the detector flag
them; the test split's labels are never read; the probe says why where it does not apply, and
`av_alignment` and `av_mismatch` pass, fail and stand aside on hand-written probe files."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from avgate.config import Params
from avgate.files import write_json
from avgate.gating.go_verdict import FAIL, NOT_APPLICABLE, PASS, record
from avgate.gating.spec import parse_checks
from avgate.go import Context
from avgate.layout.results import APPLIES, probe_path
from avgate.probes import PROBES
from avgate.probes.alignment import LABELLED, Alignment, mismatched, pair_correlations, two_means
from tests import go_evidence as ev
from tests.conftest import embedded_project, merge, write_params
from tests.scratch import REPO

SEEDS = (0, 1)


def judged(root: Path, name: str, options: dict | None = None) -> dict:
    (check,) = parse_checks({name: options})
    return record(check, Context(SEEDS, root))


# The checks on hand-written probe files


@pytest.mark.parametrize(
    ("name", "key", "good", "bad"),
    [("av_alignment", "agreement", 0.9, 0.89), ("av_mismatch", "mismatched_share", 0.02, 0.03)],
)
def test_each_check_passes_at_its_threshold_and_fails_past_it(tmp_path, name, key, good, bad):
    ev.write_run(tmp_path, SEEDS)
    ev.edit(tmp_path, ev.ALIGNMENT, lambda d: d.update({key: good}))
    passed = judged(tmp_path, name, {})
    assert (passed["status"], passed["value"]) == (PASS, good)
    assert passed["evidence"] == [ev.ALIGNMENT]
    ev.edit(tmp_path, ev.ALIGNMENT, lambda d: d.update({key: bad}))
    failed = judged(tmp_path, name, {})
    assert (failed["status"], failed["value"]) == (FAIL, bad)


def test_the_details_say_what_was_measured(tmp_path):
    ev.write_run(tmp_path, SEEDS)
    flagged = [f"v{i:04d}" for i in range(7)]
    ev.edit(tmp_path, ev.ALIGNMENT, lambda d: d.update(
        n_mismatched=7, mismatched_share=0.14, mismatched_clips=flagged))  # fmt: skip
    alignment = judged(tmp_path, "av_alignment", {"min_agreement": 0.96})
    assert alignment["status"] == FAIL
    assert alignment["detail"] == (
        "audio and visual event calls agree (share of 500 annotated seconds of 50 train+val "
        "clips; with the labels: audio 0.96, visual 0.97): 0.95 < 0.96"
    )
    mismatch = judged(tmp_path, "av_mismatch", {})
    assert mismatch["status"] == FAIL
    assert mismatch["detail"].startswith(
        "7 of 50 clips (v0000, v0001, v0002, v0003, v0004, ...) correlate with their own video"
    )
    assert mismatch["detail"].endswith("share 0.14 > 0.02")


@pytest.mark.parametrize("name", ["av_alignment", "av_mismatch"])
def test_neither_check_applies_where_the_probe_did_not(tmp_path, name):
    ev.write_run(tmp_path, SEEDS, modalities=("audio",))
    plain = judged(tmp_path, name, {})
    assert plain["status"] == NOT_APPLICABLE and plain["value"] is None
    assert plain["detail"] == f"{ev.ALIGNMENT}: no visual encoder"


@pytest.mark.parametrize("name", ["av_alignment", "av_mismatch"])
def test_a_probe_file_without_the_figure_fails_naming_the_key(tmp_path, name):
    ev.write_run(tmp_path, SEEDS)
    key = {"av_alignment": "agreement", "av_mismatch": "mismatched_share"}[name]
    ev.edit(tmp_path, ev.ALIGNMENT, lambda d: d.pop(key))
    plain = judged(tmp_path, name, {})
    assert plain["status"] == FAIL
    assert plain["detail"].startswith(f"{ev.ALIGNMENT}: no {key} ")


# The probe's pieces


def test_two_means_finds_events_of_any_length_and_calls_a_flat_clip_background():
    for length in (1, 5, 9):
        course = np.r_[np.zeros(10 - length), np.ones(length)] + np.linspace(0, 0.1, 10)
        assert two_means(course).tolist() == [False] * (10 - length) + [True] * length
    assert not two_means(np.full(4, 0.3)).any()


def test_swapped_pairs_are_cut_to_the_shorter_clip_and_a_flat_course_correlates_zero():
    audio = [np.array([0.0, 1, 1, 0]), np.array([0.0, 1]), np.array([1.0, 1, 1])]
    visual = [np.array([0.0, 2, 2, 0]), np.array([5.0, 5]), np.array([0.0, 1, 0])]
    correlations = pair_correlations(audio, visual)
    assert correlations[0, 0] == pytest.approx(1.0)
    assert correlations[0, 2] == pytest.approx(np.corrcoef([0, 1, 1], [0, 1, 0])[0, 1])
    assert correlations[1, 1] == 0.0 and (correlations[2] == 0.0).all()
    assert mismatched(correlations).tolist() == [False, True, True]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"task": {"kind": "clip"}}, "task.kind clip: no per-second labels"),
        ({"embed": {"encoders": {"logmel": "logmel"}}}, "are not both in embed.encoders"),
        ({"eventness": {"audio_encoder": "frames"}}, "'frames' does not embed audio"),
        ({"embed": {"encoders": {"logmel": "logmel", "frames": "logmel"}}}, "is no frames"),
        ({"eventness": {"method": "av_agreement"}}, "av_agreement reads the video"),
    ],
)
def test_the_probe_says_why_it_does_not_apply(overrides, reason):
    repo = yaml.safe_load((REPO / "params.yaml").read_text())
    assert Alignment().applies(Params.from_dict(repo)) is None
    unbudgeted = {"budget": {"policy": "none"}, **overrides}
    assert reason in Alignment().applies(Params.from_dict(merge(repo, unbudgeted)))


# The probe on the small demo


@pytest.fixture(scope="module")
def embedded(small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The small demo ingested, split, embedded and scored for eventness; the working dir."""
    with embedded_project(small_demo, tmp_path_factory.mktemp("alignment")) as root:
        yield root


@contextmanager
def changed(*paths: Path) -> Iterator[None]:
    """Restore the files at `paths` afterwards."""
    saved = {path: path.with_name(path.name + ".saved") for path in paths}
    for path, copy in saved.items():
        shutil.copy2(path, copy)
    try:
        yield
    finally:
        for path, copy in saved.items():
            copy.replace(path)


def probed(root: Path) -> dict:
    """The probe's result, written where the checks read it."""
    params = write_params(root, {})
    assert Alignment().applies(params) is None
    result = {APPLIES: True, **Alignment().run(params).result}
    write_json(root / probe_path("alignment"), result)
    return result


def test_on_the_aligned_demo_the_streams_agree_and_no_clip_is_mismatched(embedded):
    assert "alignment" in PROBES
    result = probed(embedded)
    assert result["n_clips"] == sum(r["n_clips"] for r in result["by_split"].values())
    assert result["agreement"] >= 0.9
    assert min(result["audio_label_agreement"], result["visual_label_agreement"]) >= 0.9
    assert result["mismatched_share"] <= 0.02 and result["mismatch_rule"]
    assert result["own_correlation_median"] > result["swapped_correlation_median"]
    assert judged(embedded, "av_alignment", {})["status"] == PASS
    assert judged(embedded, "av_mismatch", {})["status"] == PASS
    assert probed(embedded) == result  # deterministic


def test_rolling_the_video_across_clips_raises_the_mismatched_share(embedded):
    aligned = probed(embedded)
    folder = embedded / "data/embeddings/frames"
    files = [folder / f"{split}.npy" for split in LABELLED]
    with changed(*files):
        for path in files:
            rows = np.load(path)
            index = pd.read_parquet(path.with_suffix(".index.parquet"))
            first_clip = int((index["clip_id"] == index["clip_id"].iloc[0]).sum())
            np.save(path, np.roll(rows, first_clip, axis=0))  # each clip gets another's video
        rolled = probed(embedded)
        assert judged(embedded, "av_mismatch", {})["status"] == FAIL
        assert judged(embedded, "av_alignment", {})["status"] == FAIL
    assert rolled["mismatched_share"] >= 0.25 > aligned["mismatched_share"]
    assert len(rolled["mismatched_clips"]) == min(rolled["n_mismatched"], 20)
    assert rolled["agreement"] < aligned["agreement"]


def test_the_test_labels_are_never_read(embedded):
    before = probed(embedded)
    segments = embedded / "data/interim/demo/segments.parquet"
    splits = pd.read_parquet(embedded / "data/splits/demo/splits.parquet")
    test_clips = set(splits.loc[splits["split"] == "test", "clip_id"])
    assert test_clips
    with changed(segments):
        table = pd.read_parquet(segments)
        table.loc[table["clip_id"].isin(test_clips), "label"] = "not a label"
        table.to_parquet(segments)
        assert probed(embedded) == before
        table[~table["clip_id"].isin(test_clips)].to_parquet(segments)
        assert probed(embedded) == before
