"""The test-split ledger: a valid chain, every kind of tampering and loss caught, the refusals."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from avgate.gating import ledger as ledger_module
from avgate.gating.ledger import (
    GENESIS,
    REF,
    Entry,
    LedgerError,
    append,
    canonical,
    check_allowed,
    commit_entry,
    in_throwaway_copy,
    locked,
    looks_used,
    opened,
    read,
    verify,
)

SPEC = "a" * 64
OTHER_SPEC = "b" * 64
TEST_IDS = "c" * 64
BASELINE = "1" * 40
MOVED = "2" * 40
REL = "gates/ledger.jsonl"
IDENTITY = ["-c", "user.name=Tester", "-c", "user.email=tester@example.com"]


def evaluation(number: int, **changes) -> dict:
    """Keyword arguments for `append`: look `number` of candidate "lora-r8" at quick_test."""
    values = {
        "timestamp": f"2024-05-{number + 1:02d}T12:00:00Z",
        "kind": "look",
        "candidate": "lora-r8",
        "candidate_commit": f"{number:040x}",
        "candidate_params_sha256": "d" * 64,
        "baseline": "model/v1",
        "baseline_commit": BASELINE,
        "spec_hash": SPEC,
        "test_ids_hash": TEST_IDS,
        "stage": "quick_test",
        "seeds": [0, 1, 2],
        "outcome": "fail",
    }
    return values | changes


def opening(number: int, **changes) -> dict:
    """Keyword arguments for `append`: the test split opened for exploratory work."""
    values = {"kind": "opened", "stage": "", "outcome": "opened", "baseline": ""}
    return evaluation(number, baseline_commit="", **values) | changes


def build(path: Path, count: int = 5) -> Path:
    """A valid ledger of `count` entries at `path`."""
    for number in range(count):
        append(path, **evaluation(number, outcome="pass" if number % 2 else "fail"))
    return path


def lines(path: Path) -> list[str]:
    """The lines of `path`, line ends kept."""
    return path.read_text().splitlines(keepends=True)


def rewrite_field(path: Path, position: int, name: str, value) -> None:
    """Change one field of line `position` in place, keeping the line canonical."""
    text = lines(path)
    record = json.loads(text[position])
    record[name] = value
    text[position] = canonical(record) + "\n"
    path.write_text("".join(text))


def git(repo: Path, *args: str) -> str:
    """stdout of `git args` in `repo`, with an identity for commits."""
    done = subprocess.run(
        ["git", *IDENTITY, *args], cwd=repo, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def look(path: Path, repo: Path, number: int, **changes) -> Entry:
    """Append look `number` to the ledger and commit it to refs/avgate/ledger, as a look does."""
    with locked(path):
        verify(path, repo=repo)
        entry = append(path, **evaluation(number, **changes))
        commit_entry(path, entry, repo=repo)
    return entry


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """A valid 5-entry ledger, outside git (for the chain checks, which `read` and `append` do)."""
    return build(tmp_path / "gates" / "ledger.jsonl")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one commit holding the shipped empty ledger."""
    root = tmp_path / "project"
    (root / "gates").mkdir(parents=True)
    (root / REL).write_bytes(b"")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", REL)
    git(root, "commit", "-q", "-m", "empty ledger")
    return root


@pytest.fixture
def looked(repo: Path) -> Path:
    """`repo` after three looks, each committed to refs/avgate/ledger; two are also on main."""
    path = repo / REL
    for number in range(2):
        look(path, repo, number)
    git(repo, "commit", "-q", "-am", "two looks")
    look(path, repo, 2, outcome="pass")
    return repo


# --- the chain and the canonical form -----------------------------------------------------------


def test_append_builds_a_valid_chain(ledger: Path) -> None:
    entries = read(ledger)
    assert [entry.index for entry in entries] == [0, 1, 2, 3, 4]
    assert entries[0].previous == GENESIS
    assert [entry.previous for entry in entries[1:]] == [entry.hash for entry in entries[:-1]]
    assert [entry.outcome for entry in entries] == ["fail", "pass", "fail", "pass", "fail"]
    assert entries[2].seeds == [0, 1, 2] and entries[2].candidate_commit == f"{2:040x}"
    assert entries[2].baseline_commit == BASELINE and entries[2].test_ids_hash == TEST_IDS


def test_lines_are_canonical_json(ledger: Path) -> None:
    for line in lines(ledger):
        assert line == canonical(json.loads(line)) + "\n"


def test_read_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert read(tmp_path / "ledger.jsonl") == []


def test_append_leaves_no_temp_file(ledger: Path) -> None:
    assert sorted(path.name for path in ledger.parent.iterdir()) == ["ledger.jsonl"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"outcome": "maybe"}, "outcome must be one of pass, fail, error"),
        ({"timestamp": "2024-05-01T12:00:00+02:00"}, "timestamp"),
        ({"kind": "peek"}, "kind must be one of look, opened"),
        ({"stage": ""}, "stage must be a non-empty string in a look"),
        ({"candidate": ""}, "candidate must be a non-empty string in a look"),
        ({"seeds": []}, "seeds must not be empty in a look"),
        ({"candidate_commit": "HEAD"}, "candidate_commit must be a full git commit id"),
        ({"baseline_commit": "v1"}, "baseline_commit must be a full git commit id"),
        ({"baseline_commit": ""}, "baseline and baseline_commit must be given together"),
        ({"spec_hash": "F" * 64}, "spec_hash must be 64 lowercase hex digits"),
        ({"test_ids_hash": "abc"}, "test_ids_hash must be 64 lowercase hex digits"),
        ({"candidate_params_sha256": ""}, "candidate_params_sha256 must be 64 lowercase hex"),
        ({"kind": "opened"}, "an opened entry has stage '' and outcome 'opened'"),
    ],
)
def test_append_rejects_bad_values_without_writing(ledger: Path, changes, reason: str) -> None:
    before = ledger.read_bytes()
    with pytest.raises(ValueError, match=reason):
        append(ledger, **evaluation(5, **changes))
    assert ledger.read_bytes() == before


def test_an_opened_entry_may_leave_candidate_baseline_and_seeds_empty(ledger: Path) -> None:
    entry = append(ledger, **opening(5, candidate="", seeds=[]))
    assert (entry.kind, entry.stage, entry.outcome, entry.baseline_commit) == (
        "opened",
        "",
        "opened",
        "",
    )
    assert read(ledger)[-1] == entry


def test_a_failed_write_keeps_the_old_file(ledger: Path, monkeypatch) -> None:
    before = ledger.read_bytes()

    def crash(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        append(ledger, **evaluation(5))
    assert ledger.read_bytes() == before
    assert sorted(path.name for path in ledger.parent.iterdir()) == ["ledger.jsonl"]


def chain_check(path: Path) -> None:
    """Run the chain check that `verify` and `append` share (a valid append would follow)."""
    append(path, **evaluation(99))


@pytest.mark.parametrize(
    ("name", "value"),
    [("outcome", "pass"), ("seeds", [0, 1]), ("spec_hash", OTHER_SPEC), ("candidate", "other")],
)
def test_an_edited_field_is_detected(ledger: Path, name: str, value) -> None:
    rewrite_field(ledger, 2, name, value)
    read(ledger)  # still well-formed: only the chain check can catch it
    with pytest.raises(LedgerError, match=r"ledger\.jsonl:3: its hash does not match.*edited"):
        chain_check(ledger)


def test_a_deleted_middle_line_is_detected(ledger: Path) -> None:
    text = lines(ledger)
    ledger.write_text("".join(text[:2] + text[3:]))
    with pytest.raises(LedgerError, match=r"ledger\.jsonl:3: its index is 3, expected 2"):
        chain_check(ledger)


def test_swapped_lines_are_detected(ledger: Path) -> None:
    text = lines(ledger)
    text[1], text[2] = text[2], text[1]
    ledger.write_text("".join(text))
    with pytest.raises(LedgerError, match=r"ledger\.jsonl:2: its index is 2, expected 1"):
        chain_check(ledger)


def forge(index: int, previous: str, **values) -> str:
    """A canonical ledger line with a correct hash of its own, linked to `previous`."""
    record = {"index": index, "previous": previous} | values
    record["hash"] = hashlib.sha256(canonical(record).encode()).hexdigest()
    return canonical(record) + "\n"


def test_an_appended_forged_line_with_a_wrong_previous_hash_is_detected(ledger: Path) -> None:
    wrong = read(ledger)[3].hash
    ledger.write_text(ledger.read_text() + forge(5, wrong, **evaluation(5, outcome="pass")))
    assert read(ledger)[5].outcome == "pass"
    with pytest.raises(LedgerError, match=r"ledger\.jsonl:6: its previous hash.*forged"):
        chain_check(ledger)


def test_an_inserted_line_is_detected(ledger: Path) -> None:
    text = lines(ledger)
    inserted = forge(2, read(ledger)[1].hash, **evaluation(9, outcome="pass"))
    ledger.write_text("".join(text[:2] + [inserted] + text[2:]))
    with pytest.raises(LedgerError, match=r"ledger\.jsonl:4: its index is 2, expected 3"):
        chain_check(ledger)


def test_forge_matches_the_ledger_hash(ledger: Path) -> None:
    """The forger in these tests knows the real algorithm: only the chain stops it."""
    assert forge(0, GENESIS, **evaluation(0)) == lines(ledger)[0]


def test_a_truncated_last_line_is_detected(ledger: Path) -> None:
    ledger.write_bytes(ledger.read_bytes()[:-20])
    with pytest.raises(LedgerError, match=r"ledger\.jsonl:5: the last line has no line end"):
        read(ledger)


def test_read_names_the_malformed_line(ledger: Path) -> None:
    text = lines(ledger)
    text[3] = "not json\n"
    ledger.write_text("".join(text))
    with pytest.raises(LedgerError, match=r"ledger\.jsonl:4: not a JSON line.*git show"):
        read(ledger)


def test_whitespace_outside_values_is_rejected(ledger: Path) -> None:
    """Canonical lines only: a reformatted line with the same values is still an edit."""
    text = lines(ledger)
    text[1] = json.dumps(json.loads(text[1]), sort_keys=True) + "\n"
    ledger.write_text("".join(text))
    with pytest.raises(LedgerError, match=r"ledger\.jsonl:2: the line is not in canonical form"):
        read(ledger)


def test_append_refuses_a_tampered_ledger_and_leaves_it_byte_identical(ledger: Path) -> None:
    rewrite_field(ledger, 1, "outcome", "error")
    before = ledger.read_bytes()
    with pytest.raises(LedgerError, match=r"ledger\.jsonl:2: .*was edited"):
        append(ledger, **evaluation(5))
    assert ledger.read_bytes() == before


VALID = build(Path(tempfile.mkdtemp()) / "ledger.jsonl").read_bytes()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(0, len(VALID) - 1), byte=st.integers(0, 255))
def test_any_single_byte_change_is_detected(position: int, byte: int) -> None:
    """Canonical lines only, so no changed byte can leave a ledger that the chain accepts."""
    assume(VALID[position] != byte)
    changed = VALID[:position] + bytes([byte]) + VALID[position + 1 :]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ledger.jsonl"
        path.write_bytes(changed)
        with pytest.raises(LedgerError):
            chain_check(path)


def test_the_lock_is_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "gates" / "ledger.jsonl"
    refused = pytest.raises(LedgerError, match="locked by another gate run")
    with locked(path), refused, locked(path, timeout_s=0.1):
        pass
    with locked(path):
        pass


# --- verify: the chain and completeness in git ----------------------------------------------


def test_verify_checks_the_chain_in_git(looked: Path) -> None:
    path = looked / REL
    assert [entry.index for entry in verify(path, repo=looked)] == [0, 1, 2]
    rewrite_field(path, 1, "outcome", "pass")
    with pytest.raises(LedgerError, match=r"ledger\.jsonl:2: its hash does not match"):
        verify(path, repo=looked)


def test_commit_entry_leaves_head_index_and_worktree_alone(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    entry = look(repo / REL, repo, 0)
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "diff", "--cached", "--name-only") == ""
    assert git(repo, "status", "--porcelain", "--", REL) == f"M {REL}"  # modified, unstaged
    assert git(repo, "show", f"{REF}:{REL}") + "\n" == (repo / REL).read_text()
    assert git(repo, "ls-tree", "-r", "--name-only", REF) == REL
    message = git(repo, "log", "-1", "--format=%s", REF)
    assert message == "ledger #0: quick_test look at lora-r8: fail"
    assert entry.hash in git(repo, "log", "-1", "--format=%b", REF)


def test_each_look_is_one_commit_on_the_ledger_ref(looked: Path) -> None:
    subjects = git(looked, "log", "--format=%s", REF).splitlines()
    assert subjects == [
        "ledger #2: quick_test look at lora-r8: pass",
        "ledger #1: quick_test look at lora-r8: fail",
        "ledger #0: quick_test look at lora-r8: fail",
    ]


def test_commit_entry_works_without_a_git_identity(repo: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        for key in ("NAME", "EMAIL"):
            monkeypatch.delenv(f"GIT_{role}_{key}", raising=False)
    look(repo / REL, repo, 0)
    assert git(repo, "log", "-1", "--format=%an <%ae>|%cn", REF) == (
        "avgate ledger <avgate-ledger@localhost>|avgate ledger"
    )


def test_commit_entry_refuses_an_entry_that_is_not_the_last(looked: Path) -> None:
    first = read(looked / REL)[0]
    with pytest.raises(LedgerError, match="entry #0 is not its last entry"):
        commit_entry(looked / REL, first, repo=looked)


def test_a_concurrent_writer_makes_commit_entry_fail(repo: Path, monkeypatch) -> None:
    path = repo / REL
    look(path, repo, 0)
    real = ledger_module._new_commit

    def racing(top, tree, parent, entry):
        """Another writer moves the ref between our read of it and our update."""
        other = git(repo, "commit-tree", tree, "-p", parent, "-m", "another writer")
        git(repo, "update-ref", REF, other)
        return real(top, tree, parent, entry)

    monkeypatch.setattr(ledger_module, "_new_commit", racing)
    entry = append(path, **evaluation(1))
    with pytest.raises(LedgerError, match=r"refs/avgate/ledger moved while entry #1 was being"):
        commit_entry(path, entry, repo=repo)
    assert git(repo, "log", "-1", "--format=%s", REF) == "another writer"


def test_commit_entry_refuses_a_ledger_that_does_not_extend_the_ref(looked: Path) -> None:
    path = looked / REL
    git(looked, "checkout", "-q", "--", REL)  # back to the two looks on main
    entry = append(path, **evaluation(9))
    with pytest.raises(LedgerError, match="does not extend the ledger committed on"):
        commit_entry(path, entry, repo=looked)


def assert_names_missing(error: pytest.ExceptionInfo, indices: list[int]) -> str:
    """The message of `error`, after checking it lists exactly the entries `indices`."""
    message = str(error.value)
    listed = [line for line in message.splitlines() if line.startswith("  - ")]
    assert len(listed) == len(indices), message
    for line, index in zip(listed, indices, strict=True):
        assert f"entry #{index} at 2024-05-{index + 1:02d}T12:00:00Z (look, quick_test" in line
        assert "candidate 'lora-r8'" in line and "in commit " in line
    return message


def test_dropping_the_last_line_fails_verify(looked: Path) -> None:
    path = looked / REL
    path.write_text("".join(lines(path)[:-1]))  # head -n -1
    with pytest.raises(LedgerError, match="lacks 1 entry found in other committed") as error:
        verify(path, repo=looked)
    message = assert_names_missing(error, [2])
    assert "(look, quick_test, pass)" in message and REF in message
    assert f"git show {git(looked, 'rev-parse', REF)}:{REL} > {path}" in message


def test_emptying_the_file_fails_verify(looked: Path) -> None:
    path = looked / REL
    path.write_bytes(b"")
    with pytest.raises(LedgerError, match="lacks 3 entries") as error:
        verify(path, repo=looked)
    assert_names_missing(error, [0, 1, 2])


def test_deleting_the_file_fails_verify(looked: Path) -> None:
    path = looked / REL
    path.unlink()
    with pytest.raises(LedgerError, match="does not exist: the repository ships an empty") as err:
        verify(path, repo=looked)
    assert f"git show {REF}:{REL} > {path}" in str(err.value)


def test_checking_out_the_committed_ledger_fails_verify(looked: Path) -> None:
    """The third look lives only on refs/avgate/ledger: `git checkout --` cannot erase it."""
    path = looked / REL
    git(looked, "checkout", "-q", "--", REL)
    assert len(read(path)) == 2
    with pytest.raises(LedgerError) as error:
        verify(path, repo=looked)
    message = assert_names_missing(error, [2])
    assert f"({REF})" in message


def test_a_look_on_another_branch_fails_verify(repo: Path) -> None:
    """A look committed on a branch (say by hand, without the ledger ref) still counts."""
    path = repo / REL
    look(path, repo, 0)
    git(repo, "commit", "-q", "-am", "one look")
    git(repo, "checkout", "-q", "-b", "feature")
    entry = append(path, **evaluation(1))
    git(repo, "commit", "-q", "-am", "a look on feature")
    git(repo, "checkout", "-q", "main")
    assert entry not in read(path)
    with pytest.raises(LedgerError) as error:
        verify(path, repo=repo)
    message = assert_names_missing(error, [1])
    assert "refs/heads/feature" in message


def test_a_look_only_in_an_experiment_ref_fails_verify(repo: Path) -> None:
    """`git rev-list --all` reads refs/exps/*: a DVC experiment's committed look counts."""
    path = repo / REL
    append(path, **evaluation(0))
    git(repo, "commit", "-q", "-am", "experiment")
    git(repo, "update-ref", "refs/exps/ab/cdef/exp-1", "HEAD")
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    with pytest.raises(LedgerError) as error:
        verify(path, repo=repo)
    assert "refs/exps/ab/cdef/exp-1" in assert_names_missing(error, [0])


def test_a_look_dropped_by_an_ours_merge_fails_verify(repo: Path) -> None:
    """The merge keeps main's ledger; the branch is deleted and the reflogs are gone."""
    path = repo / REL
    git(repo, "checkout", "-q", "-b", "feature")
    append(path, **evaluation(0))
    git(repo, "commit", "-q", "-am", "a look on feature")
    git(repo, "checkout", "-q", "main")
    (repo / "other").write_text("x")
    git(repo, "add", "other")
    git(repo, "commit", "-q", "-m", "other work")
    git(repo, "merge", "-q", "-s", "ours", "feature", "-m", "merge, keeping main's ledger")
    git(repo, "branch", "-q", "-D", "feature")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    assert read(path) == []
    with pytest.raises(LedgerError) as error:
        verify(path, repo=repo)
    assert "refs/heads/main" in assert_names_missing(error, [0])


def test_an_amended_look_left_only_in_the_reflog_fails_verify(repo: Path) -> None:
    path = repo / REL
    append(path, **evaluation(0))
    git(repo, "commit", "-q", "-am", "a look")
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    with pytest.raises(LedgerError) as error:
        verify(path, repo=repo)
    assert "only in a reflog" in assert_names_missing(error, [0])


def test_verify_passes_when_every_version_is_a_prefix(looked: Path) -> None:
    path = looked / REL
    git(looked, "checkout", "-q", "-b", "old")
    git(looked, "checkout", "-q", "main")
    look(path, looked, 3)
    assert len(verify(path, repo=looked)) == 4


def test_diverged_versions_are_named_as_such(looked: Path) -> None:
    path = looked / REL
    git(looked, "checkout", "-q", "--", REL)
    append(path, **evaluation(7))
    with pytest.raises(LedgerError, match="The versions diverge") as error:
        verify(path, repo=looked)
    assert_names_missing(error, [2])


def test_verify_outside_git_is_refused(ledger: Path) -> None:
    with pytest.raises(LedgerError, match="is not inside a git work tree"):
        verify(ledger, repo=ledger.parent)


def test_in_throwaway_copy(tmp_path: Path) -> None:
    copy = tmp_path / ".dvc" / "tmp" / "exps" / "tmp1234"
    copy.mkdir(parents=True)
    assert in_throwaway_copy(copy) and in_throwaway_copy(copy / "gates")
    assert not in_throwaway_copy(tmp_path)
    assert not in_throwaway_copy(tmp_path / ".dvc" / "tmp" / "exps-old")


# --- the budget: spec and test split, not a line's name -------------------------------------


def allowed(entries: list[Entry], **changes) -> None:
    """`check_allowed` for a look at quick_test under SPEC, TEST_IDS and BASELINE."""
    values = {
        "spec_hash": SPEC,
        "test_ids_hash": TEST_IDS,
        "stage": "quick_test",
        "looks": 3,
        "baseline_commit": BASELINE,
    }
    check_allowed(entries, **(values | changes))


def test_looks_used_counts_every_outcome_and_candidate(ledger: Path) -> None:
    append(ledger, **evaluation(5, stage="full_test", outcome="error"))
    append(ledger, **evaluation(6, candidate="wavlm-head"))
    append(ledger, **opening(7))
    entries = read(ledger)
    assert [e.index for e in looks_used(entries, SPEC, TEST_IDS, "quick_test")] == [
        0,
        1,
        2,
        3,
        4,
        6,
    ]
    assert [e.index for e in looks_used(entries, SPEC, TEST_IDS, "full_test")] == [5]
    assert looks_used(entries, OTHER_SPEC, TEST_IDS, "quick_test") == []
    assert looks_used(entries, SPEC, "f" * 64, "quick_test") == []


def test_renaming_the_candidate_line_does_not_reset_the_budget(ledger: Path) -> None:
    entries = read(ledger)
    allowed(entries, looks=6)
    with pytest.raises(LedgerError) as error:
        allowed(entries, looks=5)
    message = str(error.value)
    assert "5 test looks already made at stage 'quick_test'" in message
    assert "(the spec allows 5)" in message
    assert "whatever the candidate's name" in message
    assert "entry #4 at 2024-05-05T12:00:00Z (look, quick_test, fail)" in message
    append(ledger, **evaluation(5, candidate="a-brand-new-name"))
    with pytest.raises(LedgerError, match="6 test looks already made"):
        allowed(read(ledger), looks=6)


def test_another_stage_or_test_split_has_its_own_budget(ledger: Path) -> None:
    entries = read(ledger)
    allowed(entries, stage="full_test", looks=1)
    allowed(entries, test_ids_hash="f" * 64, looks=1)


def test_a_new_spec_on_a_seen_test_split_and_baseline_is_refused(ledger: Path) -> None:
    with pytest.raises(LedgerError) as error:
        allowed(read(ledger), spec_hash=OTHER_SPEC, looks=9)
    message = str(error.value)
    assert "plan changed after the test split was seen" in message
    assert SPEC in message and OTHER_SPEC in message and BASELINE in message
    assert "entry #0 at 2024-05-01T12:00:00Z" in message


def test_a_new_spec_is_allowed_on_a_new_test_split(ledger: Path) -> None:
    allowed(read(ledger), spec_hash=OTHER_SPEC, test_ids_hash="f" * 64, looks=1)


def test_a_moved_baseline_tag_is_refused(ledger: Path) -> None:
    with pytest.raises(LedgerError) as error:
        allowed(read(ledger), baseline_commit=MOVED, looks=9)
    message = str(error.value)
    assert (
        f"the spec's first look pinned baseline 'model/v1' at commit {BASELINE} "
        f"(entry #0 at 2024-05-01T12:00:00Z" in message
    )
    assert f"it now resolves to {MOVED}: a moved tag is refused" in message


def test_a_moved_baseline_is_refused_on_another_test_split_too(ledger: Path) -> None:
    with pytest.raises(LedgerError, match="a moved tag is refused"):
        allowed(read(ledger), baseline_commit=MOVED, test_ids_hash="f" * 64)


def test_check_allowed_on_an_empty_ledger() -> None:
    allowed([], looks=1)
    with pytest.raises(LedgerError, match=r"0 test looks already made.*allows 0"):
        allowed([], looks=0)


def test_opened_finds_the_opening_before_the_first_look(ledger: Path) -> None:
    assert opened(read(ledger), SPEC, TEST_IDS) is None
    append(ledger, **opening(5))
    assert opened(read(ledger), SPEC, TEST_IDS) is None  # after this spec's first look
    entries = read(ledger)
    seen = opened(entries, OTHER_SPEC, TEST_IDS)  # no look yet under OTHER_SPEC
    assert seen is not None and (seen.index, seen.kind) == (5, "opened")
    assert opened(entries, OTHER_SPEC, "f" * 64) is None


def test_opened_under_a_spec_before_its_looks(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    append(path, **opening(0))
    append(path, **evaluation(1))
    entries = read(path)
    found = opened(entries, SPEC, TEST_IDS)
    assert found == entries[0]
    assert looks_used(entries, SPEC, TEST_IDS, "quick_test") == [entries[1]]
    allowed(entries, looks=2)  # an opening is not a look of the budget
