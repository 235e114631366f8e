"""`avgate plan check`: each test stage's power at its `min_delta`, from validation noise alone.

Before the first look there is no candidate, only the workspace's own runs. `components`
splits the validation scores of those runs (one row per sample per seed) into noise
components by the method of moments; `stage_power` simulates test splits of the test's size
with those components (`gating.simulate`) and runs each through the gate's own `judge`;
`needed` searches the seeds and the test groups that reach 80% power; `check` does this for
every test stage and weighs it against the spec's `min_power`; `render` prints it.

Power here is the chance that the stage's tests pass (the criteria that are tests, `is_test`:
its p-value at the alpha per look and, when set, its bootstrap lower end) when the true delta is
`min_delta`. The min_delta criterion
itself (observed mean delta >= min_delta) is left out of it: at a true delta of exactly
min_delta it passes about half the time whatever the seeds and groups, so no plan could reach
80% with it. The rate at which the whole stage passes is reported beside it ("stage pass").

Assumptions, said in the report: a paired delta's seed sd is sqrt(2) x one run's (two
independent runs), and the candidate-minus-baseline model-by-group sd is sqrt(2) x one run's
seed-by-group sd; both hold for a candidate of similar architecture to the validated runs.
Non-inferiority margins are taken as met. The simulated interval uses 500 bootstrap resamples
(the gate uses 10,000), enough for a pass rate and fast.
"""

from __future__ import annotations

import math
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd

from avgate import stats
from avgate.gating.criteria import is_test_record
from avgate.gating.simulate import World, draw_pair, draw_split, judge_stage, shift_for
from avgate.gating.spec import GateSpec, GateStage
from avgate.gating.verdict import alpha_correction

TARGET_POWER = 0.8  # the power `needed` searches for
N_RESAMPLES = 500  # bootstrap resamples of each simulated interval (the gate uses 10,000)
MAX_SEEDS = 64
MAX_GROUPS = 256
SEED_GRID = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64)
GROUP_GRID = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
COLUMNS = ("seed", "group", "clip_id", "correct")
WIDTH = 100
METHOD = (
    "method of moments on per-seed clip means: seed x clip (within group) residual, seed x "
    "group residual less its clip share, per-seed means less their group and clip shares; "
    "group and clip sds from seed-averaged means less their per-run shares; negatives set to 0"
)
ASSUMPTIONS = (
    "a paired delta's seed sd is sqrt(2) x one run's seed sd (two independent runs)",
    "the candidate's model-by-group sd is one run's seed-by-group sd, so the delta's is sqrt(2) "
    "x it; both hold for a candidate of similar architecture to the validated runs",
    "non-inferiority margins are taken as met; only the primary metric is simulated",
)


def components(val_table: pd.DataFrame) -> dict:
    """Noise components of the primary metric from validation runs (no candidate needed).

    `val_table` has one row per sample per seed: `seed`, `group`, `clip_id` and `correct`
    (the sample's 0/1 score); every seed scores every clip and clips nest in groups. With S
    seeds, clip means m[s, c] and clips per group k_g, by the method of moments:

    - seed-by-clip residual tau2: m doubly centred over seeds and the clips of each group,
      sum of squares over sum of (S - 1)(k_g - 1); it holds sampling noise and seed-by-clip
      effects. Sampling noise s2 is the pooled variance of samples within a seed's clip, and
      seed_by_clip_sd^2 = tau2 - s2 * mean(1 / samples per clip).
    - seed_by_group_sd^2: group means (of clip means) doubly centred over seeds and groups,
      sum of squares / ((S - 1)(G - 1)) - tau2 * mean(1 / k_g).
    - seed_sd_observed: the sample sd of per-seed means of the metric; seed_sd, the pure seed
      effect: its variance less seed_by_group_sd^2 * sum(w_g^2) and tau2 * sum(w_c^2), with
      w the share of samples in a group or clip.
    - clip_sd^2: pooled within-group variance of seed-averaged clip means - tau2 / S;
      group_sd^2: variance of seed-averaged group means - mean(1 / k_g) * (clip_sd^2 + tau2 /
      S) - seed_by_group_sd^2 / S.

    Negative estimates are set to 0. `delta_seed_sd` and `model_by_group_sd` are of a paired
    delta, sqrt(2) x the one-run seed and seed-by-group sds (two independent runs or models).
    `df` gives the degrees of freedom behind the seed, seed-by-group and seed-by-clip figures:
    with 3 seeds the seed sd rests on 2, and is rough.

    >>> rng = np.random.default_rng(0)
    >>> table = pd.DataFrame({"seed": np.repeat([0, 1, 2], 40),
    ...                       "group": np.tile(np.repeat(["a", "b", "c", "d"], 10), 3),
    ...                       "clip_id": np.tile(np.repeat(list("pqrstuvw"), 5), 3),
    ...                       "correct": rng.random(120) < 0.8})
    >>> c = components(table)
    >>> c["n_seeds"], c["n_groups"], c["n_clips"], c["samples_per_clip"], c["clips_per_group"]
    (3, 4, 8, 5, 2.0)
    >>> c["df"], math.isclose(c["delta_seed_sd"], math.sqrt(2) * c["seed_sd"])
    ({'seed': 2, 'seed_by_group': 6, 'seed_by_clip': 8}, True)
    """
    m, counts, clip_group, within = _clip_means(val_table)
    n_seeds, n_clips = m.shape
    n_groups = int(clip_group.max()) + 1
    k = np.bincount(clip_group, minlength=n_groups)
    inv_n = float(np.mean(1.0 / counts))
    tau2 = _seed_by_clip(m, clip_group, k)
    if tau2 is None:  # one clip per group: the clip level is not separable from sampling noise
        tau2 = (within or 0.0) * inv_n
    sbc2 = max(0.0, tau2 - within * inv_n) if within is not None else 0.0
    df = {
        "seed": n_seeds - 1,
        "seed_by_group": (n_seeds - 1) * (n_groups - 1),
        "seed_by_clip": (n_seeds - 1) * int((k - 1).sum()),
    }
    g_means = np.stack([m[:, clip_group == g].mean(axis=1) for g in range(n_groups)], axis=1)
    sbg2 = max(0.0, _two_way_residual(g_means) - tau2 * float(np.mean(1.0 / k)))
    w_clip = counts / counts.sum()
    w_group = np.bincount(clip_group, weights=w_clip, minlength=n_groups)
    per_seed = (m * w_clip).sum(axis=1)
    observed = float(np.var(per_seed, ddof=1))
    seed2 = max(0.0, observed - sbg2 * np.sum(w_group**2) - tau2 * np.sum(w_clip**2))
    clip_var = _within_group_var(m.mean(axis=0), clip_group, k)
    clip2 = max(0.0, clip_var - tau2 / n_seeds) if clip_var is not None else 0.0
    group_var = float(np.var(g_means.mean(axis=0), ddof=1))
    group2 = group_var - np.mean(1.0 / k) * (clip2 + tau2 / n_seeds) - sbg2 / n_seeds
    return {
        "n_seeds": n_seeds,
        "n_groups": n_groups,
        "n_clips": n_clips,
        "samples_per_seed": int(counts.sum()),
        "clips_per_group": n_clips / n_groups,
        "samples_per_clip": max(1, round(float(counts.mean()))),
        "accuracy": float(per_seed.mean()),
        "seed_sd_observed": math.sqrt(observed),
        "seed_sd": math.sqrt(seed2),
        "group_sd": math.sqrt(max(0.0, group2)),
        "clip_sd": math.sqrt(clip2),
        "seed_by_group_sd": math.sqrt(sbg2),
        "seed_by_clip_sd": math.sqrt(sbc2),
        "sampling_sd": math.sqrt(within) if within is not None else None,
        "delta_seed_sd": math.sqrt(2 * seed2),
        "model_by_group_sd": math.sqrt(2 * sbg2),
        "df": df,
        "method": METHOD,
    }


def world_from(comps: dict, clips_per_group: float) -> World:
    """The simulated world of `components`, with `clips_per_group` clips in each test group.

    >>> c = {"accuracy": 0.8, "group_sd": 0.05, "clip_sd": 0.03, "seed_sd": 0.01,
    ...      "seed_by_group_sd": 0.02, "seed_by_clip_sd": 0.0, "samples_per_clip": 10}
    >>> w = world_from(c, 2.75)
    >>> w.model_by_group_sd == w.seed_by_group_sd == 0.02, w.clips_per_group
    (True, 2.75)
    """
    return World(
        accuracy=comps["accuracy"],
        group_sd=comps["group_sd"],
        clip_sd=comps["clip_sd"],
        seed_sd=comps["seed_sd"],
        model_by_group_sd=comps["seed_by_group_sd"],  # the assumption: a model is like a run
        seed_by_group_sd=comps["seed_by_group_sd"],
        seed_by_clip_sd=comps["seed_by_clip_sd"],
        clips_per_group=clips_per_group,
        samples_per_clip=int(comps["samples_per_clip"]),
        name="validation",
    )


def stage_power(
    spec: GateSpec,
    stage: GateStage,
    comps: dict,
    n_groups: int,
    clips_per_group: float,
    delta: float,
    replications: int,
    seed: int,
    *,
    whole_stage: bool = False,
) -> float:
    """Share of simulated test splits on which the stage's tests pass at a true `delta`.

    Each replication draws a fresh test split of `n_groups` groups and a baseline and a
    candidate `delta` better on average (`simulate.shift_for`: the probability clip near 1
    eats a plain shift), with the stage's seeds, and runs `judge`. Counted: the p-value
    and the bootstrap lower end (when set); with `whole_stage`, every criterion, min_delta too.

    >>> from avgate.gating.spec import parse_stage
    >>> stage = parse_stage({"name": "t", "split": "test", "seeds": [0, 1, 2, 3], "looks": 1,
    ...                      "statistic": "paired_t", "alternative": "greater", "alpha": 0.05,
    ...                      "min_delta": 0.02})
    >>> spec = GateSpec("acc", "maximize", "v1", "bonferroni", 8, {}, (stage,), "")
    >>> quiet = {"accuracy": 0.8, "group_sd": 0.0, "clip_sd": 0.0, "seed_sd": 0.0,
    ...          "seed_by_group_sd": 0.0, "seed_by_clip_sd": 0.0, "samples_per_clip": 10}
    >>> stage_power(spec, stage, quiet, 64, 10, 0.1, replications=20, seed=0)
    1.0
    """
    rates = _simulate(
        spec, stage, world_from(comps, clips_per_group), n_groups, delta, replications, seed
    )
    return rates[1] if whole_stage else rates[0]


def needed(
    spec: GateSpec,
    stage: GateStage,
    comps: dict,
    n_groups: int,
    clips_per_group: float,
    delta: float | None = None,
    replications: int = 200,
    seed: int = 0,
    target: float = TARGET_POWER,
) -> dict:
    """Seeds (at `n_groups` test groups) and test groups (at the stage's seeds) for `target`.

    Searched over `SEED_GRID` and `GROUP_GRID` up to 64 seeds and 256 groups (fewer seeds for
    sign_flip, which takes at most 20; no fewer seeds than an exact test needs to reach its
    alpha per look, no fewer groups than `min_groups` for an interval). None means "more than
    the cap". `delta` is the true delta, the stage's `min_delta` when None.

    >>> from avgate.gating.spec import parse_stage
    >>> stage = parse_stage({"name": "t", "split": "test", "seeds": [0, 1, 2], "looks": 1,
    ...                      "statistic": "paired_t", "alternative": "greater", "alpha": 0.05,
    ...                      "min_delta": 0.0})
    >>> spec = GateSpec("acc", "maximize", "v1", "bonferroni", 8, {}, (stage,), "")
    >>> comps = {"accuracy": 0.5, "group_sd": 0.0, "clip_sd": 0.0, "seed_sd": 0.03,
    ...          "seed_by_group_sd": 0.0, "seed_by_clip_sd": 0.0, "samples_per_clip": 10}
    >>> out = needed(spec, stage, comps, 8, 3, delta=0.1, replications=50)
    >>> out["seeds"], out["groups"], out["seeds_cap"], out["groups_cap"]
    (5, 192, 64, 256)
    """
    delta = min_delta(stage) if delta is None else delta

    def at_seeds(n: int) -> float:
        changed = replace(stage, seeds=tuple(range(n)))
        return stage_power(
            spec, changed, comps, n_groups, clips_per_group, delta, replications, seed
        )

    def at_groups(n: int) -> float:
        return stage_power(spec, stage, comps, n, clips_per_group, delta, replications, seed)

    return {
        "target": target,
        "delta": delta,
        "seeds": _first_reaching(_seed_grid(stage), at_seeds, target),
        "seeds_at_groups": n_groups,
        "seeds_cap": _seed_grid(stage)[-1],
        "groups": _first_reaching(_group_grid(spec, stage), at_groups, target),
        "groups_at_seeds": len(stage.seeds),
        "groups_cap": MAX_GROUPS,
    }


def check(
    spec: GateSpec,
    val_table: pd.DataFrame,
    test_groups: int,
    test_clips: int,
    replications: int = 200,
    *,
    seed: int = 0,
) -> dict:
    """Power of every test stage at its `min_delta`, what 80% would need, and the verdict.

    `test_groups` and `test_clips` are the sizes of the test split (its labels are not read).
    `passed` is None when the spec declares no `min_power` (the check only reports), else
    whether every test stage's power reaches it.
    """
    if test_groups < 2 or test_clips < test_groups:
        raise ValueError(
            f"the test split needs at least 2 groups and a clip per group; got {test_groups} "
            f"groups and {test_clips} clips"
        )
    comps = components(val_table)
    per_group = test_clips / test_groups
    world = world_from(comps, per_group)
    rows = []
    for i, stage in enumerate(s for s in spec.stages if s.split == "test"):
        power, whole = _simulate(
            spec, stage, world, test_groups, min_delta(stage), replications, seed + i
        )
        need = needed(spec, stage, comps, test_groups, per_group, None, replications, seed + i)
        rows.append(_stage_row(spec, stage, power, whole, need, replications))
    passed = None if spec.min_power is None else all(r["meets_min_power"] for r in rows)
    return {
        "check": "power of each test stage at its min_delta, simulated through the gate's judge",
        "spec_hash": spec.hash,
        "components": comps,
        "assumptions": list(ASSUMPTIONS),
        "test_split": {"groups": test_groups, "clips": test_clips, "clips_per_group": per_group},
        "simulation": {
            "replications": replications,
            "bootstrap_resamples": N_RESAMPLES,
            "seed": seed,
            "target_power": TARGET_POWER,
            "caps": {"seeds": MAX_SEEDS, "groups": MAX_GROUPS},
        },
        "stages": rows,
        "min_power": spec.min_power,
        "passed": passed,
        "verdict": _verdict(spec.min_power, rows),
    }


def render(report: dict) -> list[str]:
    """The report as lines of at most 100 characters: the noise, a table, the verdict.

    >>> row = {"stage": "full_test", "test": "paired t-test", "alternative": "greater",
    ...        "alpha_per_look": 0.025, "correction": "Bonferroni over 2 looks: alpha 0.05/2",
    ...        "also": [], "seeds": 10, "groups": 8, "min_delta": 0.02, "power": 0.5,
    ...        "power_se": 0.035, "sided": "one-sided", "stage_pass": 0.3,
    ...        "seeds_needed": None, "groups_needed": 32, "meets_min_power": None}
    >>> comps = {"n_seeds": 3, "n_groups": 8, "n_clips": 27, "samples_per_seed": 270,
    ...          "accuracy": 0.8, "seed_sd": 0.01, "seed_sd_observed": 0.02, "group_sd": 0.05,
    ...          "clip_sd": 0.04, "seed_by_group_sd": 0.0, "seed_by_clip_sd": 0.03,
    ...          "delta_seed_sd": 0.0141, "model_by_group_sd": 0.0,
    ...          "df": {"seed": 2, "seed_by_group": 14, "seed_by_clip": 38}}
    >>> report = {"components": comps, "assumptions": list(ASSUMPTIONS), "stages": [row],
    ...           "test_split": {"groups": 8, "clips": 22, "clips_per_group": 2.75},
    ...           "simulation": {"replications": 200, "bootstrap_resamples": 500,
    ...                          "target_power": 0.8, "caps": {"seeds": 64, "groups": 256}},
    ...           "min_power": None, "verdict": "no min_power declared: the check only reports"}
    >>> lines = render(report)
    >>> max(map(len, lines)) <= 100, [x for x in lines if x.startswith("full_test ")][0].split()
    (True, ['full_test', '10', '8', '0.0200', '0.50', '0.30', '>64', '32', '-'])
    """
    comps, sim, split = report["components"], report["simulation"], report["test_split"]
    lines = [
        "avgate plan check: power of each test stage at its min_delta, simulated from validation",
        *_wrap(
            f"validation: {comps['n_seeds']} seeds x {comps['n_groups']} groups, "
            f"{comps['n_clips']} clips, {comps['samples_per_seed']} samples per seed; "
            f"mean {comps['accuracy']:.4f}"
        ),
        *_wrap(
            f"noise of one run: seed sd {comps['seed_sd']:.4f} (sd of per-seed means "
            f"{comps['seed_sd_observed']:.4f}), group sd {comps['group_sd']:.4f}, clip sd "
            f"{comps['clip_sd']:.4f}, seed-by-group sd {comps['seed_by_group_sd']:.4f}, "
            f"seed-by-clip sd {comps['seed_by_clip_sd']:.4f}; degrees of freedom: seed "
            f"{comps['df']['seed']}, seed-by-group {comps['df']['seed_by_group']}, seed-by-clip "
            f"{comps['df']['seed_by_clip']}"
        ),
        *_wrap(
            f"paired delta: seed sd {comps['delta_seed_sd']:.4f}, model-by-group sd "
            f"{comps['model_by_group_sd']:.4f}. Assumed: " + "; ".join(report["assumptions"])
        ),
        *_wrap(
            f"test split: {split['groups']} groups, {split['clips']} clips "
            f"({split['clips_per_group']:.3g} per group); {sim['replications']} replications "
            f"per figure, {sim['bootstrap_resamples']} bootstrap resamples per interval"
        ),
        "",
        *_table(report["stages"], sim),
        "",
    ]
    for row in report["stages"]:
        lines += _wrap(f"{row['stage']}: {_criteria(row)}")
    lines += _wrap(
        f"power: P(the stage's tests pass) at a true delta = min_delta (binomial SE <= "
        f"{0.5 / math.sqrt(sim['replications']):.3f}); stage "
        f"pass: P(every criterion passes, min_delta too, which alone passes about half the "
        f"time there); >N: more than the cap ({sim['caps']['seeds']} seeds, "
        f"{sim['caps']['groups']} groups)"
    )
    lines += _wrap(report["verdict"])
    return lines


def _clip_means(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, float | None]:
    """(seeds x clips) clip means, samples per clip, each clip's group index, and the pooled
    within-clip sample variance (None when no clip has two samples).
    """
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"validation table lacks columns {missing}; needs {list(COLUMNS)}")
    df = table[list(COLUMNS)]
    score = pd.to_numeric(df["correct"], errors="coerce").astype(np.float64)
    if score.isna().any() or not score.between(0, 1).all():
        raise ValueError("validation column 'correct' must hold per-sample scores in [0, 1]")
    df = df.assign(correct=score)
    spread = df.groupby("clip_id")["group"].nunique()
    if (spread > 1).any():
        raise ValueError(f"clip {spread[spread > 1].index[0]!r} is in more than one group")
    cells = df.groupby(["seed", "clip_id"])["correct"].agg(["mean", "count", "var"])
    m = cells["mean"].unstack("clip_id")
    if m.isna().any().any():
        raise ValueError("every seed must score every validation clip; some seed lacks a clip")
    if len(m) < 2:
        raise ValueError(f"need at least 2 seeds to estimate seed noise, got {len(m)}")
    clip_group = df.groupby("clip_id")["group"].first().loc[m.columns]
    _, group_index = np.unique(clip_group.to_numpy(), return_inverse=True)
    if group_index.max() < 1:
        raise ValueError("need at least 2 validation groups to estimate group noise")
    counts = cells["count"].unstack("clip_id").loc[:, m.columns].mean(axis=0).to_numpy()
    dof = cells["count"] - 1
    within = float((cells["var"].fillna(0) * dof).sum() / dof.sum()) if dof.sum() > 0 else None
    return m.to_numpy(np.float64), counts.astype(np.float64), group_index, within


def _double_centre(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=0) - x.mean(axis=1, keepdims=True) + x.mean()


def _two_way_residual(x: np.ndarray) -> float:
    """Residual mean square of a two-way table without replication (rows x columns)."""
    rows, cols = x.shape
    return float((_double_centre(x) ** 2).sum() / ((rows - 1) * (cols - 1)))


def _seed_by_clip(m: np.ndarray, clip_group: np.ndarray, k: np.ndarray) -> float | None:
    """Seed x clip-within-group residual mean square; None when no group has two clips."""
    ss, dof = 0.0, 0
    for g in np.flatnonzero(k >= 2):
        ss += float((_double_centre(m[:, clip_group == g]) ** 2).sum())
        dof += (m.shape[0] - 1) * (int(k[g]) - 1)
    return ss / dof if dof else None


def _within_group_var(values: np.ndarray, clip_group: np.ndarray, k: np.ndarray) -> float | None:
    """Pooled variance of `values` (one per clip) around their group's mean."""
    dof = int((k - 1).sum())
    if dof == 0:
        return None
    means = np.bincount(clip_group, weights=values) / k
    return float(((values - means[clip_group]) ** 2).sum() / dof)


def _simulate(
    spec: GateSpec,
    stage: GateStage,
    world: World,
    n_groups: int,
    delta: float,
    replications: int,
    seed: int,
) -> tuple[float, float]:
    """(tests pass, whole stage passes) rates over `replications` fresh test splits."""
    rng = np.random.default_rng(seed)
    signed = delta if spec.direction == "maximize" else -delta
    tests = whole = 0
    with warnings.catch_warnings():  # scipy warns on near-equal deltas (a world without noise)
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(replications):
            split = draw_split(rng, world, n_groups)
            shift = shift_for(split, signed)  # the true mean delta is `delta`, ceiling or not
            base, cand = draw_pair(rng, world, split, len(stage.seeds), shift)
            verdict = judge_stage(rng, spec, stage, split, base, cand, N_RESAMPLES)
            tests += all(c.passed for c in verdict.criteria if is_test_record(stage, c))
            whole += verdict.passed
    return tests / replications, whole / replications


def min_delta(stage: GateStage) -> float:
    """The stage's `min_delta`: the effect the plan cares about, which power is computed at."""
    return stage.criterion("min_delta").options.min_delta


def _seed_grid(stage: GateStage) -> tuple[int, ...]:
    """Seed counts to try: those whose test can reach the alpha per look, up to the cap."""
    test = stats.STATISTICS[stage.statistic]
    return tuple(
        n
        for n in SEED_GRID
        if not test.seeds_problem(n)
        and test.min_p_value(n, stage.alternative) <= stage.alpha_per_look
    )


def _group_grid(spec: GateSpec, stage: GateStage) -> tuple[int, ...]:
    least = spec.min_groups if any(c.rests_on_groups for c in stage.criteria) else 2
    return tuple(n for n in GROUP_GRID if least <= n <= MAX_GROUPS)


def _first_reaching(grid: tuple[int, ...], power: Callable[[int], float], target: float):
    """Smallest grid value whose power reaches `target`, None if none does (power taken as
    rising along the grid): probe indices 0, 1, 3, 7, ... then bisect, cheap sizes first.

    >>> rising = lambda n: n / 10
    >>> _first_reaching((2, 4, 8, 16), rising, 0.8), _first_reaching((2, 4), rising, 0.9)
    (8, None)
    """
    cache: dict[int, bool] = {}

    def ok(i: int) -> bool:
        if i not in cache:
            cache[i] = power(grid[i]) >= target
        return cache[i]

    lo, hi, step = -1, 0, 1  # ok(lo) is False (or lo is -1), hi the next probe
    while not ok(hi):
        if hi == len(grid) - 1:
            return None
        lo, hi, step = hi, min(len(grid) - 1, hi + step), step * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return grid[hi]


def _stage_row(
    spec: GateSpec, stage: GateStage, power: float, whole: float, need: dict, reps: int
) -> dict:
    meets = None if spec.min_power is None else bool(power >= spec.min_power)
    return {
        "stage": stage.name,
        "test": stats.STATISTICS[stage.statistic].title,
        "alternative": stage.alternative,
        "sided": "two-sided" if stage.alternative == "two-sided" else "one-sided",
        "alpha_per_look": stage.alpha_per_look,
        "correction": alpha_correction(stage)["detail"],
        "also": [c.describe(stage) for c in stage.criteria if c.is_test and c.describe(stage)],
        "seeds": len(stage.seeds),
        "groups": need["seeds_at_groups"],
        "min_delta": min_delta(stage),
        "power": power,
        "power_se": math.sqrt(power * (1 - power) / reps),
        "stage_pass": whole,
        "seeds_needed": need["seeds"],
        "seeds_cap": need["seeds_cap"],
        "groups_needed": need["groups"],
        "groups_cap": need["groups_cap"],
        "meets_min_power": meets,
    }


def _verdict(min_power: float | None, rows: list[dict]) -> str:
    if min_power is None:
        return "no min_power declared in gates.yaml: the check only reports"
    low = [f"{r['stage']} {r['power']:.2f}" for r in rows if not r["meets_min_power"]]
    if not low:
        return f"PASS: every test stage has power >= min_power {min_power:g}"
    return (
        f"FAIL: power below min_power {min_power:g} at {', '.join(low)}; add test groups or "
        "seeds (see the table) before the first look"
    )


def _table(rows: list[dict], sim: dict) -> list[str]:
    target = f"{sim['target_power']:.0%}"
    head = (
        "stage",
        "seeds",
        "groups",
        "min_delta",
        "power",
        "stage pass",
        f"seeds@{target}",
        f"groups@{target}",
        "min_power",
    )
    lines = [_cells(head)]
    for r in rows:
        meets = {None: "-", True: "ok", False: "BELOW"}[r["meets_min_power"]]
        seeds = _needed(r["seeds_needed"], r.get("seeds_cap", sim["caps"]["seeds"]))
        groups = _needed(r["groups_needed"], r.get("groups_cap", sim["caps"]["groups"]))
        cells = (
            r["stage"],
            r["seeds"],
            r["groups"],
            f"{r['min_delta']:.4f}",
            f"{r['power']:.2f}",
            f"{r['stage_pass']:.2f}",
            seeds,
            groups,
            meets,
        )
        lines.append(_cells(cells))
    return lines


def _cells(cells: tuple) -> str:
    name, *rest = (str(c) for c in cells)
    widths = (6, 7, 10, 6, 11, 11, 12, 10)
    return (
        name[:16].ljust(16) + "".join(c.rjust(w) for c, w in zip(rest, widths, strict=True))
    ).rstrip()


def _needed(value: int | None, cap: int) -> str:
    return f">{cap}" if value is None else str(value)


def _criteria(row: dict) -> str:
    text = (
        f"{row['test']}, {row['sided']} ({row['alternative']}), p <= {row['alpha_per_look']:.4g}"
        f" per look ({row['correction']})"
    )
    return text + "".join(f"; and the {also}" for also in row["also"])


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, subsequent_indent="  ", break_on_hyphens=False)
