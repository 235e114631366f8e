"""examples/*.sh on small fixtures in the real layouts, in a scratch copy of the project: data
put under DVC, the pipeline run as a DVC experiment, metrics and leakage verdict printed."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import yaml

from tests import formats
from tests.conftest import write_params
from tests.scratch import commit, sh

pytestmark = pytest.mark.slow


@pytest.fixture
def project(example_project):
    return example_project


def test_esc50_example_runs_on_the_predefined_folds(project, tmp_path):
    source = tmp_path / "ESC-50-master"
    formats.write_esc50(source)
    before = formats.snapshot(source)
    out = sh(project, "examples/esc50.sh", str(source))
    assert "val accuracy:" in out and "over 2 seeds" in out and "test sealed" in out
    assert "split: predefined; leakage verdict: no leakage" in out
    assert (project / "data/raw/esc50.dvc").exists()
    assert "up to date" in sh(project, "dvc", "status")
    assert formats.snapshot(source) == before


def test_fsdd_example_measures_a_leaky_random_split(project, tmp_path):
    source = tmp_path / "fsdd"
    formats.write_fsdd(source)
    out = sh(project, "examples/fsdd.sh", str(source), "random")
    assert "split: random; leakage verdict: LEAKY" in out
    assert "fsdd-random" in sh(project, "dvc", "exp", "show", "--csv")
    bad = sh(project, "bash", "-c", "examples/fsdd.sh /nonexistent group 2>&1 || true")
    assert "usage: examples/fsdd.sh PATH group|random" in bad


def test_promote_demo_promotes_a_better_candidate_and_rejects_an_equal_one(project, tmp_path):
    # The shipped plan with a 4-seed full test (the same protocol, less training) and no
    # per-class recall margin: the small demo's test split holds about 3 seconds of some
    # classes, so one second moves that class's recall by 0.33, beyond the 0.15 margin. The
    # demo's clips come from 40 channels, so that the test split holds several groups (4). A
    # slow learning rate leaves the example's 6-epoch baseline far behind the 100-epoch
    # candidate in every test group: at 0.001 the gap (about +0.24) varied so much between the
    # 4 groups that the group bootstrap's low end fell below 0.
    write_params(project, {"demo": {"workers": 0, "n_groups": 40},
                           "train": {"seeds": [0, 1], "lr": 0.0003}})  # fmt: skip
    plan = yaml.safe_load((project / "gates.yaml").read_text())
    plan["stages"][1]["seeds"] = [0, 1, 2, 3]
    plan["stages"][1]["non_inferiority"] = {"ece": 0.03}
    plan["min_groups"] = 4  # 48 clips from 40 channels: 6 of them in the test split, where
    plan["stages"][1]["resample_seeds"] = False  # 4 seeds are too few to resample as well
    (project / "gates.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    commit(project, "a lighter plan for the test")
    start = sh(project, "git", "rev-parse", "--abbrev-ref", "HEAD").strip()
    out = sh(project, "examples/promote-demo.sh")
    decisions = out[out.index("== decisions") :]
    assert re.search(r"promote \[ *\d+ s\] PROMOTED", decisions)
    assert "as demo-model-wide-" in decisions
    rejected = [line for line in decisions.splitlines() if "REJECTED" in line]
    assert len(rejected) == 1 and "at stage quick_test: min_delta" in rejected[0]
    assert sh(project, "git", "rev-parse", "--abbrev-ref", "HEAD").strip() == start
    branch = sh(project, "git", "branch", "--list", "promote-demo-*").split()[-1]
    tag = sh(project, "git", "tag", "--list", "demo-model-wide-*").strip()
    assert tag and not sh(project, "git", "tag", "--list", "demo-model-same-*").strip()
    # The tag's note carries the hash of the gate report committed with the promoted model.
    note = sh(project, "git", "tag", "-l", "--format=%(contents)", tag)
    report = sh(project, "git", "show", f"{tag}:reports/gate.md")
    assert hashlib.sha256(report.encode()).hexdigest() in note
    assert "PASSED" in report and "full_test" in report
    assert f"baseline: {tag}" in sh(project, "git", "show", f"{branch}:gates.yaml")
    looks = [
        json.loads(line)
        for line in sh(project, "git", "show", f"{branch}:gates/ledger.jsonl").splitlines()
    ]
    assert [(e["stage"], e["outcome"]) for e in looks] == [
        ("quick_test", "pass"), ("full_test", "pass"), ("quick_test", "fail"),
    ]  # fmt: skip
    # Every look is on the branch the demo started from too, and committed there.
    assert sh(project, "git", "show", "HEAD:gates/ledger.jsonl") == sh(
        project, "git", "show", f"{branch}:gates/ledger.jsonl"
    )
    assert "3 entries" in sh(project, "avgate", "ledger", "verify")
    assert not sh(project, "git", "status", "--porcelain", "--untracked-files=no").strip()
    # Anyone re-derives the promotion in a fresh clone, its outputs from the DVC remote.
    sh(project, "dvc", "push", "-q", "--all-tags")
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(project), str(clone))
    assert "matches the tag's note" in sh(clone, "avgate", "verify", tag)
    assert not sh(clone, "git", "status", "--porcelain").strip()  # no ledger write, no file


def test_listen_then_look_runs_the_eventness_plan_and_ends_with_a_decision(project):
    # The texture and onset cues of the default demo on the small demo's 4 s clips (sizes 12,
    # 28 and 52 px at k=1, equal budgets); one method and the quick test's seeds for the full
    # test, so that the example's whole protocol runs in a couple of minutes.
    write_params(project, {"demo": {"workers": 0, "n_groups": 40, "visual_cue": "texture",
                                    "audio_cue": "onset"},
                           "train": {"seeds": [0, 1], "clip_context": True}})  # fmt: skip
    commit(project, "the eventness demo")
    start = sh(project, "git", "rev-parse", "--abbrev-ref", "HEAD").strip()
    out = sh(project, "env", "METHODS=energy", "FULL_SEEDS=[0,1,2]", "MIN_GROUPS=2",
             "examples/listen-then-look.sh")  # fmt: skip
    assert "pixels planned (+0.00%): equal within 1%" in out
    decisions = out[out.index("== decisions") :]
    assert 'eventness.method="energy"' in decisions
    # the script's last stdout line (sh appends stderr, where dvc draws its progress bars)
    last = out[out.index("== back on") :].splitlines()[1]
    assert re.match(r"(PROMOTED|STOPPED): ", last), last
    if last.startswith("PROMOTED"):
        assert "quick_test: passed" in decisions and "full_test: passed" in decisions
    branch = sh(project, "git", "branch", "--list", "listen-then-look-*").split()[-1]
    plan = yaml.safe_load(sh(project, "git", "show", f"{branch}~0:gates.yaml"))
    assert plan["stages"][0]["non_inferiority"] == {"fallback_used_frac": 0.0}
    assert plan["selection"]["min_mean_delta"] == 0.0
    first = sh(project, "git", "log", "--format=%s", "--reverse", f"{start}..{branch}")
    assert first.splitlines()[0].startswith("Plan:")  # committed before anything was trained
    assert sh(project, "git", "rev-parse", "--abbrev-ref", "HEAD").strip() == start
    assert "entries" in sh(project, "avgate", "ledger", "verify")
    assert not sh(project, "git", "status", "--porcelain", "--untracked-files=no").strip()
