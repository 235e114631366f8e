"""Ordered parallel map over worker processes, with a progress bar; workers that exit with
their parent.

>>> list(ordered_map(abs, [-2, 3], workers=0, desc="abs", progress=False))
[2, 3]
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from tqdm import tqdm

In = TypeVar("In")
Out = TypeVar("Out")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """Have Linux send this process SIGTERM when its parent (pid `parent`, whose thread started
    it) exits, and send it at once if that happened already; call it first thing in a worker.

    Killing only the main process (as the OOM killer does) would otherwise leave its workers
    alive: a DataLoader worker with results still queued waits forever at exit for a reader,
    and a pool worker runs its task to the end.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def ordered_map(
    fn: Callable[[In], Out],
    items: Iterable[In],
    workers: int,
    desc: str,
    progress: bool = True,
) -> Iterator[Out]:
    """Yield fn(item) in input order; `workers` processes (0 runs in this process)."""
    items = list(items)
    bar = tqdm(total=len(items), desc=desc, unit="file", disable=not progress)
    with bar:
        if workers == 0:
            for item in items:
                yield fn(item)
                bar.update()
            return
        with ProcessPoolExecutor(
            workers, initializer=die_with_parent, initargs=(os.getpid(),)
        ) as pool:
            for result in pool.map(fn, items, chunksize=4):
                yield result
                bar.update()
