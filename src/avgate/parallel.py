"""Ordered parallel map over worker processes, with a progress bar.

>>> list(ordered_map(abs, [-2, 3], workers=0, desc="abs", progress=False))
[2, 3]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from tqdm import tqdm

In = TypeVar("In")
Out = TypeVar("Out")


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
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(fn, items, chunksize=4):
                yield result
                bar.update()
