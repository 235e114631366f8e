"""Wall time of the gate's bootstraps in `avgate.stats` against `scipy.stats.bootstrap`, in one run.

    python bench/gate.py [--samples 100000] [--seeds 10] [--cluster-size 10] [--group-size 100]
                         [--resamples 10000]

`cluster_bootstrap` resamples clusters (clips) of the (seeds, samples) delta matrix;
`group_bootstrap`, the gate's interval, resamples groups of --group-size clips, then clips within
each drawn group, with seeds fixed and, two-way, seed rows too. scipy resamples samples of the
per-sample deltas averaged over seeds (paired=True, percentile, vectorized=True, same number of
resamples, batched to bound memory). When scipy's projected time exceeds --scipy-budget seconds,
it runs on fewer resamples and its time is scaled linearly; the output says so.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
from scipy import stats as sps

from avgate.stats import cluster_bootstrap, group_bootstrap

SCIPY_BATCH_CELLS = 20_000_000  # resamples x samples per scipy batch: about 160 MB of indices


def timed(fn) -> tuple[float, object]:
    """Seconds `fn()` takes, and its result."""
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def bounds(interval: dict) -> str:
    """An interval's low and high, as printed."""
    return f"[{interval['low']:.5f}, {interval['high']:.5f}]"


def line(name: str, seconds: float, result: str) -> None:
    """One timing line: what ran, its wall time, what it gave."""
    print(f"{name + ':':33s}{seconds:8.2f} s   {result}")


def scipy_bootstrap(x: np.ndarray, y: np.ndarray, n_resamples: int):
    """scipy's paired percentile bootstrap of mean(x - y)."""
    return sps.bootstrap(
        (x, y),
        lambda a, b, axis: np.mean(a - b, axis=axis),
        paired=True,
        vectorized=True,
        method="percentile",
        n_resamples=n_resamples,
        batch=max(1, SCIPY_BATCH_CELLS // len(x)),
        rng=0,
    ).confidence_interval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--cluster-size", type=int, default=10)
    parser.add_argument("--group-size", type=int, default=100, help="clusters per group")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--scipy-budget", type=float, default=60.0)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    clusters = np.arange(args.samples) // args.cluster_size
    groups = clusters // args.group_size
    baseline = rng.normal(0.70, 0.1, size=(args.seeds, args.samples))
    candidate = baseline + 0.01 + rng.normal(0, 0.05, size=(args.seeds, args.samples))
    deltas = candidate - baseline
    print(
        f"data: {args.samples:,} samples x {args.seeds} seeds, clusters of {args.cluster_size} "
        f"({clusters[-1] + 1:,} clusters in {groups[-1] + 1:,} groups), "
        f"{args.resamples:,} resamples"
    )

    ours_s, ours = timed(lambda: cluster_bootstrap(deltas, clusters, args.resamples))
    line("ours  cluster_bootstrap", ours_s, bounds(ours))
    for two_way in (False, True):
        run = partial(group_bootstrap, deltas, groups, clusters, two_way, args.resamples)
        group_s, group = timed(run)
        line(f"ours  group_bootstrap{', two-way' if two_way else ''}", group_s, bounds(group))

    cand_mean, base_mean = candidate.mean(axis=0), baseline.mean(axis=0)
    probe = max(1, args.resamples // 20)
    probe_s, _ = timed(lambda: scipy_bootstrap(cand_mean, base_mean, probe))
    projected = probe_s * args.resamples / probe
    if projected <= args.scipy_budget:
        scipy_s, ci = timed(lambda: scipy_bootstrap(cand_mean, base_mean, args.resamples))
        note = "measured on all resamples"
    else:
        scipy_s, ci, note = (
            projected,
            None,
            f"{probe:,} resamples timed, scaled x{args.resamples / probe:g}",
        )
    interval = f"[{ci.low:.5f}, {ci.high:.5f}]" if ci is not None else "(not run in full)"
    line("scipy bootstrap", scipy_s, f"{interval}  ({note})")
    print(f"ratio scipy / ours: {scipy_s / ours_s:.1f}x")


if __name__ == "__main__":
    main()
