"""Wall time and peak memory of a stage run, and the machine it ran on, kept in data/profiles/:
outside git and outside DVC's outputs, so that timings never change what DVC or git track (a
fresh clone's `make repro` leaves `git status` clean). `avgate profiles` prints them."""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from avgate.files import write_json

PROFILES = Path("data/profiles")


def profile_path(stage: str) -> Path:
    """Where the profile of `stage` (e.g. 'ingest', 'embed/logmel') is written."""
    return PROFILES / f"{stage}.json"


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def recorded(stage: str) -> Iterator[dict]:
    """Time the block and write {stage, seconds, peak_rss_mib, ...extras} when it succeeds.

    The yielded dict takes extra facts (e.g. clips/s) to store with the timing.
    """
    extras: dict = {}
    started = time.perf_counter()
    yield extras
    seconds = time.perf_counter() - started
    memory = round(peak_rss_mib(), 1)
    machine = {"machine": platform.machine(), "processor": platform.processor(),
               "cpus": os.cpu_count()}  # fmt: skip
    write_json(profile_path(stage), {"stage": stage, "seconds": round(seconds, 3),
                                     "peak_rss_mib": memory, **extras, **machine})  # fmt: skip


def read_all(root: Path = PROFILES) -> list[dict]:
    """Every profile under `root`, in path order."""
    return [json.loads(path.read_text()) for path in sorted(root.rglob("*.json"))]
