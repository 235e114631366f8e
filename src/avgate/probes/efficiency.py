"""`efficiency`: training memory and step time of the configured head against the batch size,
and the memory headroom at `train.batch_size` on a machine of `probe.device_memory_gib` GiB.

Memory is counted, not sampled, so that the JSON and the plot are the same on every machine:
the bytes a training step holds at its peak are the model's state (parameters and buffers), the
gradients, the optimiser's state (whatever the loop's optimiser keeps, read after a step: Adam's
two moments and its step counts), the tensors autograd saves for the backward pass (unique
storages, parameters excluded; the labels the loss saves among them) and the batch (its feature
rows and row indices). Each batch size b is one real step of the loop (`loop.train_epoch` on a
task whose training split is b rows, the training rows repeated as needed, in one batch), so the
step is the one the train stage takes (recipe, finite checks and all). The head mode trains on
the CPU, so no CUDA figure is taken. Step time (median of `STEPS` steps after `WARMUP`) and
rows per second go to the profile only (data/profiles/probe/efficiency.json), never the JSON.

>>> headroom(3 * 2**29, 2.0)
0.25
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import pandas as pd
import torch

from avgate.config import Params
from avgate.finetune.none import Data, build_head, row_names
from avgate.finetune.none.fitting import recipe
from avgate.probes.base import Probe, ProbeOutput, register_probe, rounded
from avgate.probes.head_mode import head_data, not_head_mode
from avgate.training.determinism import pin_determinism
from avgate.training.finite import Rows
from avgate.training.labels import classes_of, encode
from avgate.training.loop import train_epoch
from avgate.training.tensors import Split, TensorClassification

WARMUP, STEPS = 2, 7  # steps before timing, steps timed (the median is kept)
GIB, MIB = 2**30, 2**20


def headroom(peak_bytes: int, memory_gib: float) -> float:
    """The share of a machine's memory a step leaves free: 1 - peak / memory."""
    return 1 - peak_bytes / (memory_gib * GIB)


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of `tensors`' elements."""
    return sum(t.numel() * t.element_size() for t in tensors)


@contextmanager
def saved_storages(exclude: set[int]) -> Iterator[dict[int, int]]:
    """The storages autograd saves in the block (data pointer: bytes), those whose pointer is in
    `exclude` left out."""
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in exclude:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield seen


def step_task(params: Params, data: Data, batch_size: int) -> TensorClassification:
    """The train stage's task for the head, on `batch_size` training rows in one batch (the
    rows repeated cyclically when there are fewer)."""
    p = params.train
    classes = classes_of(data.train.labels)
    x, y = torch.from_numpy(data.train.x), encode(data.train.labels, classes, "train")
    model, _ = build_head(p, data.blocks, int(x.shape[1]), len(classes))
    model.set_standardisation(x)
    rows = torch.arange(batch_size) % len(x)
    names = row_names(data.train)
    split = Split(x[rows], y[rows], Rows("train", [names[i] for i in rows.tolist()]))
    scale = model.scale
    return TensorClassification(model, split, split, p.lr, p.weight_decay, batch_size,
                                recipe=recipe(p, y[rows], classes, scale))  # fmt: skip


def measure(params: Params, data: Data, batch_size: int) -> tuple[dict, float, str]:
    """The bytes of one training step at `batch_size`, its median wall time in seconds and the
    optimiser's name."""
    task = step_task(params, data, batch_size)
    model, optimiser = task.model, task.optimiser()
    generator = torch.Generator().manual_seed(params.probe.seed)
    held = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    with saved_storages(held) as saved:
        train_epoch(task, optimiser, generator, 1)
    seconds = []
    for epoch in range(2, 2 + WARMUP + STEPS):
        started = time.perf_counter()
        train_epoch(task, optimiser, generator, epoch)
        seconds.append(time.perf_counter() - started)
    trainable = [t for t in model.parameters() if t.requires_grad]
    state = (v for s in optimiser.state.values() for v in s.values() if torch.is_tensor(v))
    counted = {
        "model": tensor_bytes(model.state_dict().values()),
        "gradients": tensor_bytes(trainable),
        "optimizer_state": tensor_bytes(state),
        "activations": sum(saved.values()),
        "batch": tensor_bytes([task.train.x]) + batch_size * 8,  # features + row indices
    }
    return counted, statistics.median(seconds[WARMUP:]), type(optimiser).__name__


def efficiency(params: Params, data: Data) -> ProbeOutput:
    """Memory by batch size and the headroom at train.batch_size (see the module doc)."""
    pin_determinism(params.probe.seed, params.train.num_threads)
    target = params.train.batch_size
    sizes = sorted({*params.probe.batch_sizes, target})
    rows, timings = [], {"device": "cpu", "threads": params.train.num_threads}
    optimisers = set()
    for size in sizes:
        counted, seconds, optimiser = measure(params, data, size)
        optimisers.add(optimiser)
        peak = sum(counted.values())
        rows.append({"batch_size": size, **counted, "peak_bytes": peak,
                     "peak_mib": round(peak / MIB, 3)})  # fmt: skip
        timings[f"step_ms_b{size}"] = round(seconds * 1000, 3)
        timings[f"rows_per_s_b{size}"] = round(size / seconds, 1)
    at_target = next(row for row in rows if row["batch_size"] == target)
    result = {
        "optimizer": " ".join(sorted(optimisers)),
        "train_batch_size": target,
        "device_memory_gib": params.probe.device_memory_gib,
        "peak_bytes_at_train_batch_size": at_target["peak_bytes"],
        "headroom": rounded(headroom(at_target["peak_bytes"], params.probe.device_memory_gib)),
        "by_batch_size": rows,
    }
    plot = pd.DataFrame(rows)[["batch_size", "peak_mib"]]
    steps = ", ".join(f"{s}: {timings[f'step_ms_b{s}']} ms" for s in sizes)
    line = (
        f"peak {at_target['peak_mib']} MiB a step at batch size {target}, headroom "
        f"{result['headroom']:.3%} of {params.probe.device_memory_gib:g} GiB; step time by batch "
        f"size (median of {STEPS}, this machine) {steps}"
    )
    return ProbeOutput(result, plot, timings, line)


@register_probe("efficiency")
class Efficiency(Probe):
    """Memory and step time against the batch size (see the module doc)."""

    plot_name = "memory_by_batch"
    plot_columns = ("batch_size", "peak_mib")

    def applies(self, params: Params) -> str | None:
        return not_head_mode(params)

    def run(self, params: Params) -> ProbeOutput:
        return efficiency(params, head_data(params))
