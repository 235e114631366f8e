"""Shared fixtures: a small demo dataset generated once per session, and project folders."""
# ruff: noqa: E402 (the CPU kernels are pinned before anything loads torch)

from __future__ import annotations

from avgate.numerics import pin_environment

pin_environment()  # before torch loads: the in-process stage runs get the stages' CPU kernels

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from avgate.config import Params
from avgate.stages import demo_data
from tests.scratch import REPO, commit, scratch_project

# Small enough for seconds-long stage runs, large enough for a grouped 3-way split of 6 classes.
SMALL = {
    "demo": {
        "n_clips": 48,
        "n_groups": 8,
        "confound": 0.0,
        "clip_seconds": 4,
        "event_seconds": [1, 3],
        "snr_db": [0.0, 12.0],
        "shape_opacity": [0.6, 1.0],
        "visual_cue": "shape",  # the class visible at any size and audible: the tests' demo
        "audio_cue": "class",
        "workers": 2,
    },
    "ingest": {"workers": 0},
    "embed": {  # 4 s clips: 52² + 3 x 12² = 4 x 28², the budget's sizes at k=1 (equal budgets)
        "workers": 0,
        "frames": {"size": 28},
        "frames_low": {"size": 12},
        "frames_high": {"size": 52},
    },
    "budget": {"k": 1},
    "train": {"seeds": [0, 1], "max_epochs": 30, "patience": 5, "clip_context": False},
}


def run_until_train(params: Params) -> None:
    """Run ingest, split, every embed, the audit and budget in-process, as `dvc repro` would, and
    eventness where the budget reads it (`budget.policy` on)."""
    from avgate.stages import audit_embeddings, budget, embed, eventness, ingest, split

    ingest.run(params)
    split.run(params)
    for name in params.embed.encoders:
        embed.run(params, name)
    audit_embeddings.run(params)
    if params.budget.policy != "none":
        eventness.run(params)
    budget.run(params)


@contextmanager
def embedded_project(small_demo: Path, root: Path) -> Iterator[Path]:
    """`root` holding the small demo, run through `run_until_train`; the working directory
    while the context lasts (for module-scoped fixtures, which cannot use `monkeypatch`)."""
    shutil.copytree(small_demo, root / "data/raw/demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        run_until_train(write_params(root, {}))
        yield root


def train_every_seed(params: Params) -> None:
    """Train and evaluate every seed in `train.seeds`, in-process."""
    from avgate.stages.train import evaluate, train_seed

    for seed in params.train.seeds:
        train_seed.run(params, seed)
        evaluate.run(params, seed)


WHOLE = {("embed", "encoders")}  # mappings that are one value (name: kind), replaced whole


def merge(base: dict, overrides: dict, where: tuple[str, ...] = ()) -> dict:
    """`base` with `overrides` applied key by key, recursing into sections (not into WHOLE)."""
    out = dict(base)
    for key, value in overrides.items():
        here = (*where, key)
        section = isinstance(value, dict) and here not in WHOLE
        out[key] = merge(base.get(key, {}), value, here) if section else value
    return out


def write_params(root: Path, overrides: dict) -> Params:
    """Write the repo's params.yaml with the small settings and `overrides` into `root`.

    Overrides that choose `embed.encoders` and say nothing of `budget` get `budget.policy: none`:
    the budget's three visual encoders are the repo's, not theirs."""
    if "encoders" in overrides.get("embed", {}) and "budget" not in overrides:
        overrides = {**overrides, "budget": {"policy": "none"}}
    data = merge(merge(yaml.safe_load((REPO / "params.yaml").read_text()), SMALL), overrides)
    (root / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return Params.from_dict(data)


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small demo dataset, generated once and copied into each project that needs it."""
    root = tmp_path_factory.mktemp("demo")
    params = write_params(root, {})
    demo_data.run(params, root / "data/raw/demo")
    return root / "data/raw/demo"


@pytest.fixture
def project(tmp_path: Path, small_demo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder holding the small demo data and params; the working directory."""
    shutil.copytree(small_demo, tmp_path / "data/raw/demo")
    write_params(tmp_path, {})
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module, as the stages pin it: small fits on tiny tensors only add
    synchronisation with more (several times slower on two busy cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def example_project(tmp_path: Path) -> Iterator[Path]:
    """A scratch copy of the project for examples/*.sh: the small params on seeds 0 and 1,
    committed, with the project's environment linked in under a stamp of its own."""
    root = scratch_project(tmp_path / "project")
    shutil.copytree(REPO / "examples", root / "examples")
    for name in ("Makefile", "requirements.lock", "pyproject.toml"):
        shutil.copy2(REPO / name, root / name)  # keeps mtimes: make sees .venv as current
    venv = root / ".venv"  # the project's environment, with a stamp of its own: `make` in the
    venv.mkdir()  # copy must never re-install (that would point the editable install here)
    for entry in (REPO / ".venv").iterdir():
        if entry.name != ".installed":
            (venv / entry.name).symlink_to(entry)
    (venv / ".installed").touch()
    write_params(root, {"demo": {"workers": 0}, "train": {"seeds": [0, 1]}})
    commit(root, "examples and small params")
    yield root
    for editable in (REPO / ".venv").glob("lib/python*/site-packages/__editable__.avgate*.pth"):
        assert editable.read_text().strip() == str(REPO / "src"), "an example re-installed avgate"
