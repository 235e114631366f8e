"""Stages run in-process on the small demo: ingest reporting, splitting, determinism, scores."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from avgate.errors import StageError
from avgate.layout import clips
from avgate.stages import embed, ingest, split
from avgate.stages.train import evaluate, summarize, train_seed
from tests.conftest import run_until_train, train_every_seed, write_params


def corrupt(root, clip_id: str, how: str) -> None:
    path = root / "data/raw/demo" / f"{clip_id}.mp4"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 5] if how == "truncated" else b"\x00junk" * 100)


def test_ingest_reports_corrupt_and_truncated_files_without_crashing(project):
    corrupt(project, "v0003", "garbage")
    corrupt(project, "v0007", "truncated")
    params = write_params(project, {"ingest": {"min_ok_fraction": 0.5}})
    before = {p.name: p.read_bytes() for p in (project / "data/raw/demo").iterdir()}
    summary = ingest.run(params)
    assert summary["n_files"] == 48 and summary["n_ok"] == 46 and summary["n_failed"] == 2
    reasons = {f["clip_id"]: f["reason"] for f in summary["failures"]}
    assert set(reasons) == {"v0003", "v0007"}
    assert all("v000" in reason for reason in reasons.values())  # each reason names the file
    manifest = pd.read_parquet(project / "data/interim/demo/manifest.parquet")
    assert manifest.set_index("clip_id").loc["v0007", "status"] == reasons["v0007"]
    segments = pd.read_parquet(project / "data/interim/demo/segments.parquet")
    assert not {"v0003", "v0007"} & set(segments["clip_id"])
    assert json.loads((project / "metrics/ingest.json").read_text()) == summary
    after = {p.name: p.read_bytes() for p in (project / "data/raw/demo").iterdir()}
    assert after == before  # raw data is never modified


def test_ingest_fails_below_the_usable_share_after_writing_its_report(project):
    for clip_id in ("v0001", "v0002", "v0003"):
        corrupt(project, clip_id, "garbage")
    params = write_params(project, {"ingest": {"min_ok_fraction": 0.95}})
    with pytest.raises(StageError, match=r"only 45 of 48 files are usable") as error:
        ingest.run(params)
    assert "v0001.mp4" in str(error.value)
    assert json.loads((project / "metrics/ingest.json").read_text())["n_failed"] == 3
    assert not (project / "data/interim/demo/manifest.parquet").exists()


def test_segments_label_the_event_span_and_background_elsewhere(project):
    params = write_params(project, {})
    ingest.run(params)
    manifest = pd.read_parquet(project / "data/interim/demo/manifest.parquet")
    segments = pd.read_parquet(project / "data/interim/demo/segments.parquet")
    clip = manifest.iloc[0]
    labels = segments[segments["clip_id"] == clip["clip_id"]]["label"].tolist()
    expected = [
        clip["label"] if clip["start_s"] <= t < clip["end_s"] else "background" for t in range(4)
    ]
    assert labels == expected


def test_split_has_zero_group_overlap_and_writes_its_proof(project):
    params = write_params(project, {})
    ingest.run(params)
    summary = split.run(params)
    assert summary["group_overlap"] == {"train|val": 0, "train|test": 0, "val|test": 0}
    splits = pd.read_parquet(project / "data/splits/demo/splits.parquet")
    manifest = pd.read_parquet(project / "data/interim/demo/manifest.parquet")
    table = splits.merge(manifest, on="clip_id")
    assert table.groupby("group")["split"].nunique().max() == 1
    assert set(table["split"]) == {"train", "val", "test"}


def test_embeddings_are_aligned_per_second_and_reproducible(project):
    params = write_params(project, {})
    run_until_train(params)
    logmel = np.load(project / "data/embeddings/logmel/train.npy")
    index = pd.read_parquet(project / "data/embeddings/logmel/train.index.parquet")
    frames_index = pd.read_parquet(project / "data/embeddings/frames/train.index.parquet")
    assert logmel.shape == (len(index), 128) and index.equals(frames_index)
    assert index.groupby("clip_id")["t"].apply(list).map(lambda t: t == [0, 1, 2, 3]).all()
    assert np.isfinite(logmel).all()
    meta = json.loads((project / "data/embeddings/frames/meta.json").read_text())
    assert meta["dim"] == 3 * 8 + 16 + 19 and meta["modality"] == "visual"
    before = {p: p.read_bytes() for p in (project / "data/embeddings").rglob("*") if p.is_file()}
    for name in params.embed.encoders:
        embed.run(params, name)
    after = {p: p.read_bytes() for p in (project / "data/embeddings").rglob("*") if p.is_file()}
    assert after == before  # the whole folder, meta.json included, hashes the same for DVC
    profile = json.loads((project / "data/profiles/embed/logmel.json").read_text())
    assert profile["embedded"] == 0 and profile["reused"] == profile["clips"] > 0


def test_the_store_embeds_only_new_clips_and_changes_nothing(project, monkeypatch):
    params = write_params(project, {"embed": {"encoders": {"logmel": "logmel"}}})
    ingest.run(params)
    split.run(params)
    every = clips.usable_clips(params)
    held_back = every[every["split"] == "train"]["clip_id"].head(3).tolist()
    with monkeypatch.context() as patch:
        patch.setattr(embed, "usable_clips", lambda p: every[~every["clip_id"].isin(held_back)])
        embed.run(params, "logmel")
    first = json.loads((project / "data/profiles/embed/logmel.json").read_text())
    assert first["embedded"] == len(every) - 3 and first["reused"] == 0
    embed.run(params, "logmel")  # three clips added
    second = json.loads((project / "data/profiles/embed/logmel.json").read_text())
    assert (second["embedded"], second["reused"]) == (3, len(every) - 3)
    incremental = {p.name: p.read_bytes() for p in (project / "data/embeddings/logmel").iterdir()}
    shutil.rmtree(project / params.embed.cache_dir)
    embed.run(params, "logmel")  # from scratch
    assert json.loads((project / "data/profiles/embed/logmel.json").read_text())["embedded"] == len(
        every
    )
    scratch = {p.name: p.read_bytes() for p in (project / "data/embeddings/logmel").iterdir()}
    assert incremental == scratch


@pytest.mark.parametrize("kind", ["event", "clip"])
def test_same_seed_gives_bit_identical_predictions(project, kind):
    primary = "segment_accuracy" if kind == "event" else "accuracy"
    params = write_params(
        project, {"task": {"kind": kind}, "evaluate": {"primary_metric": primary}}
    )
    run_until_train(params)
    outputs = []
    for _ in range(2):
        shutil.rmtree(project / "models", ignore_errors=True)
        shutil.rmtree(project / "predictions", ignore_errors=True)
        train_seed.run(params, seed=0)
        evaluate.run(params, seed=0)
        outputs.append(pd.read_parquet(project / "predictions/seed0/test.parquet"))
    assert outputs[0].equals(outputs[1])
    logits = outputs[0].filter(like="logit_").to_numpy()
    assert np.array_equal(logits, outputs[1].filter(like="logit_").to_numpy())
    if kind == "clip":
        assert "t" not in outputs[0] and outputs[0]["clip_id"].is_unique
    else:
        assert {"clip_id", "t", "logit_background"} <= set(outputs[0].columns)
    assert "label" not in outputs[0]  # the test split is sealed: its labels are not stored
    train_seed.run(params, seed=1)
    evaluate.run(params, seed=1)
    other = pd.read_parquet(project / "predictions/seed1/test.parquet")
    assert not np.array_equal(logits, other.filter(like="logit_").to_numpy())


def test_summary_aggregates_seeds_and_beats_the_majority_baseline(project):
    params = write_params(project, {})
    run_until_train(params)
    train_every_seed(params)
    summary = summarize.run(params)
    per_seed = [
        json.loads((project / f"predictions/seed{s}/metrics.json").read_text())
        for s in params.train.seeds
    ]
    assert not any(k.startswith("test") or k.endswith("_test") for m in per_seed for k in m)
    values = [m["val"]["segment_accuracy"] for m in per_seed]
    val = summary["val"]["segment_accuracy"]
    assert val["mean"] == pytest.approx(np.mean(values))
    assert val["std"] == pytest.approx(np.std(values, ddof=1))
    assert val["per_seed"] == {"seed0": values[0], "seed1": values[1]}
    assert val["mean"] > summary["majority_baseline"]["val"]["segment_accuracy"] + 0.1
    assert "test" not in summary
    curves = pd.read_csv(project / "plots/train_curves.csv")
    assert set(curves["seed"]) == {"seed0", "seed1"}
    assert {"epoch", "train_loss", "val_loss", "val_accuracy"} <= set(curves.columns)
    confusion = pd.read_csv(project / "plots/confusion.csv")
    assert len(confusion) == 2 * len(pd.read_parquet(project / "predictions/seed0/val.parquet"))


def test_training_refuses_missing_embeddings_with_the_command_to_run(project):
    params = write_params(project, {})
    ingest.run(params)
    split.run(params)
    with pytest.raises(StageError, match=r"run `dvc repro embed@logmel`"):
        train_seed.run(params, seed=0)
