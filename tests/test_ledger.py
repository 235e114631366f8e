"""The test-split ledger: a valid chain, every kind of tampering caught, and the refusals."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from avgate.gating.ledger import (
    GENESIS,
    LedgerError,
    append,
    attempts,
    canonical,
    check_allowed,
    read,
    verify,
)

SPEC = "a" * 64
OTHER_SPEC = "b" * 64


def evaluation(number: int, **changes) -> dict:
    """Keyword arguments for `append`: evaluation `number` of candidate line "lora-r8"."""
    values = {
        "timestamp": f"2024-05-{number + 1:02d}T12:00:00Z",
        "candidate": "lora-r8",
        "revision": f"rev{number}",
        "spec_hash": SPEC,
        "stage": "quick_test",
        "seeds": [0, 1, 2],
        "outcome": "fail",
    }
    return values | changes


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


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """A valid 5-entry ledger."""
    return build(tmp_path / "gates" / "ledger.jsonl")


def test_append_builds_a_valid_chain(ledger: Path) -> None:
    entries = verify(ledger)
    assert [entry.index for entry in entries] == [0, 1, 2, 3, 4]
    assert entries[0].previous == GENESIS
    assert [entry.previous for entry in entries[1:]] == [entry.hash for entry in entries[:-1]]
    assert [entry.outcome for entry in entries] == ["fail", "pass", "fail", "pass", "fail"]
    assert entries[2].seeds == [0, 1, 2] and entries[2].revision == "rev2"


def test_lines_are_canonical_json(ledger: Path) -> None:
    for line in lines(ledger):
        assert line == canonical(json.loads(line)) + "\n"


def test_read_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert read(tmp_path / "ledger.jsonl") == []
    assert verify(tmp_path / "ledger.jsonl") == []


def test_append_leaves_no_temp_file(ledger: Path) -> None:
    assert sorted(path.name for path in ledger.parent.iterdir()) == ["ledger.jsonl"]


def test_append_rejects_bad_values_without_writing(ledger: Path) -> None:
    before = ledger.read_bytes()
    with pytest.raises(ValueError, match="outcome"):
        append(ledger, **evaluation(5, outcome="maybe"))
    with pytest.raises(ValueError, match="timestamp"):
        append(ledger, **evaluation(5, timestamp="2024-05-01T12:00:00+02:00"))
    assert ledger.read_bytes() == before


def test_a_failed_write_keeps_the_old_file(ledger: Path, monkeypatch) -> None:
    before = ledger.read_bytes()

    def crash(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        append(ledger, **evaluation(5))
    assert ledger.read_bytes() == before
    assert sorted(path.name for path in ledger.parent.iterdir()) == ["ledger.jsonl"]


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("outcome", "pass", "hash does not match"),
        ("seeds", [0, 1], "hash does not match"),
        ("spec_hash", OTHER_SPEC, "hash does not match"),
    ],
)
def test_verify_detects_an_edited_field(ledger: Path, name: str, value, reason: str) -> None:
    rewrite_field(ledger, 2, name, value)
    read(ledger)  # still well-formed: only the chain check can catch it
    with pytest.raises(LedgerError, match=rf"ledger\.jsonl:3: its {reason}.*was edited"):
        verify(ledger)


def test_verify_detects_a_deleted_middle_line(ledger: Path) -> None:
    text = lines(ledger)
    ledger.write_text("".join(text[:2] + text[3:]))
    with pytest.raises(LedgerError, match=r"ledger\.jsonl:3: its index is 3, expected 2"):
        verify(ledger)


def test_verify_detects_swapped_lines(ledger: Path) -> None:
    text = lines(ledger)
    text[1], text[2] = text[2], text[1]
    ledger.write_text("".join(text))
    with pytest.raises(LedgerError, match=r"ledger\.jsonl:2: its index is 2, expected 1"):
        verify(ledger)


def forge(index: int, previous: str, **values) -> str:
    """A canonical ledger line with a correct hash of its own, linked to `previous`."""
    record = {"index": index, "previous": previous} | values
    record["hash"] = hashlib.sha256(canonical(record).encode()).hexdigest()
    return canonical(record) + "\n"


def test_verify_detects_an_appended_forged_line_with_a_wrong_previous_hash(ledger: Path) -> None:
    wrong = read(ledger)[3].hash
    ledger.write_text(ledger.read_text() + forge(5, wrong, **evaluation(5, outcome="pass")))
    assert read(ledger)[5].outcome == "pass"
    with pytest.raises(LedgerError, match=r"ledger\.jsonl:6: its previous hash.*forged"):
        verify(ledger)


def test_verify_detects_an_inserted_line(ledger: Path) -> None:
    text = lines(ledger)
    inserted = forge(2, read(ledger)[1].hash, **evaluation(9, outcome="pass"))
    ledger.write_text("".join(text[:2] + [inserted] + text[2:]))
    with pytest.raises(LedgerError, match=r"ledger\.jsonl:4: its index is 2, expected 3"):
        verify(ledger)


def test_forge_matches_the_ledger_hash(ledger: Path) -> None:
    """The forger in these tests knows the real algorithm: only the chain stops it."""
    first = read(ledger)[0]
    assert forge(0, GENESIS, **evaluation(0)) == lines(ledger)[0]
    assert first.previous == GENESIS


def test_verify_detects_a_truncated_last_line(ledger: Path) -> None:
    data = ledger.read_bytes()
    ledger.write_bytes(data[:-20])
    with pytest.raises(LedgerError, match=r"ledger\.jsonl:5: the last line has no line end"):
        read(ledger)


def test_read_names_the_malformed_line(ledger: Path) -> None:
    text = lines(ledger)
    text[3] = "not json\n"
    ledger.write_text("".join(text))
    with pytest.raises(LedgerError, match=r"ledger\.jsonl:4: not a JSON line.*git checkout"):
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


def test_attempts_counts_every_outcome_per_candidate_and_stage(ledger: Path) -> None:
    append(ledger, **evaluation(5, stage="full_test", outcome="error"))
    append(ledger, **evaluation(6, candidate="wavlm-head"))
    entries = verify(ledger)
    assert attempts(entries, "lora-r8") == 6
    assert attempts(entries, "lora-r8", "quick_test") == 5
    assert attempts(entries, "lora-r8", "full_test") == 1
    assert attempts(entries, "wavlm-head") == 1
    assert attempts(entries, "nobody") == 0


def test_check_allowed_refuses_after_max_attempts(ledger: Path) -> None:
    entries = verify(ledger)
    check_allowed(entries, candidate="lora-r8", spec_hash=SPEC, stage="quick_test", max_attempts=6)
    check_allowed(entries, candidate="lora-r8", spec_hash=SPEC, stage="full_test", max_attempts=1)
    with pytest.raises(LedgerError) as caught:
        check_allowed(
            entries, candidate="lora-r8", spec_hash=SPEC, stage="quick_test", max_attempts=5
        )
    message = str(caught.value)
    assert "already used 5 of 5" in message
    assert "entry #4 at 2024-05-05T12:00:00Z" in message
    assert "new candidate line" in message and "cannot be reset" in message


def test_check_allowed_refuses_after_a_spec_change(ledger: Path) -> None:
    entries = verify(ledger)
    with pytest.raises(LedgerError) as caught:
        check_allowed(
            entries, candidate="lora-r8", spec_hash=OTHER_SPEC, stage="full_test", max_attempts=9
        )
    message = str(caught.value)
    assert "spec of candidate line 'lora-r8' changed after its first look" in message
    assert "entry #0 at 2024-05-01T12:00:00Z" in message
    assert SPEC in message and OTHER_SPEC in message
    assert "new candidate line" in message


def test_check_allowed_allows_a_different_candidate_line(ledger: Path) -> None:
    entries = verify(ledger)
    check_allowed(
        entries, candidate="lora-r16", spec_hash=OTHER_SPEC, stage="quick_test", max_attempts=1
    )


def test_check_allowed_on_an_empty_ledger() -> None:
    check_allowed([], candidate="lora-r8", spec_hash=SPEC, stage="full_test", max_attempts=1)
    with pytest.raises(LedgerError, match="already used 0 of 0"):
        check_allowed([], candidate="lora-r8", spec_hash=SPEC, stage="full_test", max_attempts=0)


VALID = build(Path(tempfile.mkdtemp()) / "ledger.jsonl").read_bytes()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(0, len(VALID) - 1), byte=st.integers(0, 255))
def test_any_single_byte_change_is_detected(position: int, byte: int) -> None:
    """Canonical lines only, so no changed byte can leave a ledger that `verify` accepts."""
    assume(VALID[position] != byte)
    changed = VALID[:position] + bytes([byte]) + VALID[position + 1 :]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ledger.jsonl"
        path.write_bytes(changed)
        with pytest.raises(LedgerError):
            verify(path)
