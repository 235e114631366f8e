"""Every random generator a run draws on, captured into plain values a weights-only checkpoint
holds, and restored: torch's (CPU and CUDA), numpy's, Python's and the loop's batch-order
generator. A resumed run then draws what an uninterrupted one would have.

>>> generator = torch.Generator().manual_seed(0)
>>> state = capture(generator)
>>> first = torch.rand(2), np.random.rand(), random.random(), torch.rand(1, generator=generator)
>>> restore(state, generator)
>>> again = torch.rand(2), np.random.rand(), random.random(), torch.rand(1, generator=generator)
>>> torch.equal(first[0], again[0]) and first[1:3] == again[1:3] and torch.equal(first[3], again[3])
True
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture(generator: torch.Generator | None = None) -> dict[str, Any]:
    """The state of every global generator and of `generator`."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
        "generator": None if generator is None else generator.get_state(),
    }


def restore(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Put back what `capture` took (CUDA states only where CUDA is present)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if generator is not None and state["generator"] is not None:
        generator.set_state(state["generator"])
