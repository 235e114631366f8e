"""Seeding and kernel pinning before a run: same seed, same params -> bit-identical weights on CPU,
on any x86-64 machine whose process pinned its kernels first (`avgate.numerics`)."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from avgate.numerics import pin_torch


def pin_determinism(seed: int, num_threads: int) -> None:
    """Seed torch's global generator, switch off oneDNN and fix the thread count.

    Deterministic-algorithm mode only changes CUDA kernels, and switching it on imports
    torch._inductor (1.7 s a stage), so it is set only where CUDA is present.
    """
    torch.manual_seed(seed)
    pin_torch(num_threads)
    if torch.cuda.is_available():
        torch.use_deterministic_algorithms(True)


def deterministic_cuda() -> None:
    """cuBLAS is deterministic (as `pin_determinism` demands on CUDA) only with a fixed
    workspace, which must be set before its first use."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def seed_everything(seed: int, num_threads: int) -> None:
    """`pin_determinism`, and seed numpy (e.g. SpecAugment's masks) and Python's generator too."""
    deterministic_cuda()
    pin_determinism(seed, num_threads)
    np.random.seed(seed)
    random.seed(seed)
