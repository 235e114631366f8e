"""The budget stage on the small demo (4 s clips; sizes 12, 28 and 52 px at k=1 spend equal
budgets): the uniform policy passes the uniform rows through untouched, anchored_topk takes each
second's row from the encoder of its resolution at the same cost, a flat clip falls back, an
unequal budget and mismatched encoders are refused naming what to fix, and the fallback rate is a
gate diagnostic a plan can hold fixed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avgate import budget
from avgate.config import BUDGET_POLICIES, Params
from avgate.declare import ConfigError
from avgate.errors import StageError
from avgate.gating.spec import parse_stage
from avgate.gating.verdict import judge
from avgate.gating.worsening import worsening
from avgate.layout import clips, inputs
from avgate.stages import budget as stage
from tests.conftest import embedded_project, write_params

ANCHORED = {"budget": {"policy": "anchored_topk"}}


@pytest.fixture(scope="module")
def embedded(small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project with the small demo embedded at three frame sizes and scored by energy."""
    with embedded_project(small_demo, tmp_path_factory.mktemp("budget")) as root:
        yield root


def rows(where: str | Path, split: str) -> np.ndarray:
    """`split`'s array of an encoder named `where`, or of the folder `where`."""
    folder = where if isinstance(where, Path) else clips.embedding_dir(where)
    return np.load(folder / f"{split}.npy")


def test_the_declared_policies_are_the_registered_ones_and_none():
    assert sorted(BUDGET_POLICIES) == sorted([*budget.POLICIES, "none"])


def test_uniform_passes_the_uniform_rows_through_and_plans_equal_budgets(embedded):
    summary = stage.run(write_params(embedded, {}))
    for split in clips.SPLITS:
        assert np.array_equal(rows(clips.BUDGETED, split), rows("frames", split))
    assert summary["fallback_used_frac"] == dict.fromkeys(clips.SPLITS, 0.0)
    planned = summary["planned"]
    assert planned["uniform"] == planned["anchored_topk"] and planned["gap"] == 0.0
    n_seconds = len(pd.read_parquet(clips.eventness_scores("energy")))
    assert planned["uniform"] == n_seconds * 4 * 28**2  # fps x size² per second
    assert json.loads(stage.REPORT.read_text()) == summary


def test_anchored_takes_each_second_from_its_resolution_at_the_uniform_cost(embedded):
    summary = stage.run(write_params(embedded, ANCHORED))
    allocation = pd.read_parquet(stage.ALLOCATION)
    assert not allocation.duplicated(["clip_id", "t"]).any()
    assert (allocation.groupby("clip_id")["high"].sum() == 1).all()  # k=1 on every clip
    for split in clips.SPLITS:
        index = pd.read_parquet(clips.BUDGETED / f"{split}.index.parquet")
        sizes = index.merge(allocation, on=["clip_id", "t"], how="left")["resolution"].to_numpy()
        got = rows(clips.BUDGETED, split)
        assert np.array_equal(got[sizes == 52], rows("frames_high", split)[sizes == 52])
        assert np.array_equal(got[sizes == 12], rows("frames_low", split)[sizes == 12])
        assert set(sizes) == {12, 52}
    spent = summary["spent"]
    planned = summary["planned"]
    assert sum(spent.values()) == pytest.approx(planned["anchored_topk"])
    hits = summary["val"]  # energy on the demo: louder seconds are the event's
    assert hits["event_share_of_high"] > hits["event_share_of_all"]


def test_the_anchor_follows_the_eventness_scores(embedded, monkeypatch):
    scores = pd.read_parquet(clips.eventness_scores("energy"))
    rigged = scores.assign(score=np.where(scores["t"] == 2, 1.0, 0.0))
    monkeypatch.setattr(stage, "read_scores", lambda method: rigged)
    stage.run(write_params(embedded, ANCHORED))
    allocation = pd.read_parquet(stage.ALLOCATION)
    assert (allocation.loc[allocation["high"], "t"] == 2).all()


def test_flat_eventness_falls_back_to_uniform_and_says_how_often(embedded, monkeypatch):
    scores = pd.read_parquet(clips.eventness_scores("energy"))
    flat_clips = scores["clip_id"].drop_duplicates().iloc[::2]
    flat = scores.assign(score=np.where(scores["clip_id"].isin(flat_clips), 0.5, scores["score"]))
    flat.loc[~flat["clip_id"].isin(flat_clips), "score"] = flat["t"] * 10.0  # std > 1
    monkeypatch.setattr(stage, "read_scores", lambda method: flat)
    summary = stage.run(write_params(embedded, {"budget": {**ANCHORED["budget"],
                                                           "fallback_std": 1.0}}))  # fmt: skip
    allocation = pd.read_parquet(stage.ALLOCATION)
    fell = allocation.groupby("clip_id")["fallback"].first()
    assert set(fell[fell].index) == set(flat_clips)
    assert (allocation.loc[allocation["fallback"], "resolution"] == 28).all()
    for split in clips.SPLITS:
        in_split = allocation[allocation["split"] == split].groupby("clip_id")["fallback"].first()
        assert summary["fallback_used_frac"][split] == pytest.approx(in_split.mean())
        spread = flat[flat["split"] == split].groupby("clip_id")["score"].std(ddof=0)
        assert summary["eventness_confidence"][split] == pytest.approx(spread.mean())
    meta = json.loads((clips.BUDGETED / "meta.json").read_text())
    assert meta["fallback_used_frac"] == summary["fallback_used_frac"]


def test_unequal_budgets_are_refused_naming_both(embedded):
    with pytest.raises(StageError, match=r"unequal visual budgets: uniform \d+, anchored \d+"):
        stage.run(write_params(embedded, {"budget": {"policy": "uniform", "k": 2}}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hist_bins": 4}, r"embed.frames_high differs from embed.frames in \['dim', 'hist_bins'"),
        ({"size": 20}, r"must grow in size, got sizes \[12, 28, 20\]"),
        ({"modality": "audio"}, r"budget.high 'frames_high' must be a visual encoder"),
    ],
)
def test_encoders_that_differ_beyond_size_are_refused(embedded, change, message):
    path = clips.embedding_dir("frames_high") / "meta.json"
    original = path.read_text()
    meta = json.loads(original)
    if "hist_bins" in change:
        meta["dim"] += 1
    path.write_text(json.dumps(meta | change))
    try:
        with pytest.raises(StageError, match=message):
            stage.run(write_params(embedded, ANCHORED))
    finally:
        path.write_text(original)


def test_none_leaves_the_model_on_every_encoder(embedded):
    params = write_params(embedded, {"budget": {"policy": "none"}})
    assert stage.run(params)["policy"] == "none"
    assert list(inputs.input_dirs(params)) == list(params.embed.encoders)
    x, _ = inputs.features(params, "val")
    dims = [json.loads((clips.embedding_dir(n) / "meta.json").read_text())["dim"]
            for n in params.embed.encoders]  # fmt: skip
    assert x.shape[1] == sum(dims)


def test_with_a_policy_the_model_reads_the_budgeted_rows_in_the_uniform_place(embedded):
    params = write_params(embedded, ANCHORED)
    stage.run(params)
    assert list(inputs.input_dirs(params)) == ["logmel", inputs.BUDGET_BLOCK]
    x, index = inputs.features(params, "val")
    logmel = rows("logmel", "val")
    assert np.array_equal(x[:, : logmel.shape[1]], logmel)
    assert np.array_equal(x[:, logmel.shape[1] :], rows(clips.BUDGETED, "val"))
    blocks = inputs.encoder_blocks(params)
    assert [(b.encoder, b.modality) for b in blocks] == [
        ("logmel", "audio"), (inputs.BUDGET_BLOCK, "visual")
    ]  # fmt: skip


def test_clip_context_appends_each_clips_maximum_and_doubles_the_blocks(embedded):
    params = write_params(embedded, {**ANCHORED, "train": {"clip_context": True}})
    stage.run(params)
    plain, index = inputs.fused_embeddings(params, "val")
    x, _ = inputs.features(params, "val")
    width = plain.shape[1]
    assert x.shape[1] == 2 * width
    first = index["clip_id"] == index["clip_id"].iloc[0]
    assert np.array_equal(x[first.to_numpy(), width:][0], plain[first.to_numpy()].max(axis=0))
    columns = inputs.modality_columns(params)
    assert sorted(np.concatenate(list(columns.values()))) == list(range(2 * width))
    spans = {b.encoder: b.spans for b in inputs.encoder_blocks(params)}
    assert spans[inputs.BUDGET_BLOCK][1][0] == width + spans[inputs.BUDGET_BLOCK][0][0]


@pytest.mark.parametrize(
    ("budget_section", "message"),
    [
        ({"uniform": "pictures"}, r"budget.uniform must name an encoder in embed.encoders"),
        ({"high": "frames"}, r"must be three different encoders"),
        ({"low": "logmel"}, r"must be one encoder kind at three sizes"),
    ],
)
def test_config_refuses_a_budget_on_encoders_it_cannot_use(budget_section, message):
    with pytest.raises(ConfigError, match=message):
        Params.from_dict({
            "embed": {"encoders": {"logmel": "logmel", "frames": "frames",
                                   "frames_low": "frames", "frames_high": "frames"},
                      "logmel": {}, "frames": {}, "frames_low": {}, "frames_high": {}},
            "budget": {"policy": "uniform", **budget_section},
        })  # fmt: skip


def test_a_plan_holding_the_fallback_rate_fixed_is_refused_when_it_rises():
    base = [{"budget": {"fallback_used_frac": {"val": 0.0}}}] * 3
    cand = [{"budget": {"fallback_used_frac": {"val": 0.2}}}] * 3
    rising = worsening("fallback_used_frac", base, cand)
    assert rising.worse == pytest.approx(0.2)
    assert "fallback" in rising.detail
    stage_spec = parse_stage({
        "name": "quick", "split": "val", "seeds": [0, 1, 2], "looks": 1,
        "statistic": "paired_t", "alternative": "greater", "alpha": 0.5, "min_delta": 0.0,
        "non_inferiority": {"fallback_used_frac": 0.0},
    })  # fmt: skip
    base_scores, cand_scores = np.array([0.5, 0.5, 0.5]), np.array([0.6, 0.62, 0.61])
    steady = worsening("fallback_used_frac", base, base)
    for diagnostic, passed in ((rising, False), (steady, True)):
        verdict = judge(stage_spec, "maximize", base_scores, cand_scores,
                        diagnostics={"fallback_used_frac": diagnostic})  # fmt: skip
        (record,) = [c for c in verdict.criteria if "fallback" in c.name]
        assert record.passed is passed
