"""Budgeted visual resolution: which resolution each second of a clip gets, at an equal budget.

Visual features exist at a few resolutions (a frame size in pixels, or a token count), each with a
cost per second (`pixel_costs`: size²). A policy, `budget.policy`, picks one resolution per second
from the clip's audio eventness scores (a table `clip_id, t, score`, higher = more eventful):

- `uniform` gives every second `budget.uniform`; its spend is the budget the others must match;
- `anchored_topk` gives `budget.high` to the `budget.k` most eventful seconds (with
  `budget.adjacent`, to their neighbours too) and `budget.low` to the rest. It always spends
  h = min(T, k·3 if adjacent else k) high seconds on a clip of T seconds: where windows overlap
  or meet the clip's edge, the next most eventful anchor fills the room, so the spend depends on T
  only and the budget can be planned. `budget.shift` moves every anchor by that many seconds
  (clipped to the clip), a control that should not help. A clip whose scores have a standard
  deviation below `budget.fallback_std` is too flat to anchor and gets `budget.uniform` throughout.

Equal budgets, the arithmetic: on a clip of T seconds the anchored policy spends
h·c(high) + (T - h)·c(low) and the uniform one T·c(uniform); with pixel costs c(s) = s² they are
equal when uniform² = low² + h/T·(high² - low²). At T=10, low=32, high=112, k=2 that asks for
uniform ≈ 57.7: 58 misses by 1.07% and no integer size is within 1%; k=3 asks for 66.9 and 67
misses by 0.2% (as does k=1 with adjacent, h=3). `uniform_for` finds the size or the k/size pairs.

>>> scores = pd.DataFrame({"clip_id": "a", "t": range(5), "score": [0.1, 0.9, 0.2, 0.8, 0.3]})
>>> params = Budget(policy="anchored_topk", k=2, low=32, high=112, uniform=67)
>>> allocate(scores, params).seconds["resolution"].tolist()
[32, 112, 32, 112, 32]
>>> cost(allocate(scores, params), pixel_costs(32, 67, 112))
28160.0
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, NoReturn

import numpy as np
import pandas as pd

from avgate.declare import PARAMS_FILE, ConfigError

Resolution = int  # a frame size in pixels or a token count
TOLERANCE = 0.01  # the largest relative gap between two budgets that still counts as equal
COLUMNS = ["clip_id", "t", "score"]


@dataclass(frozen=True)
class Budget:
    """A policy's settings with the three resolutions as sizes, validated on construction. The
    budget stage makes it from params.yaml's `budget` section, which names the encoders, and the
    sizes in their embeddings' meta.json.

    >>> Budget(k=0)
    Traceback (most recent call last):
    ...
    avgate.declare.ConfigError: params.yaml: budget.k must be an integer >= 1, got 0
    """

    policy: str = "uniform"
    k: int = 3
    adjacent: bool = False
    shift: int = 0
    fallback_std: float = 0.0
    low: Resolution = 32
    high: Resolution = 112
    uniform: Resolution = 67

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            _fail("policy", f"must be one of {sorted(POLICIES)}", self.policy)
        _require_int("k", self.k, minimum=1)
        if not isinstance(self.adjacent, bool):
            _fail("adjacent", "must be true/false", self.adjacent)
        _require_int("shift", self.shift)
        if not _is_number(self.fallback_std) or not 0 <= self.fallback_std < math.inf:
            _fail("fallback_std", "must be a finite number >= 0", self.fallback_std)
        for key in ("low", "high", "uniform"):
            _require_int(key, getattr(self, key), minimum=1)
        if self.high <= self.low:
            _fail("high", f"must be > budget.low ({self.low})", self.high)


def _fail(key: str, rule: str, value: object) -> NoReturn:
    raise ConfigError(f"{PARAMS_FILE}: budget.{key} {rule}, got {value!r}")


def _require_int(key: str, value: object, minimum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(key, "must be an integer" + (f" >= {minimum}" if minimum is not None else ""), value)
    if minimum is not None and value < minimum:
        _fail(key, f"must be an integer >= {minimum}", value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- policies: the extension point ------------------------------------------------------------


class Policy(ABC):
    """How a clip's seconds share the resolutions; registered under `name` by `register_policy`.

    The contract: `resolutions` returns one resolution per second, the same for the same scores,
    and spends exactly `spend(len(scores))`, a count that depends on the clip's length only, so
    that a policy's budget can be planned and compared before any score is seen.
    """

    name: ClassVar[str]
    uses_eventness: ClassVar[bool]  # reads the scores, so a flat clip falls back to uniform

    def __init__(self, params: Budget) -> None:
        self.params = params

    @abstractmethod
    def resolutions(self, scores: np.ndarray) -> np.ndarray:
        """One resolution per second of one clip, from its scores in time order."""

    @abstractmethod
    def spend(self, seconds: int) -> Counter[Resolution]:
        """How many seconds of each resolution a clip of `seconds` seconds gets."""


POLICIES: dict[str, type[Policy]] = {}


def register_policy(cls: type[Policy]) -> type[Policy]:
    """Class decorator: make a policy selectable as `budget.policy: <cls.name>`."""
    if cls.name in POLICIES:
        raise ValueError(f"budget policy {cls.name!r} is registered twice")
    POLICIES[cls.name] = cls
    return cls


@register_policy
class Uniform(Policy):
    """Every second at `budget.uniform`: the reference budget."""

    name = "uniform"
    uses_eventness = False

    def resolutions(self, scores: np.ndarray) -> np.ndarray:
        return np.full(len(scores), self.params.uniform)

    def spend(self, seconds: int) -> Counter[Resolution]:
        return Counter({self.params.uniform: seconds})


@register_policy
class AnchoredTopK(Policy):
    """`budget.high` on the most eventful seconds (and neighbours), `budget.low` elsewhere."""

    name = "anchored_topk"
    uses_eventness = True

    def resolutions(self, scores: np.ndarray) -> np.ndarray:
        high = high_seconds(
            scores, self.highs(len(scores)), self.params.adjacent, self.params.shift
        )
        return np.where(high, self.params.high, self.params.low)

    def spend(self, seconds: int) -> Counter[Resolution]:
        highs = self.highs(seconds)
        return +Counter({self.params.high: highs, self.params.low: seconds - highs})

    def highs(self, seconds: int) -> int:
        """h = min(T, k) high seconds, or min(T, 3k) with neighbours."""
        return min(seconds, self.params.k * (3 if self.params.adjacent else 1))


def high_seconds(scores: np.ndarray, count: int, adjacent: bool, shift: int) -> np.ndarray:
    """Mask of the `count` seconds that anchors reach first, most eventful anchor first.

    Anchors go by score (ties: the earlier second), each moved by `shift` and clipped to the
    clip, then covering itself, its earlier and its later neighbour (with `adjacent`); seconds no
    anchor reaches (only after a shift) come last, earliest first.

    >>> high_seconds(np.array([0.9, 0.1, 0.5, 0.5]), 2, adjacent=False, shift=0).tolist()
    [True, False, True, False]
    >>> high_seconds(np.array([0.9, 0.1, 0.5, 0.5]), 3, adjacent=True, shift=0).tolist()
    [True, True, True, False]
    >>> high_seconds(np.array([0.9, 0.1, 0.5, 0.5]), 2, adjacent=False, shift=9).tolist()
    [True, False, False, True]
    """
    n = len(scores)
    offsets = (0, -1, 1) if adjacent else (0,)
    centres = np.clip(np.argsort(-scores, kind="stable") + shift, 0, n - 1)
    reached = dict.fromkeys(
        int(c) + o for c in centres for o in offsets if 0 <= int(c) + o < n
    )  # ordered and without repeats
    ranked = [*reached, *(s for s in range(n) if s not in reached)]
    mask = np.zeros(n, dtype=bool)
    mask[ranked[:count]] = True
    return mask


# --- allocation -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Allocation:
    """The resolution of every (clip, second) and whether each clip fell back to uniform.

    `seconds`: `clip_id, t, resolution`, sorted by clip and second; `fallback`: one bool per
    clip_id (always False under a policy that does not read the scores).
    """

    policy: str
    seconds: pd.DataFrame
    fallback: pd.Series

    def totals(self) -> dict[Resolution, int]:
        """Seconds spent at each resolution, over all clips."""
        counts = self.seconds["resolution"].value_counts()
        return {int(r): int(n) for r, n in sorted(counts.items())}

    @property
    def fallback_used_frac(self) -> float:
        """Share of clips that were too flat to anchor and fell back to uniform."""
        return float(self.fallback.mean())


def allocate(scores: pd.DataFrame, params: Budget) -> Allocation:
    """Choose each second's resolution under `params.policy` (deterministic, row order free).

    `scores` has one row per clip and second (`clip_id`, `t` = 0..T-1 once each, finite `score`).
    """
    table = _checked(scores)
    policy = POLICIES[params.policy](params)
    chosen, fallback = [], {}
    for clip_id, group in table.groupby("clip_id", sort=False):
        values = group["score"].to_numpy(dtype=float)
        fallback[clip_id] = policy.uses_eventness and is_flat(values, params.fallback_std)
        chooser = Uniform(params) if fallback[clip_id] else policy
        chosen.append(chooser.resolutions(values))
    seconds = table[["clip_id", "t"]].assign(resolution=np.concatenate(chosen).astype(int))
    return Allocation(params.policy, seconds, pd.Series(fallback, name="fallback", dtype=bool))


def is_flat(scores: np.ndarray, fallback_std: float) -> bool:
    """True when the scores' (population) standard deviation is below `fallback_std`.

    >>> is_flat(np.array([0.5, 0.5, 0.6]), 0.1), is_flat(np.array([0.0, 1.0]), 0.1)
    (True, False)
    """
    return bool(np.std(scores) < fallback_std)


def _checked(scores: pd.DataFrame) -> pd.DataFrame:
    """The scores sorted by clip and second, after checking the table's shape and values."""
    missing = [c for c in COLUMNS if c not in scores.columns]
    if missing:
        raise ValueError(f"eventness scores lack the columns {missing}")
    if scores.empty:
        raise ValueError("eventness scores are empty")
    if not np.isfinite(scores["score"].to_numpy(dtype=float)).all():
        raise ValueError("eventness scores hold NaN or infinite values")
    table = scores[COLUMNS].sort_values(["clip_id", "t"], kind="stable").reset_index(drop=True)
    expected = table.groupby("clip_id", sort=False).cumcount()
    bad = table.loc[table["t"].to_numpy() != expected.to_numpy(), "clip_id"]
    if len(bad):
        raise ValueError(f"clip {bad.iloc[0]!r}: seconds t must be 0..T-1, each once")
    return table


# --- cost and equal budgets -------------------------------------------------------------------


def pixel_costs(*sizes: Resolution) -> dict[Resolution, float]:
    """Cost per second of square frames: size² pixels.

    >>> pixel_costs(32, 112)
    {32: 1024.0, 112: 12544.0}
    """
    return {size: float(size * size) for size in sizes}


def cost(allocation: Allocation, cost_per_second: dict[Resolution, float]) -> float:
    """The allocation's visual cost: seconds at each resolution times its cost per second."""
    return _priced(allocation.totals(), cost_per_second)


def _priced(counts: dict[Resolution, int], cost_per_second: dict[Resolution, float]) -> float:
    unpriced = sorted(set(counts) - set(cost_per_second))
    if unpriced:
        raise ValueError(f"no cost per second for the resolutions {unpriced}")
    return float(sum(n * cost_per_second[r] for r, n in counts.items()))


def relative_gap(uniform_cost: float, other_cost: float) -> float:
    """(other - uniform) / uniform: how far a budget is from the uniform one.

    >>> round(relative_gap(10 * 58**2, 2 * 112**2 + 8 * 32**2), 4)
    -0.0107
    """
    if uniform_cost <= 0:
        raise ValueError(f"the uniform budget must be > 0, got {uniform_cost}")
    return (other_cost - uniform_cost) / uniform_cost


def check_equal_budgets(
    uniform_cost: float, anchored_cost: float, tolerance: float = TOLERANCE
) -> None:
    """Raise ValueError naming both budgets when they differ by more than `tolerance` of uniform.

    >>> check_equal_budgets(44890.0, 44800.0)
    >>> check_equal_budgets(100.0, 102.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unequal visual budgets: uniform 100, anchored 102 (+2.00%, more than 1.00%); ...
    """
    gap = relative_gap(uniform_cost, anchored_cost)
    if abs(gap) > tolerance:
        raise ValueError(
            f"unequal visual budgets: uniform {uniform_cost:g}, anchored {anchored_cost:g} "
            f"({gap:+.2%}, more than {tolerance:.2%}); choose budget.uniform or budget.k so "
            "that they match (avgate.budget.uniform_for lists the pairs that do)"
        )


def planned_cost(params: Budget, seconds: int, cost_per_second: dict[Resolution, float]) -> float:
    """The cost of one clip of `seconds` seconds under `params.policy`, before any score is seen.

    >>> planned_cost(Budget(policy="anchored_topk", k=2), 10, pixel_costs(32, 112))
    33280.0
    """
    spend = POLICIES[params.policy](params).spend(seconds)
    return _priced(dict(spend), cost_per_second)


def equalising_pairs(
    params: Budget,
    seconds: int,
    sizes: Iterable[Resolution],
    cost_per_second: dict[Resolution, float],
    tolerance: float = TOLERANCE,
) -> list[tuple[int, Resolution, float]]:
    """(k, uniform size, gap) for every k that leaves a second low and size whose budgets match.

    `params` gives low, high and adjacent; the gap is anchored against uniform, as in
    `check_equal_budgets`.

    >>> sizes = [32, 46, 47, 52, 58, 67, 112]
    >>> equalising_pairs(Budget(), 10, sizes, pixel_costs(*sizes))
    [(3, 67, -0.002)]
    """
    pairs = []
    for k in range(1, seconds):
        anchored = _with(params, policy="anchored_topk", k=k)
        if AnchoredTopK(anchored).highs(seconds) == seconds:
            break  # every second high: nothing left to anchor
        for size in sizes:
            uniform = _with(params, policy="uniform", uniform=size)
            gap = relative_gap(
                planned_cost(uniform, seconds, cost_per_second),
                planned_cost(anchored, seconds, cost_per_second),
            )
            if abs(gap) <= tolerance:
                pairs.append((k, size, round(gap, 4)))
    return pairs


def uniform_for(
    params: Budget,
    seconds: int,
    sizes: Iterable[Resolution],
    cost_per_second: dict[Resolution, float],
    tolerance: float = TOLERANCE,
) -> Resolution:
    """The size in `sizes` whose uniform budget is nearest the anchored one at `params`' k.

    Raises ValueError when even the nearest is more than `tolerance` away, listing the k/size
    pairs that would match.

    >>> sizes = [32, 58, 67, 112]
    >>> uniform_for(Budget(k=3), 10, sizes, pixel_costs(*sizes))
    67
    >>> uniform_for(Budget(k=2), 10, sizes, pixel_costs(*sizes))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: no uniform size in [32, 58, 67, 112] matches anchored k=2 on 10 s clips ...
    """
    sizes = list(sizes)
    anchored = planned_cost(_with(params, policy="anchored_topk"), seconds, cost_per_second)
    gaps = {
        size: relative_gap(
            planned_cost(_with(params, policy="uniform", uniform=size), seconds, cost_per_second),
            anchored,
        )
        for size in sizes
    }
    best = min(sizes, key=lambda size: (abs(gaps[size]), size))
    if abs(gaps[best]) > tolerance:
        pairs = equalising_pairs(params, seconds, sizes, cost_per_second, tolerance)
        raise ValueError(
            f"no uniform size in {sizes} matches anchored k={params.k} on {seconds} s clips "
            f"within {tolerance:.2%} (nearest: {best}, {gaps[best]:+.2%}); "
            f"(k, size, gap) pairs that do: {pairs or 'none'}"
        )
    return best


def _with(params: Budget, **changes: object) -> Budget:
    return dataclasses.replace(params, **changes)
