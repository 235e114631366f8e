import pytest

from avgate.files import atomic_dir, atomic_path, read_json, write_json


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "report.json"
    write_json(target, {"version": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert read_json(target) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_atomic_dir_replaces_only_on_success(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("killed")
    assert [p.name for p in target.iterdir()] == ["stale.txt"]
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_read_json_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json: missing; run `dvc repro`"):
        read_json(tmp_path / "missing.json")


def test_write_json_refuses_nan_and_infinity_naming_the_file_and_keys(tmp_path):
    target = tmp_path / "head.json"
    write_json(target, {"best_val_loss": 0.5})
    bad = {"best_val_loss": float("inf"), "seeds": [{"f1": 0.5}, {"f1": float("nan")}]}
    with pytest.raises(ValueError) as error:
        write_json(target, bad)
    assert str(error.value) == (
        f"{target}: not written: JSON cannot hold NaN or Infinity: "
        "best_val_loss=inf, seeds[1].f1=nan"
    )
    assert read_json(target) == {"best_val_loss": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["head.json"]
    write_json(target, {"best_val_loss": None})
    assert target.read_text() == '{\n  "best_val_loss": null\n}\n'


def test_atomic_dir_removes_what_a_killed_run_left_beside_the_target(tmp_path):
    for stale in (".x.old", ".x.abc.tmp"):
        (tmp_path / stale).mkdir()
        (tmp_path / stale / "part.npy").write_bytes(b"half")
    with atomic_dir(tmp_path / "x") as tmp:
        (tmp / "done").write_text("ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]
    assert (tmp_path / "x" / "done").read_text() == "ok"
