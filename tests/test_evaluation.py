"""Evaluation on the small demo: calibration of an overconfident head, modality ablations,
diagnostics, efficiency, the run card and the report."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from avgate import comparison
from avgate.commands import report as report_stage
from avgate.finetune.none import WEIGHTS
from avgate.layout.results import model_dir
from avgate.stages import demo_data
from avgate.stages.train import evaluate, summarize, train_seed
from tests.conftest import run_until_train, train_every_seed, write_params


def test_cross_fitted_temperature_lowers_the_ece_of_an_overconfident_head(tmp_path, monkeypatch):
    # Faint shapes and quiet events, so that validation has enough misclassified rows to estimate
    # the temperature: on the small easy demo it is separable and says little about calibration.
    monkeypatch.chdir(tmp_path)
    demo = {"n_clips": 120, "n_groups": 12, "snr_db": [-18.0, -2.0], "shape_opacity": [0.02, 0.4]}
    params = write_params(tmp_path, {"demo": demo, "train": {"seeds": [0]}})
    demo_data.run(params)
    run_until_train(params)
    train_seed.run(params, seed=0)
    weights = load_file(model_dir(0) / WEIGHTS)
    for name in ("net.3.weight", "net.3.bias"):  # the output layer: logits x 6, overconfident
        weights[name] = weights[name] * 6
    save_file(weights, model_dir(0) / WEIGHTS)
    found = evaluate.run(params, seed=0)["calibration_val"]
    assert found["kept_temperature"] > 2 and min(found["fold_temperatures"]) > 2
    # on the held-out half each time: the NLL it minimises falls, and with it the ECE
    assert found["after"]["nll"] < found["before"]["nll"] * 0.9
    assert found["after"]["ece"] < found["before"]["ece"]


def test_scaling_that_worsens_held_out_nll_keeps_t_equal_to_one():
    from avgate.calibration import cross_fitted_report

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    clips = np.arange(200) // 5  # 40 clips; the folds alternate clip by clip
    wrong = rng.random(200) < 0.3
    logits = np.eye(3)[np.where(wrong, (y + 1) % 3, y)]
    logits[clips % 2 == 0] *= 8.0  # one half overconfident: each half's T misfits the other
    found = cross_fitted_report(logits, y, clips)
    assert found["kept_temperature"] == 1.0 and "raised the held-out NLL" in found["reason"]
    assert found["after"] == found["before"] and len(found["fold_temperatures"]) == 2


@pytest.mark.parametrize(
    ("n_clips", "error_rate", "reason"),
    [(8, 0.3, "too small to fit a temperature (8 clips, 10 needed)"),
     (40, 0.0, "too easy to fit a temperature: a half has 0 misclassified rows")],
)  # fmt: skip
def test_validation_too_small_or_too_easy_keeps_t_equal_to_one(n_clips, error_rate, reason):
    from avgate.calibration import cross_fitted_report

    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, n_clips * 5)
    wrong = rng.random(len(y)) < error_rate
    logits = np.eye(3)[np.where(wrong, (y + 1) % 3, y)] * 3.0
    found = cross_fitted_report(logits, y, np.arange(len(y)) // 5)
    assert found["kept_temperature"] == 1.0 and reason in found["reason"]


def test_ablating_the_informative_modality_drops_the_score(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = write_params(
        tmp_path, {"demo": {"shape_opacity": [0.0, 0.0]}, "train": {"seeds": [0]}}
    )  # the picture never shows the event: only the sound is informative
    demo_data.run(params)
    run_until_train(params)
    train_seed.run(params, seed=0)
    ablation = evaluate.run(params, seed=0)["modality_ablation_val"]
    assert ablation["full"] > 0.7
    assert ablation["audio_muted"]["drop"] > 0.25
    assert ablation["audio_from_other_clip"]["drop"] > 0.25
    assert abs(ablation["visual_muted"]["drop"]) < 0.1


def test_summary_writes_diagnostics_efficiency_run_card_and_plots(project):
    params = write_params(project, {})
    run_until_train(params)
    train_every_seed(params)
    summary = summarize.run(params)
    assert summary["calibration_val"]["ece"]["before"]["mean"] >= 0
    for name in ("scores.json", "eval.json"):  # sealed
        assert '"test' not in (project / "metrics" / name).read_text()
    found = json.loads((project / "metrics/diagnostics.json").read_text())
    assert set(found["per_class"]) == set(json.loads((project / "models/seed0/head.json")
                                                     .read_text())["classes"])  # fmt: skip
    assert found["worst_groups"][0]["accuracy"] == min(found["per_group_accuracy"].values())
    assert {"audio_muted", "visual_muted"} <= set(found["modality_ablation"])
    cost = json.loads((project / "metrics/efficiency.json").read_text())
    assert cost["trainable_parameters"] > 0 and 0 < cost["primary_val_mean"] <= 1
    card = json.loads((project / "reports/run_card.json").read_text())
    assert "git" not in card and "hardware" not in card  # nothing that changes run to run
    assert card["seeds"] == [0, 1] and card["params"]["train"]["seeds"] == [0, 1]
    assert not {"gate", "audit", "eventness", "split"} & set(card["params"])  # not train's deps
    assert card["encoders"]["logmel"]["encoder"] == "logmel" and card["packages"]["torch"]
    assert len(card["data"]["manifest_sha256"]) == 64
    for name in ("reliability_uncalibrated", "reliability_calibrated", "efficiency"):
        assert (project / f"plots/{name}.csv").read_text().count("\n") >= 2


def test_report_tables_compare_with_the_revision(project):
    params = write_params(project, {"train": {"seeds": [0, 1]}})
    run_until_train(params)
    train_every_seed(params)
    summarize.run(params)
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run(["git", "add", "metrics"], check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"],
                   check=True)  # fmt: skip
    shutil.rmtree("models")
    changed = write_params(project, {"train": {"seeds": [0, 1], "hidden": 8}})
    train_every_seed(changed)
    summarize.run(changed)
    text = report_stage.run("HEAD").read_text()
    current = json.loads((project / "metrics/scores.json").read_text())
    baseline = json.loads(subprocess.run(["git", "show", "HEAD:metrics/scores.json"],
                                         capture_output=True, text=True).stdout)  # fmt: skip
    now, then = (s["val"]["segment_accuracy"] for s in (current, baseline))
    delta = now["mean"] - then["mean"]
    row = (
        f"| val | segment_accuracy | {then['mean']:.4f} ± {then['std']:.4f} | "
        f"{now['mean']:.4f} ± {now['std']:.4f} | {delta:+.4f} |"
    )
    assert row in text
    reason = current["calibration_val"]["reasons"]["seed0"]
    assert f"- seed0: {reason}" in text
    assert "| ece |" in text and "Worst groups" in text and "audio_muted" in text
    assert "no significance test" in text


def test_report_without_a_baseline_says_so():
    current = {"primary_metric": "accuracy", "n_seeds": 2,
               "val": {"accuracy": {"mean": 0.5, "std": 0.1}}}  # fmt: skip
    text = comparison.render(current, None, "v1", {}, {}, None)
    assert "no metrics found at v1" in text
    assert "| val | accuracy | – | 0.5000 ± 0.1000 | – |" in text
    assert not re.search(r"\btest\b", text.replace("significance test", ""))  # sealed


@pytest.fixture(autouse=True)
def _quiet_torch_threads():
    torch.set_num_threads(1)
