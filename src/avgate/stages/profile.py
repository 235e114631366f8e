"""Wall time and peak memory of a stage run, kept in data/profiles/ beside (not inside) the
stage's data outputs, so that timings never change the hash of what later stages read."""

from __future__ import annotations

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
    write_json(profile_path(stage), {"stage": stage, "seconds": round(seconds, 3),
                                     "peak_rss_mib": memory, **extras})  # fmt: skip
