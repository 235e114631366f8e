"""One experiment at a time in a workspace: a stage refuses to run on params.yaml that changed
under the `dvc exp run` it belongs to.

A second `dvc exp run -S ...` in a workspace where one is running rewrites params.yaml at once,
then fails on DVC's lock of the running stage's outputs; the first run's later stages read the
second's values, and DVC records them in dvc.lock as if the whole run had used them. DVC gives
each stage of a workspace experiment the run's name (DVC_EXP_NAME); the first avgate stage of a
run records a hash of params.yaml under that name and the `dvc` process id (the stage's parent:
DVC's shell execs a one-command stage), and each stage compares the file with it when it starts
and when it ends. Queued experiments run in copies of their own (each with its own `.dvc/tmp`),
so they never see one another's record; `dvc repro` sets no experiment name and is not checked.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from avgate.errors import StageError

RECORD = Path(".dvc/tmp/avgate-experiment.json")
QUEUE_INSTEAD = "run experiments one at a time, or queue them (`dvc exp run --queue`)"


def _write_record(record: dict) -> None:
    """Write RECORD atomically (avgate.files would load pandas into every command)."""
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    temp = RECORD.with_name(f".{RECORD.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(record))
    os.replace(temp, RECORD)


def _digest(params_file: Path) -> str:
    return hashlib.sha256(params_file.read_bytes()).hexdigest()


def _changed(params_file: Path, experiment: str, when: str) -> StageError:
    return StageError(
        f"{params_file} changed {when} of experiment {experiment!r} (another `dvc exp run` in "
        f"this workspace?): its stages would mix two sets of params, and dvc.lock would record "
        f"the new ones for work done with the old; {QUEUE_INSTEAD}, then re-run"
    )


@contextmanager
def params_held(params_file: str | Path = "params.yaml") -> Iterator[None]:
    """Run a stage, failing with StageError where params.yaml differs from what the first
    avgate stage of this `dvc exp run` read, at the start of the block or at its end. Outside
    an experiment (no DVC_EXP_NAME: `dvc repro`, a command typed by hand) it checks nothing."""
    experiment = os.environ.get("DVC_EXP_NAME")
    params_file = Path(params_file)
    if experiment is None or not params_file.is_file():
        yield
        return
    run = {"experiment": experiment, "dvc_pid": os.getppid()}
    before = _digest(params_file)
    record = json.loads(RECORD.read_text()) if RECORD.is_file() else {}
    if {k: record.get(k) for k in run} == run and record.get("params_sha256") != before:
        raise _changed(params_file, experiment, "since the first stage")
    _write_record({**run, "params_sha256": before})
    yield
    if _digest(params_file) != before:
        raise _changed(params_file, experiment, f"during stage {os.environ.get('DVC_STAGE')}")
