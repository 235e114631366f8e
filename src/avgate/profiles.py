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


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory so far, in MiB (Linux reports KiB), of this process or, with
    RUSAGE_CHILDREN, of its largest child that has ended (DataLoader and pool workers)."""
    return resource.getrusage(who).ru_maxrss / 1024


@contextmanager
def recorded(stage: str) -> Iterator[dict]:
    """Time the block and write {stage, seconds, peak_rss_mib, ...extras} when it succeeds.

    `peak_rss_mib` is the larger of this process's peak and its largest ended child's
    (`peak_rss_children_mib`): a worker may hold more than the process that starts it. The
    yielded dict takes extra facts (e.g. clips/s) to store with the timing.
    """
    extras: dict = {}
    started = time.perf_counter()
    yield extras
    seconds = time.perf_counter() - started
    children = round(peak_rss_mib(resource.RUSAGE_CHILDREN), 1)
    memory = max(round(peak_rss_mib(), 1), children)
    machine = {"machine": platform.machine(), "processor": platform.processor(),
               "cpus": os.cpu_count()}  # fmt: skip
    write_json(profile_path(stage), {"stage": stage, "seconds": round(seconds, 3),
                                     "peak_rss_mib": memory, "peak_rss_children_mib": children,
                                     **extras, **machine})  # fmt: skip


def read_all(root: Path = PROFILES) -> list[dict]:
    """Every profile under `root`, in path order."""
    return [json.loads(path.read_text()) for path in sorted(root.rglob("*.json"))]
