"""The one checkpoint mechanism: a run's whole state in one file after every epoch, written
atomically, loaded weights-only, resumed only under the same key.

The key is a fingerprint of everything that decides the run (`fingerprint`): a checkpoint made
with other params, data or code versions is not resumed but removed, and training starts at
epoch 1. A file holding anything but tensors and plain values is refused before any code in it
can run, named in a warning, and removed too.

>>> fingerprint({"lr": 0.1}) == fingerprint({"lr": 0.1}) != fingerprint({"lr": 0.2})
True
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from avgate import disk


@dataclass(frozen=True)
class Checkpointing:
    """Where the loop saves its state after every epoch, and the key a saved state must carry to
    be resumed."""

    path: Path
    key: str


def fingerprint(facts: Any, tensors: Iterable[torch.Tensor] = ()) -> str:
    """sha256 of `facts` (JSON; keys sorted, other objects by `str`) and the bytes of `tensors`."""
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode())
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def save(checkpoint: Checkpointing, state: dict[str, Any]) -> None:
    """`state` and the key, through a temporary file renamed into place. Serialised in memory
    first: the exact size is checked against the free space, and a full disk is one line naming
    the path instead of torch's `unexpected pos`."""
    checkpoint.path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({"key": checkpoint.key, **state}, buffer)
    disk.write_bytes(checkpoint.path, buffer.getbuffer(), "a training checkpoint")


def load(checkpoint: Checkpointing | None) -> dict[str, Any] | None:
    """The saved state to resume, or None: no file, an unusable one (warned about) or another
    key. Whatever is not resumed is removed, with a killed run's temporary file."""
    if checkpoint is None:
        return None
    checkpoint.path.with_name(f".{checkpoint.path.name}.tmp").unlink(missing_ok=True)
    if not checkpoint.path.exists():
        return None
    state = load_state(checkpoint.path)
    if state is not None and state.get("key") == checkpoint.key:
        return state
    checkpoint.path.unlink()
    return None


def load_state(path: Path) -> dict[str, Any] | None:
    """The training state saved at `path`, loaded weights-only on the CPU (tensors and plain
    values, so a planted pickle cannot run code); None, with a warning naming the file, for
    anything else."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # junk bytes raise anything from KeyError to UnpicklingError
        _discard(path, f"a weights-only load refused it ({type(error).__name__})")
        return None
    if not isinstance(state, dict):
        _discard(path, f"it holds a {type(state).__name__}, not a dict")
        return None
    return state


def _discard(path: Path, why: str) -> None:
    print(
        f"warning: {path}: not a usable checkpoint: {why}; ignored, training starts at epoch 1",
        file=sys.stderr,
    )
