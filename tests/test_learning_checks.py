"""The training-path checks and their probes: `tiny_overfit` (overfit), `resume_equal` (resume),
`memory_headroom` (efficiency) and `frozen_checksums` (frozen). Each check's pass and fail paths
on hand-written probe files, then each probe on the small demo, trained once for the module:
it passes there, and fails where the run is broken in its own way (labels shuffled and one
epoch, a resume that loses the optimiser's state or starts afresh, a machine too small, a stored
embedding row or a seed's model changed)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from avgate.finetune.none import Data
from avgate.gating.go_verdict import FAIL, NOT_APPLICABLE, PASS, record
from avgate.gating.spec import parse_checks
from avgate.go import Context
from avgate.layout.inputs import Examples
from avgate.layout.results import probe_path
from avgate.probes import PROBES
from avgate.probes.head_mode import head_data, with_train
from avgate.probes.overfit import overfit
from avgate.stages import probe as stage
from avgate.training import checkpoint
from tests import go_evidence as ev
from tests.conftest import embedded_project, train_every_seed, write_params

SEEDS = (0, 1)
SMALL_PROBES = {"probe": {"overfit_rows": 48, "overfit_epochs": 60, "resume_epochs": 4,
                          "batch_sizes": [8, 128], "frozen_clips": 1}}  # fmt: skip


def judged(root: Path, name: str, options: dict | None = None) -> dict:
    (check,) = parse_checks({name: options})
    return record(check, Context(SEEDS, root))


def written(root: Path, **changes) -> Path:
    ev.write_run(root, SEEDS, **changes)
    return root


# --- the checks on hand-written probe files ---------------------------------------------------


def test_tiny_overfit_needs_both_the_loss_and_the_accuracy(tmp_path):
    root = written(tmp_path)  # loss 0.001, accuracy 1.0 on 256 rows
    passed = judged(root, "tiny_overfit", {"max_loss": 0.05})
    assert (passed["status"], passed["value"], passed["rule"]) == (PASS, 0.001, "<=")
    assert passed["detail"] == (
        "loss on 256 training rows after 200 epochs 0.001 <= 0.05; accuracy on them 1 >= 0.9"
    )
    ev.edit(root, ev.probe("overfit"), lambda d: d.update(train_accuracy=0.8))
    failed = judged(root, "tiny_overfit", {"max_loss": 0.05})
    assert (failed["status"], failed["value"], failed["threshold"]) == (FAIL, 0.8, 0.9)
    assert failed["detail"].startswith("accuracy on them 0.8 < 0.9; loss on 256")


def test_tiny_overfit_is_not_applicable_where_the_probe_was_not(tmp_path):
    root = written(tmp_path, finetune="lora")
    plain = judged(root, "tiny_overfit", {"max_loss": 0.05})
    assert plain["status"] == NOT_APPLICABLE
    assert plain["detail"] == "reports/probe/overfit.json: train.finetune is lora"


def test_resume_equal_fails_a_run_that_did_not_resume_whatever_its_weights(tmp_path):
    root = written(tmp_path)
    assert judged(root, "resume_equal", {"max_abs_diff": 0.0})["status"] == PASS
    ev.edit(root, ev.probe("resume"), lambda d: d.update(resumed_from_epoch=0))
    plain = judged(root, "resume_equal", {"max_abs_diff": 0.0})
    assert (plain["status"], plain["value"]) == (FAIL, None)
    assert plain["detail"].startswith("the run killed after epoch 3 resumed from epoch 0")


def test_resume_equal_takes_the_larger_of_the_weight_and_metric_differences(tmp_path):
    root = written(tmp_path)
    ev.edit(root, ev.probe("resume"), lambda d: d.update(max_abs_metric_diff=2e-4))
    assert judged(root, "resume_equal", {"max_abs_diff": 1e-3})["status"] == PASS
    plain = judged(root, "resume_equal", {"max_abs_diff": 1e-4})
    assert (plain["status"], plain["value"]) == (FAIL, 2e-4)
    ev.edit(root, ev.probe("resume"), lambda d: d.update(max_abs_metric_diff=None))
    undefined = judged(root, "resume_equal", {"max_abs_diff": 1.0})
    assert undefined["status"] == FAIL and "undefined in one of the two runs" in undefined["detail"]


def test_memory_headroom_compares_at_least(tmp_path):
    root = written(tmp_path)
    ev.edit(root, ev.probe("efficiency"), lambda d: d.update(headroom=0.5))
    assert judged(root, "memory_headroom", {"min_headroom": 0.5})["status"] == PASS
    plain = judged(root, "memory_headroom", {"min_headroom": 0.6})
    assert plain["status"] == FAIL
    assert plain["detail"].endswith("batch size 64 (peak 1.028 MiB of 24 GiB): 0.5 < 0.6")


def test_frozen_checksums_counts_clips_and_seeds(tmp_path):
    root = written(tmp_path)
    assert judged(root, "frozen_checksums")["detail"].startswith(
        "re-embedded clips and seeds matching: logmel 6/6, seeds 2/2; mismatches 0 <= 0"
    )

    def broken(data: dict) -> None:
        data["encoders"]["logmel"].update(matches=5, mismatched=["c07"])
        data.update(seed_mismatches=["seed1"], mismatches=2)

    ev.edit(root, ev.probe("frozen"), broken)
    plain = judged(root, "frozen_checksums", {"max_mismatches": 1})
    assert (plain["status"], plain["value"]) == (FAIL, 2.0)
    assert "logmel 5/6, seeds 1/2 (e.g. c07, seed1)" in plain["detail"]
    assert judged(root, "frozen_checksums", {"max_mismatches": 2})["status"] == PASS


# --- the probes on the small demo -------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(small_demo: Path, tmp_path_factory, one_torch_thread) -> Iterator[Path]:
    """The small demo embedded and every seed trained; the working directory."""
    with embedded_project(small_demo, tmp_path_factory.mktemp("learning")) as root:
        train_every_seed(write_params(root, SMALL_PROBES))
        yield root


def probed(root: Path, name: str, overrides: dict | None = None) -> dict:
    """Run the probe `name` as the probe stage does (alone) and return its file's content."""
    params = write_params(root, {**SMALL_PROBES, **(overrides or {})})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stage, "PROBES", {name: PROBES[name]})
        stage.run(params, say=lambda line: None)
    return json.loads((root / probe_path(name)).read_text())


def test_the_head_probes_do_not_apply_to_a_lora_run(trained):
    lora = with_train(write_params(trained, SMALL_PROBES), finetune="lora")
    for name in ("overfit", "resume", "efficiency"):
        assert PROBES[name]().applies(lora).startswith("train.finetune is lora")


def test_the_head_memorises_the_tiny_subset(trained):
    found = probed(trained, "overfit")
    assert found["rows"] == 48 and found["epochs"] == 60 and found["train_accuracy"] == 1.0
    assert "dropout" in found["turned_off"] and "early_stopping" in found["turned_off"]
    assert judged(trained, "tiny_overfit", {"max_loss": 0.05})["status"] == PASS


def test_one_epoch_on_shuffled_labels_does_not_overfit(trained):
    params = write_params(trained, {"probe": {**SMALL_PROBES["probe"], "overfit_epochs": 1}})
    data = head_data(params)
    shuffled = np.random.default_rng(0).permutation(data.train.labels)
    rows = Examples(data.train.x, shuffled, data.train.index)
    found = overfit(params, Data(rows, data.val, data.blocks))
    assert found["epochs"] == 1 and found["train_loss"] > 0.05 and found["train_accuracy"] < 0.9


def test_a_resumed_run_equals_the_uninterrupted_one(trained):
    found = probed(trained, "resume")
    assert (found["killed_after_epoch"], found["resumed_from_epoch"]) == (2, 2)
    assert found["uninterrupted"] == found["resumed"]
    assert found["max_abs_weight_diff"] == 0.0
    assert judged(trained, "resume_equal", {"max_abs_diff": 0.0})["status"] == PASS


def test_a_resume_without_the_optimiser_state_differs(trained, monkeypatch):
    monkeypatch.setattr(torch.optim.Adam, "load_state_dict", lambda self, state: None)
    found = probed(trained, "resume")
    assert found["resumed_from_epoch"] == 2 and found["max_abs_weight_diff"] > 0
    assert judged(trained, "resume_equal", {"max_abs_diff": 0.0})["status"] == FAIL


def test_a_run_that_starts_afresh_is_caught(trained, monkeypatch):
    monkeypatch.setattr(checkpoint, "load", lambda path: None)
    found = probed(trained, "resume")
    assert found["resumed_from_epoch"] == 0
    assert judged(trained, "resume_equal", {"max_abs_diff": 1.0})["status"] == FAIL


def test_memory_is_counted_the_same_on_every_run(trained):
    found = probed(trained, "efficiency")
    first = (trained / probe_path("efficiency")).read_bytes()
    plot = (trained / "plots/memory_by_batch.csv").read_text()
    assert plot.splitlines()[0] == "batch_size,peak_mib"
    by_size = {row["batch_size"]: row for row in found["by_batch_size"]}
    assert sorted(by_size) == [8, 64, 128] and found["optimizer"] == "Adam"
    small, middle, large = by_size[8], by_size[64], by_size[128]
    assert small["optimizer_state"] > 2 * small["gradients"]  # two moments and the step counts
    assert large["batch"] == 16 * small["batch"] and large["model"] == small["model"]
    per_row = (large["activations"] - small["activations"]) / 120  # affine in the batch size
    assert middle["activations"] == small["activations"] + 56 * per_row > 0
    assert "step_ms" not in json.dumps(found)
    probed(trained, "efficiency")
    assert (trained / probe_path("efficiency")).read_bytes() == first
    assert (trained / "plots/memory_by_batch.csv").read_text() == plot
    assert judged(trained, "memory_headroom", {"min_headroom": 0.2})["status"] == PASS


def test_a_machine_too_small_has_no_headroom(trained):
    probed(trained, "efficiency", {"probe": {**SMALL_PROBES["probe"], "device_memory_gib": 1e-4}})
    plain = judged(trained, "memory_headroom", {"min_headroom": 0.2})
    assert plain["status"] == FAIL and plain["value"] < 0


def test_the_frozen_path_reproduces_the_stored_rows_and_the_seeds_inputs(trained):
    found = probed(trained, "frozen")
    params = write_params(trained, SMALL_PROBES)
    assert set(found["encoders"]) == set(params.embed.encoders)
    every = {"clips": 3, "matches": 3, "mismatched": []}
    assert all(found_here == every for found_here in found["encoders"].values())
    assert set(found["standardisation_sha256"].values()) == {
        found["expected_standardisation_sha256"]
    }
    assert judged(trained, "frozen_checksums")["status"] == PASS


def test_a_changed_stored_row_or_seed_input_breaks_the_checksums(trained, tmp_path):
    stored = trained / "data/embeddings/logmel/val.npy"
    weights = trained / "models/seed1/head.safetensors"
    for path in (stored, weights):
        shutil.copy(path, tmp_path / path.name)
    try:
        rows = np.load(stored)
        rows[0, 0] += 1.0  # the first val clip's first second
        np.save(stored, rows)
        state = load_file(weights)
        state["mean"][0] += 1.0
        save_file(state, weights)
        found = probed(trained, "frozen")
        first_val = found["encoders"]["logmel"]["mismatched"]
        assert len(first_val) == 1 and found["seed_mismatches"] == ["seed1"]
        plain = judged(trained, "frozen_checksums")
        assert (plain["status"], plain["value"]) == (FAIL, 2.0)
        assert "logmel 2/3, frames 3/3" in plain["detail"] and "seed1" in plain["detail"]
    finally:
        for path in (stored, weights):
            shutil.copy(tmp_path / path.name, path)
