"""`budget`: the visual resolution of every second under `budget.policy`, at an equal budget.

`budget.low`, `.uniform` and `.high` name one visual encoder kind embedded at three sizes (their
options differ in `size` only). The stage reads their rows and the eventness scores and writes:

- `data/budget/visual/`: for each second, the row of the resolution the policy gave it, laid out
  as an embeddings folder ({split}.npy, .index.parquet, meta.json): the model's visual input;
- `data/budget/allocation.parquet`: clip_id, t, split, score, resolution, high, fallback;
- `metrics/budget.json`: both policies' planned budgets, what was spent, `fallback_used_frac`
  and the eventness confidence (mean spread of a clip's scores) per split, and on validation
  the share of high-resolution seconds that hold an event.

The visual cost of a second is frames per second x size² pixels. Before anything is written the
planned cost of `uniform` and of `anchored_topk` over every clip must agree within 1%, or the
stage fails naming both budgets: a comparison of the two policies is then one of equals.
`budget.policy: none` writes an empty allocation and a meta.json saying so; the model then reads
every encoder of `embed.encoders` as it is.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from avgate import budget
from avgate.config import Params
from avgate.errors import StageError
from avgate.files import atomic_dir, read_json, write_json, write_parquet
from avgate.layout.clips import ALLOCATION, BUDGETED, SPLITS, embedding_dir, eventness_scores
from avgate.layout.labels import second_labels
from avgate.profiles import recorded

REPORT = Path("metrics/budget.json")
ROLES = ("low", "uniform", "high")
NOT_COMPARED = {"size", "rows", "cpu_kernels"}  # meta keys the three sizes may differ in
LABELLED = "val"  # the one split whose labels the anchor hit rate reads (never test)


def run(params: Params) -> dict:
    """Write the budgeted visual rows, the allocation and metrics/budget.json; return the last."""
    with recorded("budget"):
        if params.budget.policy == "none":
            return _none()
        return _budget(params)


def _none() -> dict:
    with atomic_dir(BUDGETED) as tmp:
        meta = {"policy": "none", "fallback_used_frac": dict.fromkeys(SPLITS, 0.0)}
        write_json(tmp / "meta.json", meta)
    write_parquet(pd.DataFrame(columns=["clip_id", "t", "split", "resolution"]), ALLOCATION)
    summary = {"policy": "none", "reason": "budget.policy none: the model reads embed.encoders"}
    write_json(REPORT, summary)
    return summary


def _budget(params: Params) -> dict:
    metas = encoder_metas(params)
    sizes = {role: int(meta["size"]) for role, meta in metas.items()}
    settings = policy_settings(params, sizes)
    per_second = {sizes[r]: float(metas[r]["fps"]) * sizes[r] ** 2 for r in ROLES}
    scores = read_scores(params.eventness.method)
    planned = planned_budgets(settings, scores, per_second)
    try:
        budget.check_equal_budgets(planned["uniform"], planned["anchored_topk"])
    except ValueError as error:
        raise StageError(f"params.yaml budget: {error}") from error
    names = dict(zip(ROLES, params.budget.encoders(), strict=True))
    allocations, tables = {}, []
    with atomic_dir(BUDGETED) as tmp:
        for split in SPLITS:
            index = pd.read_parquet(embedding_dir(names["uniform"]) / f"{split}.index.parquet")
            chosen = allocated(settings, scores, split, index)
            allocations[split] = chosen
            write_rows(names, sizes, split, index, chosen, tmp)
            tables.append(allocation_table(chosen, scores, split, settings.high))
        meta = visual_meta(params, metas, sizes, per_second, allocations)
        write_json(tmp / "meta.json", meta)
    allocation = pd.concat(tables, ignore_index=True)
    write_parquet(allocation, ALLOCATION)
    summary = {
        "policy": settings.policy,
        "settings": dataclasses.asdict(params.budget),
        "resolutions": meta["resolutions"],
        "cost": "frames per second x size² pixels, summed over every second of every clip",
        "planned": planned | {"gap": budget.relative_gap(planned["uniform"],
                                                         planned["anchored_topk"])},
        "spent": {split: budget.cost(a, per_second) for split, a in allocations.items()},
        "fallback_used_frac": meta["fallback_used_frac"],
        "eventness_confidence": eventness_confidence(allocation),
        "val": anchor_hits(params, allocation),
    }  # fmt: skip
    write_json(REPORT, summary)
    return summary


def encoder_metas(params: Params) -> dict[str, dict]:
    """meta.json of the low, uniform and high encoders, checked to be one visual encoder at three
    sizes, low < uniform < high."""
    metas = {}
    for role, name in zip(ROLES, params.budget.encoders(), strict=True):
        path = embedding_dir(name) / "meta.json"
        if not path.is_file():
            raise StageError(f"{path}: missing; run `dvc repro embed@{name}`")
        metas[role] = read_json(path)
        if metas[role]["modality"] != "visual" or "size" not in metas[role]:
            raise StageError(
                f"params.yaml: budget.{role} {name!r} must be a visual encoder with a `size` "
                f"option, got {metas[role]['encoder']} ({metas[role]['modality']})"
            )
    reference = {k: v for k, v in metas["uniform"].items() if k not in NOT_COMPARED}
    for role in ("low", "high"):
        other = {k: v for k, v in metas[role].items() if k not in NOT_COMPARED}
        differ = sorted(k for k in reference.keys() | other.keys()
                        if reference.get(k) != other.get(k))  # fmt: skip
        if differ:
            raise StageError(
                f"params.yaml: embed.{getattr(params.budget, role)} differs from "
                f"embed.{params.budget.uniform} in {differ}; the budget's three encoders may "
                "differ in size only"
            )
    sizes = [metas[role]["size"] for role in ROLES]
    if not sizes[0] < sizes[1] < sizes[2]:
        raise StageError(
            f"params.yaml: budget.low, .uniform and .high must grow in size, got sizes {sizes} "
            f"for {list(params.budget.encoders())}"
        )
    return metas


def policy_settings(params: Params, sizes: dict[str, int]) -> budget.Budget:
    """The domain's settings: params.yaml's budget section with the encoders' sizes."""
    section = params.budget
    return budget.Budget(
        policy=section.policy, k=section.k, adjacent=section.adjacent, shift=section.shift,
        fallback_std=section.fallback_std, **sizes,
    )  # fmt: skip


def read_scores(method: str) -> pd.DataFrame:
    """The eventness stage's scores of `method`: clip_id, t, split, score."""
    path = eventness_scores(method)
    if not path.is_file():
        raise StageError(f"{path}: missing; run `dvc repro eventness`")
    return pd.read_parquet(path)


def planned_budgets(
    settings: budget.Budget, scores: pd.DataFrame, per_second: dict[int, float]
) -> dict[str, float]:
    """Each policy's visual cost over every clip of every split, from the clips' lengths only."""
    lengths = scores.groupby(["split", "clip_id"]).size().value_counts()
    return {
        policy: sum(
            count * budget.planned_cost(
                dataclasses.replace(settings, policy=policy), int(seconds), per_second
            )
            for seconds, count in lengths.items()
        )
        for policy in ("uniform", "anchored_topk")
    }  # fmt: skip


def allocated(
    settings: budget.Budget, scores: pd.DataFrame, split: str, index: pd.DataFrame
) -> budget.Allocation:
    """The policy's allocation of `split`, whose seconds must be the embeddings' rows."""
    rows = scores[scores["split"] == split]
    keys = ["clip_id", "t"]
    mine = rows[keys].sort_values(keys).reset_index(drop=True)
    theirs = index[keys].sort_values(keys).reset_index(drop=True)
    if not mine.equals(theirs):
        raise StageError(
            f"eventness scores: the {split} seconds differ from the embeddings' "
            f"({len(mine)} against {len(theirs)} rows); re-run `dvc repro eventness`"
        )
    try:
        return budget.allocate(rows, settings)
    except ValueError as error:
        raise StageError(f"eventness scores: {error}") from error


def write_rows(
    names: dict[str, str],
    sizes: dict[str, int],
    split: str,
    index: pd.DataFrame,
    chosen: budget.Allocation,
    out: Path,
) -> None:
    """Each row of `index` taken from the encoder at the resolution `chosen` gives it."""
    resolution = index.merge(chosen.seconds, on=["clip_id", "t"], how="left")["resolution"]
    rows = np.load(embedding_dir(names["uniform"]) / f"{split}.npy", mmap_mode="r")
    picked = np.lib.format.open_memmap(out / f"{split}.npy", "w+", rows.dtype, rows.shape)
    for role in ROLES:
        source = np.load(embedding_dir(names[role]) / f"{split}.npy", mmap_mode="r")
        if source.shape != rows.shape:
            raise StageError(
                f"{embedding_dir(names[role])}/{split}.npy: shape {source.shape}, not "
                f"{rows.shape} as {embedding_dir(names['uniform'])}; re-run `dvc repro`"
            )
        mask = (resolution == sizes[role]).to_numpy()
        picked[mask] = source[mask]
    picked.flush()
    del picked
    write_parquet(index, out / f"{split}.index.parquet")


def allocation_table(
    chosen: budget.Allocation, scores: pd.DataFrame, split: str, high: int
) -> pd.DataFrame:
    """clip_id, t, split, score, resolution, high, fallback of one split."""
    table = chosen.seconds.merge(scores[scores["split"] == split], on=["clip_id", "t"])
    table["high"] = table["resolution"] == high
    table["fallback"] = table["clip_id"].map(chosen.fallback).astype(bool)
    return table[["clip_id", "t", "split", "score", "resolution", "high", "fallback"]]


def visual_meta(
    params: Params,
    metas: dict[str, dict],
    sizes: dict[str, int],
    per_second: dict[int, float],
    allocations: dict[str, budget.Allocation],
) -> dict:
    """meta.json of the budgeted rows: an embeddings meta (modality, dim, layers) plus the
    policy, its resolutions and the share of clips that fell back, per split."""
    uniform = metas["uniform"]
    names = dict(zip(ROLES, params.budget.encoders(), strict=True))
    return {
        "encoder": "budget",
        "policy": params.budget.policy,
        "resolutions": {
            role: {"encoder": names[role], "size": sizes[role],
                   "cost_per_second": per_second[sizes[role]]}
            for role in ROLES
        },
        **{key: uniform[key] for key in ("modality", "dim", "n_layers", "layer_dim", "dtype")},
        "rows": {split: int(len(a.seconds)) for split, a in allocations.items()},
        "fallback_used_frac": {split: a.fallback_used_frac for split, a in allocations.items()},
    }  # fmt: skip


def eventness_confidence(allocation: pd.DataFrame) -> dict[str, float]:
    """Per split, the mean over clips of the spread (standard deviation) of a clip's eventness
    scores: the quantity budget.fallback_std tests, and the gate's buckets split in thirds."""
    spread = allocation.groupby(["split", "clip_id"], sort=False)["score"].std(ddof=0)
    return {split: float(spread[split].mean()) for split in SPLITS}


def anchor_hits(params: Params, allocation: pd.DataFrame) -> dict | None:
    """On validation: the share of high-resolution seconds that hold an event, against the share
    of all seconds that do (the rate a blind choice hits); None for clip tasks."""
    if params.task.kind != "event":
        return None
    rows = allocation[allocation["split"] == LABELLED].reset_index(drop=True)
    event = second_labels(params, rows) != params.task.background_label
    high = rows["high"].to_numpy()
    return {
        "high_seconds": int(high.sum()),
        "event_share_of_high": float(event[high].mean()) if high.any() else None,
        "event_share_of_all": float(event.mean()),
    }
