"""What single checks do beyond the contract: the cases where evidence cannot prove a pass (a
split blind to its groups, a LoRA model trained before the logit difference was recorded, an
ablation the metric is undefined on) fail and say why, and each threshold is compared as the
plan states it."""

from __future__ import annotations

from pathlib import Path

from avgate.gating.go_verdict import FAIL, PASS, record
from avgate.gating.spec import parse_checks
from avgate.go import Context
from tests import go_evidence as ev

SEEDS = (0, 1)


def judged(root: Path, name: str, options: dict | None = None) -> dict:
    (check,) = parse_checks({name: options})
    return record(check, Context(SEEDS, root))


def test_a_split_blind_to_its_groups_fails_no_leakage_with_the_fix(tmp_path):
    ev.write_run(tmp_path, SEEDS)
    fix = "name the speaker with data.folder.group_pattern"
    ev.edit(tmp_path, ev.LEAKAGE, lambda d: d["group_check"].update(blind=True, fix=fix))
    plain = judged(tmp_path, "no_leakage")
    assert plain["status"] == FAIL and plain["value"] is None
    assert plain["detail"].startswith("UNKNOWN: every group holds one clip")
    assert plain["detail"].endswith(fix)


def test_identical_audio_on_two_sides_is_leakage(tmp_path):
    ev.write_run(tmp_path, SEEDS)
    ev.edit(tmp_path, ev.LEAKAGE, lambda d: d["duplicate_overlap"]["audio_sha256"].update(
        {"val|test": 1}))  # fmt: skip
    plain = judged(tmp_path, "no_leakage")
    assert (plain["status"], plain["value"]) == (FAIL, 1.0)
    assert plain["detail"].startswith("0 group(s) and 1 identical file or audio pair(s)")


def test_class_imbalance_counts_the_clips_of_every_split(tmp_path):
    ev.write_run(tmp_path, SEEDS)  # a: 20 + 6 + 6, b: 10 + 4 + 4
    plain = judged(tmp_path, "class_imbalance", {"max_ratio": 32 / 18})
    assert plain["status"] == PASS and plain["detail"].startswith("a (32 clips) / b (18 clips)")
    assert judged(tmp_path, "class_imbalance", {"max_ratio": 1.7})["status"] == FAIL


def test_forward_equivalence_must_stay_strictly_below_its_bound(tmp_path):
    ev.write_run(tmp_path, SEEDS, finetune="lora")
    key = "forward_equivalence_mean_abs_logit_diff"
    ev.edit(tmp_path, ev.head(1), lambda d: d.update({key: 1e-5}))
    plain = judged(tmp_path, "forward_equivalence")
    assert (plain["status"], plain["value"], plain["rule"]) == (FAIL, 1e-5, "<")


def test_a_lora_model_without_the_logit_difference_fails_naming_the_key(tmp_path):
    ev.write_run(tmp_path, SEEDS, finetune="lora")
    ev.edit(tmp_path, ev.head(0), lambda d: d.pop("forward_equivalence_mean_abs_logit_diff"))
    plain = judged(tmp_path, "forward_equivalence")
    assert plain["status"] == FAIL
    assert plain["detail"] == (
        "models/seed0/head.json: no forward_equivalence_mean_abs_logit_diff (written by an older "
        "avgate?); run `dvc repro`"
    )


def test_audio_reliance_reads_the_declared_ablation_and_refuses_an_undefined_drop(tmp_path):
    ev.write_run(tmp_path, SEEDS)  # drops: muted 0.05, from another clip 0.1
    assert judged(tmp_path, "audio_reliance", {"min_drop": 0.08})["status"] == PASS
    muted = judged(tmp_path, "audio_reliance", {"min_drop": 0.08, "ablation": "muted"})
    assert (muted["status"], muted["value"]) == (FAIL, 0.05)
    ev.edit(tmp_path, ev.seed_scores(1), lambda d: d["modality_ablation_val"][
        "audio_from_other_clip"].update(drop=None))  # fmt: skip
    undefined = judged(tmp_path, "audio_reliance", {"min_drop": 0.08})
    assert undefined["status"] == FAIL
    assert undefined["detail"].startswith("predictions/seed1/metrics.json: ")
    assert "undefined on the ablated validation split" in undefined["detail"]
