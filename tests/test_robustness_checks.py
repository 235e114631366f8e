"""The modality probes (items, stress, policies) on hand-built heads whose use of the audio is
known, the checks that read them on hand-written probe files, and the probes on the small demo
trained with a gated fusion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from avgate.config import Params
from avgate.gating.go_verdict import FAIL, NOT_APPLICABLE, PASS, record
from avgate.gating.spec import parse_checks
from avgate.go import Context
from avgate.layout.inputs import Examples
from avgate.models.fused import Block, FusedHead
from avgate.probes import PROBES
from avgate.probes.items import (
    AudioVisualRun,
    SeedHead,
    audio_visual_reason,
    item_outcomes,
    summarise,
)
from avgate.probes.policies import seed_points
from avgate.probes.stress import seed_stress
from avgate.probes.stress import summarise as stress_summary
from tests import go_evidence as ev
from tests.conftest import embedded_project, train_every_seed, write_params

CLASSES = ["a", "b", "c"]
BLOCKS = [Block("logmel", "audio", ((0, 4),)), Block("frames", "visual", ((4, 8),))]
AUDIO, VISUAL = np.arange(0, 4), np.arange(4, 8)
N_CLIPS, SECONDS = 8, 6


def synthetic() -> Examples:
    """Rows whose class shows, as a one-hot of strength 3, in both the audio and the visual."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, N_CLIPS * SECONDS)
    cue = np.zeros((len(y), 4))
    cue[np.arange(len(y)), y] = 3.0
    x = np.concatenate([cue, cue], axis=1) + rng.normal(0, 0.1, (len(y), 8))
    index = pd.DataFrame({
        "clip_id": np.repeat([f"c{i}" for i in range(N_CLIPS)], SECONDS),
        "t": np.tile(np.arange(SECONDS), N_CLIPS),
    })  # fmt: skip
    return Examples(x.astype(np.float32), np.asarray(CLASSES)[y], index)


def reader(columns: np.ndarray, fusion: str = "concat") -> FusedHead:
    """A linear head that reads the class off `columns` (one modality) and ignores the rest."""
    model = FusedHead(BLOCKS, 3, "linear", fusion, hidden=4, dropout=0.0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        pick = torch.zeros(3, 8)
        pick[torch.arange(3), torch.as_tensor(columns[:3])] = 1.0
        if fusion == "concat":
            model.classifier.linear.weight.copy_(pick)
        else:  # each modality's projection keeps its first 3 features; the gate scales them
            modality = "audio" if columns[0] == AUDIO[0] else "visual"
            model.fusion.projections[modality].weight[:3, :3] = torch.eye(3)
            model.fusion.projections[_other(modality)].weight[:3, :3] = 0.1 * torch.eye(3)
            model.classifier.linear.weight[:, :3] = torch.eye(3)
    return model.eval()


def _other(modality: str) -> str:
    return "visual" if modality == "audio" else "audio"


def run_of(*models: FusedHead) -> AudioVisualRun:
    heads = tuple(SeedHead(seed, model, None) for seed, model in enumerate(models))
    return AudioVisualRun(synthetic(), CLASSES, AUDIO, VISUAL, heads)


def items_of(run: AudioVisualRun) -> dict:
    rights = {
        head.seed: item_outcomes(head.decider(run.classes), run.data.x, run.data.labels,
                                 run.audio, run.visual, head.fill(), run.clip_ids)
        for head in run.heads
    }  # fmt: skip
    return summarise(rights, run.data.index)


def test_a_head_reading_only_the_visual_has_no_audio_dependent_items():
    found = items_of(run_of(reader(VISUAL), reader(VISUAL)))
    seed = found["per_seed"]["seed0"]
    assert seed["counts"]["right_full"] == N_CLIPS * SECONDS
    assert seed["counts"]["audio_dependent"] == 0 and seed["audio_dependent_share_of_right"] == 0
    # both muted: every row looks alike and the tie goes to the first class, "a"
    assert seed["counts"]["modality_free"] == int((synthetic().labels == "a").sum())
    assert seed["counts"]["visual_dependent"] == N_CLIPS * SECONDS - seed["counts"]["modality_free"]
    assert found["mean"]["dependent_drop"] == {"other_seeds": None, "other_clip": None}
    assert found["mean"]["free_drop"] == 0.0


def test_a_head_reading_the_audio_loses_its_audio_dependent_items_on_every_seed():
    found = items_of(run_of(reader(AUDIO), reader(AUDIO)))
    labels = synthetic().labels
    seed = found["per_seed"]["seed1"]
    assert seed["counts"]["audio_dependent"] == int((labels != "a").sum())
    assert seed["dependent_drop"]["other_seeds"] == 1.0
    assert seed["dependent_drop_measured_on"]["other_seeds"] == int((labels != "a").sum())
    # another clip's audio makes rows wrong; muted, the "a" rows among them stay right
    assert 0.5 < seed["dependent_drop"]["other_clip"] < 1.0
    assert found["mean"]["free_drop"] == 0.0
    example = seed["examples"]["audio_dependent"][0]
    assert set(example) == {"clip_id", "t"} and isinstance(example["t"], int)
    json.dumps(found)  # plain JSON


def test_audio_dependence_across_seeds_fails_when_the_other_model_ignores_the_audio():
    found = items_of(run_of(reader(AUDIO), reader(VISUAL)))
    assert found["per_seed"]["seed0"]["dependent_drop"]["other_seeds"] == 0.0
    assert found["per_seed"]["seed1"]["dependent_drop"]["other_seeds"] is None


@pytest.mark.parametrize(("columns", "moved"), [(VISUAL, False), (AUDIO, True)])
def test_noise_audio_moves_only_a_head_that_reads_the_audio(columns, moved):
    run = run_of(reader(columns))
    found = seed_stress(run.heads[0], run, 1.0, "segment_accuracy")
    if moved:
        assert found["use"]["noise"] > 0.3 and found["use"]["from_other_clip"] > 0.3
        assert found["score"]["full"] == 1.0 > found["score"]["noise"]
    else:
        assert found["use"] == {"noise": 0.0, "from_other_clip": 0.0}
    assert "gates" not in found
    parity = stress_summary({"seed0": found}, "concat")["gate_parity"]
    assert parity == {
        "applies": False,
        "reason": "train.fusion is concat: the head has no audio gate to close",
    }


def test_a_closed_audio_gate_leaves_the_logits_unchanged_whatever_the_audio():
    run = run_of(reader(AUDIO, fusion="gated"), reader(AUDIO, fusion="gated"))
    found = seed_stress(run.heads[0], run, 1.0, "segment_accuracy")
    assert found["gates"] == {"audio": 0.5, "visual": 0.5}
    assert found["use"]["noise"] > 0.3  # the open gate lets the noise through
    assert found["closed_gate_mean_abs_logit_diff"] == {"noise": 0.0, "from_other_clip": 0.0}
    assert run.heads[0].model.fusion.open_modalities() == ["audio", "visual"]  # reopened
    second = seed_stress(run.heads[1], run, 1.0, "segment_accuracy")
    summary = stress_summary({"seed0": found, "seed1": second}, "gated")
    assert summary["gate_parity"] == {"applies": True, "max_mean_abs_logit_diff": 0.0}
    assert summary["mean"]["audio_gate"] == 0.5


def test_a_confidence_gate_skips_the_rows_the_visual_is_sure_of():
    y = np.arange(40) % 2
    on = np.eye(2)[y] * 0.8 + 0.1  # the full model: right, 0.9
    off = on.copy()
    off[20:] = [0.55, 0.45]  # visual alone: sure and right on half, unsure (and half wrong) after
    labels = np.asarray(["a", "b"])[y]

    def score(probs: np.ndarray) -> float:
        return float(np.mean(np.asarray(["a", "b"])[probs.argmax(1)] == labels))

    points = seed_points(on, off, 5, score, 1)
    fixed = {p["policy"]: p for p in points[:2]}
    assert fixed["always_on"]["score"] == 1.0 and fixed["always_off"]["drop"] == 0.25
    for policy in ("confidence", "entropy"):
        curve = [p for p in points if p["policy"] == policy]
        assert [p["target_skip"] for p in curve] == [0.0, 0.25, 0.5, 0.75, 1.0]
        assert curve[0]["skipped"] == 0.0 and max(p["skipped"] for p in curve) == 0.5
        assert all(p["drop"] == 0.0 for p in curve)  # it never skips an unsure row
    assert [p["threshold"] for p in points if p["policy"] == "confidence"][-1] == 0.55


def test_the_probes_do_not_apply_to_lora_or_to_one_modality(tmp_path, monkeypatch):
    lora = write_params(tmp_path, {"train": {"finetune": "lora"}, "budget": {"policy": "none"}})
    assert audio_visual_reason(lora).startswith("train.finetune is lora")
    monkeypatch.chdir(tmp_path)
    meta = tmp_path / "data/embeddings/logmel/meta.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"modality": "audio", "dim": 4}))
    audio = Params.from_dict({"embed": {"encoders": {"logmel": "logmel"}, "logmel": {}},
                              "budget": {"policy": "none"}})  # fmt: skip
    assert audio_visual_reason(audio) == (
        "the model's inputs hold the modalities ['audio']: no audio and visual to ablate"
    )


# The checks on hand-written probe files (tests/go_evidence.py writes a healthy run).


def judged(root: Path, name: str, options: dict, seeds: tuple[int, ...] = (0, 1)) -> dict:
    (check,) = parse_checks({name: options})
    return record(check, Context(seeds, root))


DEPENDENCE = {"min_dependent_drop": 0.8, "max_free_drop": 0.05}


def test_audio_dependence_shows_the_failing_half(tmp_path):
    ev.write_run(tmp_path)
    passed = judged(tmp_path, "audio_dependence", DEPENDENCE)
    assert (passed["status"], passed["value"], passed["rule"]) == (PASS, 0.9, ">=")
    assert "(other_seeds)" in passed["detail"] and "; share of modality-free" in passed["detail"]
    ev.edit(tmp_path, ev.ITEMS, lambda d: d["mean"].update(free_drop=0.2))
    failed = judged(tmp_path, "audio_dependence", DEPENDENCE)
    assert (failed["status"], failed["value"], failed["rule"]) == (FAIL, 0.2, "<=")
    other = judged(tmp_path, "audio_dependence", {**DEPENDENCE, "reference": "other_clip"})
    assert (other["status"], other["value"]) == (FAIL, 0.2)


def test_audio_dependence_without_dependent_items_fails_as_undefined(tmp_path):
    ev.write_run(tmp_path)
    ev.edit(tmp_path, ev.ITEMS, lambda d: d["mean"]["dependent_drop"].update(other_seeds=None))
    plain = judged(tmp_path, "audio_dependence", DEPENDENCE)
    assert plain["status"] == FAIL and plain["value"] is None
    assert "UNDEFINED" in plain["detail"] and "ignores its audio" in plain["detail"]


def test_audio_dependence_across_seeds_needs_two_seeds(tmp_path):
    ev.write_run(tmp_path, seeds=(0,))
    plain = judged(tmp_path, "audio_dependence", DEPENDENCE, seeds=(0,))
    assert plain["status"] == NOT_APPLICABLE and "no other seed's model" in plain["detail"]
    same = judged(tmp_path, "audio_dependence", {**DEPENDENCE, "reference": "other_clip"}, (0,))
    assert same["status"] == PASS


def test_irrelevance_stress_reads_the_declared_audio(tmp_path):
    ev.write_run(tmp_path)
    noise = judged(tmp_path, "irrelevance_stress", {"max_use": 0.025})
    other = judged(tmp_path, "irrelevance_stress", {"max_use": 0.025, "audio": "from_other_clip"})
    assert (noise["status"], noise["value"]) == (PASS, 0.02)
    assert (other["status"], other["value"]) == (FAIL, 0.03)
    ev.write_run(tmp_path, finetune="lora")
    assert judged(tmp_path, "irrelevance_stress", {"max_use": 0.05})["status"] == NOT_APPLICABLE


def test_gate_parity_applies_to_a_gated_fusion_only(tmp_path):
    ev.write_run(tmp_path)
    assert judged(tmp_path, "gate_parity", {"max_abs_logit_diff": 1e-5})["status"] == PASS
    ev.edit(tmp_path, ev.STRESS, lambda d: d["gate_parity"].update(max_mean_abs_logit_diff=1e-5))
    at_bound = judged(tmp_path, "gate_parity", {"max_abs_logit_diff": 1e-5})
    assert (at_bound["status"], at_bound["rule"]) == (FAIL, "<")
    ev.write_run(tmp_path, fusion="concat")
    plain = judged(tmp_path, "gate_parity", {"max_abs_logit_diff": 1e-5})
    assert plain["status"] == NOT_APPLICABLE and "train.fusion is concat" in plain["detail"]


def test_gating_policy_names_the_point_that_skips_most_within_the_drop(tmp_path):
    ev.write_run(tmp_path)  # skips 0, 0.3, 0.6 for drops 0, 0.005, 0.05
    plain = judged(tmp_path, "gating_policy", {"min_skipped": 0.2, "max_drop": 0.01})
    assert (plain["status"], plain["value"]) == (PASS, 0.3)
    assert plain["detail"].startswith(
        "share of audio consultations skipped by the confidence "
        "gate at threshold 0.85 (val segment_accuracy drop 0.005"
    )
    wider = judged(tmp_path, "gating_policy", {"min_skipped": 0.5, "max_drop": 0.05})
    assert (wider["status"], wider["value"]) == (PASS, 0.6)
    stricter = judged(tmp_path, "gating_policy", {"min_skipped": 0.2, "max_drop": 0.001})
    assert (stricter["status"], stricter["value"]) == (FAIL, 0.0)


# The probes on the small demo, trained with a linear head over gated fusion.


@pytest.fixture(scope="module")
def gated_demo(small_demo, tmp_path_factory, one_torch_thread):
    with embedded_project(small_demo, tmp_path_factory.mktemp("gated")) as root:
        params = write_params(root, {"train": {"head": "linear", "fusion": "gated"}})
        train_every_seed(params)
        results = {}
        for name in ("items", "stress", "policies"):
            output = PROBES[name]().run(params)
            results[name] = output
            ev.write(root, f"reports/probe/{name}.json", {"applies": True, **output.result})
        yield root, params, results


def test_the_probes_run_on_the_demo_and_feed_their_checks(gated_demo):
    root, params, results = gated_demo
    stress = results["stress"].result
    assert stress["gate_parity"] == {"applies": True, "max_mean_abs_logit_diff": 0.0}
    assert 0 < stress["mean"]["audio_gate"] < 1
    plot = results["policies"].plot
    assert list(plot.columns) == list(PROBES["policies"].plot_columns)
    assert len(plot) == 2 + 2 * params.probe.policy_points
    items = results["items"].result
    assert items["seeds"] == [0, 1] and items["n_rows"] > 0
    seeds = tuple(params.train.seeds)
    examples = {"audio_dependence": DEPENDENCE, "irrelevance_stress": {"max_use": 0.05},
                "gate_parity": {"max_abs_logit_diff": 1e-5},
                "gating_policy": {"min_skipped": 0.2, "max_drop": 0.01}}  # fmt: skip
    for name, options in examples.items():
        plain = judged(root, name, options, seeds)
        assert plain["status"] in (PASS, FAIL) and plain["value"] is not None, plain
    assert judged(root, "gate_parity", examples["gate_parity"], seeds)["status"] == PASS


def test_the_probes_are_deterministic(gated_demo):
    _, params, results = gated_demo
    for name in ("items", "stress"):
        assert PROBES[name]().run(params).result == results[name].result
