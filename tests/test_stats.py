"""Tests of avgate.stats against scipy, hand-computed cases and simulation. Every registered
statistic is also checked by tests/test_statistic_contract.py."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from avgate import stats

DELTAS = np.array([0.012, -0.004, 0.020, 0.009, 0.015, -0.001, 0.007])
PAIRED_T, WILCOXON, SIGN_FLIP = (stats.STATISTICS[n] for n in ("paired_t", "wilcoxon", "sign_flip"))


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_paired_t_matches_scipy(alternative):
    r = PAIRED_T.test(DELTAS, alternative)
    ref = sps.ttest_1samp(DELTAS, 0.0, alternative=alternative)
    assert (r.test, r.alternative, r.n) == ("paired t-test", alternative, len(DELTAS))
    assert r.statistic == pytest.approx(ref.statistic)
    assert r.p_value == pytest.approx(ref.pvalue)
    assert r.min_p_value == 0.0


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_wilcoxon_matches_scipy_exact_without_ties(alternative):
    r = WILCOXON.test(DELTAS, alternative)
    ref = sps.wilcoxon(DELTAS, alternative=alternative, method="exact")
    assert r.p_value == pytest.approx(ref.pvalue)
    assert r.statistic == pytest.approx(ref.statistic)
    assert (r.test, r.note) == ("exact Wilcoxon signed-rank", "")


def test_wilcoxon_drops_zero_deltas_and_says_so():
    r = WILCOXON.test([0.0, 0.01, 0.02, 0.03, 0.0])
    assert r.n == 3
    assert r.p_value == 0.125
    assert "2 zero delta(s) dropped" in r.note


@pytest.mark.parametrize(
    ("deltas", "alternative", "exact"),
    [
        # four tied +0.01 and one -0.01: midrank 3 each, r+ = 12; r+ >= 12 in 1 + 5 of 32 patterns
        ([0.01, 0.01, 0.01, 0.01, -0.01], "greater", 6 / 32),
        ([0.01, 0.01, 0.01, 0.01, -0.01], "two-sided", 12 / 32),
        # |0.02| twice (midrank 2.5), 0.01 rank 1: r+ = 6 of 6; only the all-plus pattern reaches
        ([0.02, 0.02, -0.01, 0.03], "greater", None),
    ],
)
def test_wilcoxon_is_exact_under_ties(deltas, alternative, exact):
    d = np.asarray(deltas)
    ranks = sps.rankdata(np.abs(d))
    signs = np.array(np.meshgrid(*[[-1, 1]] * len(d))).reshape(len(d), -1).T
    sums = signs @ ranks
    observed = np.sign(d) @ ranks
    brute = (
        np.mean(sums >= observed)
        if alternative == "greater"
        else np.mean(np.abs(sums) >= abs(observed))
    )
    r = WILCOXON.test(d, alternative)
    assert r.p_value == pytest.approx(brute)
    if exact is not None:
        assert r.p_value == pytest.approx(exact)
    assert r.test == "exact Wilcoxon signed-rank"


def test_wilcoxon_beyond_20_deltas_is_the_tie_corrected_normal_approximation():
    d = np.round(np.random.default_rng(3).normal(0.3, 1.0, 30), 1)  # rounded: ties
    for alternative in ("greater", "less", "two-sided"):
        r = WILCOXON.test(d, alternative)
        ref = sps.wilcoxon(d, alternative=alternative, method="approx", correction=False)
        assert r.p_value == pytest.approx(ref.pvalue)
        assert r.test == "Wilcoxon signed-rank, normal approximation with tie correction"


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
@pytest.mark.parametrize("n", [3, 6, 9])
def test_sign_flip_matches_scipy_exact_permutation(alternative, n):
    d = np.random.default_rng(n).normal(0.005, 0.01, size=n)
    r = SIGN_FLIP.test(d, alternative)
    ref = sps.permutation_test(
        (d,),
        np.mean,
        permutation_type="samples",
        alternative=alternative,
        n_resamples=np.inf,
    )
    assert r.p_value == pytest.approx(ref.pvalue)
    assert r.statistic == pytest.approx(d.mean())


def test_sign_flip_counts_tied_patterns():
    # |deltas| all equal: the patterns with two + and one - tie at mean 1/3, below observed 1.
    assert SIGN_FLIP.test([1.0, 1.0, -1.0]).p_value == 0.5  # 3 ties + the all-plus pattern


def test_sign_flip_refuses_more_than_20_seeds():
    with pytest.raises(ValueError, match="n=21"):
        SIGN_FLIP.test(np.ones(21))
    assert SIGN_FLIP.seeds_problem(21) == (
        "sign_flip takes at most 20 seeds (it enumerates 2**n sign patterns), got 21"
    )


def test_min_p_value_three_seeds():
    assert SIGN_FLIP.min_p_value(3, "greater") == 0.125
    assert WILCOXON.min_p_value(3, "greater") == 0.125
    assert WILCOXON.min_p_value(3, "two-sided") == 0.25
    assert PAIRED_T.min_p_value(3, "greater") == 0.0
    with pytest.raises(ValueError, match="alternative must be one of"):
        SIGN_FLIP.min_p_value(3, "more")


def test_three_positive_seeds_reach_exactly_the_floor():
    r = SIGN_FLIP.test([0.001, 0.5, 3.0])
    assert r.p_value == 0.125 == r.min_p_value
    assert WILCOXON.test([0.001, 0.5, 3.0]).p_value == 0.125


def test_result_as_dict_states_test_sidedness_pairing():
    d = SIGN_FLIP.test(DELTAS, "two-sided").as_dict()
    assert d["test"] == "exact sign-flip permutation"
    assert d["alternative"] == "two-sided"
    assert "paired by seed" in d["pairing"]


def test_a_statistic_registers_once_under_a_title():
    with pytest.raises(ValueError, match="registered twice"):
        stats.register_statistic("paired_t")(type("T", (stats.PairedT,), {}))
    with pytest.raises(TypeError, match="is not a PairedStatistic"):
        stats.register_statistic("x")(type("T", (), {}))


def _one_per_cluster_data(n=60):
    return np.random.default_rng(1).gamma(2.0, 0.01, size=n) - 0.01


@pytest.mark.parametrize(("ours", "theirs"), [("percentile", "percentile"), ("bca", "BCa")])
def test_one_sample_per_cluster_agrees_with_scipy_bootstrap(ours, theirs):
    x = _one_per_cluster_data()
    r = stats.cluster_bootstrap(x, np.arange(len(x)), n_resamples=20_000, method=ours)
    ref = sps.bootstrap(
        (x,), np.mean, n_resamples=20_000, method=theirs, vectorized=True, rng=0
    ).confidence_interval
    width = ref.high - ref.low
    assert r["estimate"] == pytest.approx(x.mean())
    assert r["low"] == pytest.approx(ref.low, abs=0.05 * width)
    assert r["high"] == pytest.approx(ref.high, abs=0.05 * width)
    assert r["method"] == ours and r["n_clusters"] == len(x)


def _clustered(rng, n_clusters=40, size=8, true_delta=0.02, n_seeds=1):
    """Deltas whose samples share a strong per-cluster effect (intra-cluster correlation ~0.9)."""
    effect = rng.normal(0, 0.03, size=n_clusters)
    clusters = np.repeat(np.arange(n_clusters), size)
    noise = rng.normal(0, 0.01, size=(n_seeds, n_clusters * size))
    return true_delta + effect[clusters] + noise, clusters


def test_cluster_resampling_is_wider_than_sample_resampling():
    deltas, clusters = _clustered(np.random.default_rng(2), n_seeds=3)
    by_cluster = stats.cluster_bootstrap(deltas, clusters, n_resamples=4000)
    by_sample = stats.cluster_bootstrap(deltas, np.arange(deltas.shape[1]), n_resamples=4000)
    assert by_cluster["estimate"] == pytest.approx(by_sample["estimate"])
    wide = by_cluster["high"] - by_cluster["low"]
    narrow = by_sample["high"] - by_sample["low"]
    assert wide > 2 * narrow
    assert by_cluster["resampled"].startswith("clusters (40 clusters of 8-8 samples")


def test_two_dim_deltas_average_over_seeds_with_one_cluster_draw():
    deltas, clusters = _clustered(np.random.default_rng(3), n_seeds=4)
    joint = stats.cluster_bootstrap(deltas, clusters, n_resamples=500, seed=7)
    pooled = stats.cluster_bootstrap(deltas.mean(axis=0), clusters, n_resamples=500, seed=7)
    assert joint["low"] == pytest.approx(pooled["low"])
    assert joint["high"] == pytest.approx(pooled["high"])
    assert "all 4 seed(s)" in joint["resampled"]


def test_unequal_cluster_sizes_weight_by_samples():
    deltas = np.array([1.0, 1.0, 1.0, 4.0])
    r = stats.cluster_bootstrap(deltas, np.array([0, 0, 0, 1]), n_resamples=200)
    assert r["estimate"] == pytest.approx(1.75)


def test_chunks_give_the_same_answer(monkeypatch):
    deltas, clusters = _clustered(np.random.default_rng(4))
    whole = stats.cluster_bootstrap(deltas, clusters, n_resamples=300, seed=1)
    monkeypatch.setattr(stats, "BOOTSTRAP_CHUNK_CELLS", 40 * 7)  # 7 resamples per chunk
    chunked = stats.cluster_bootstrap(deltas, clusters, n_resamples=300, seed=1)
    assert chunked == whole  # chunks draw the same random stream


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_coverage_on_clustered_data_with_known_delta(method):
    """40 clusters: about 0.94 expected (2,000 reps gave 0.937), a little under 0.95."""
    rng = np.random.default_rng(5)
    true_delta = 0.02
    covered = []
    for rep in range(400):
        deltas, clusters = _clustered(rng, true_delta=true_delta, n_seeds=2)
        r = stats.cluster_bootstrap(deltas, clusters, n_resamples=2000, seed=rep, method=method)
        covered.append(r["low"] <= true_delta <= r["high"])
    assert 0.90 <= np.mean(covered) <= 0.99


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_constant_deltas_give_a_point_interval(method):
    r = stats.cluster_bootstrap(np.full(6, 0.25), np.arange(6) // 2, n_resamples=100, method=method)
    assert r["low"] == r["high"] == r["estimate"] == 0.25


def test_cluster_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2 clusters"):
        stats.cluster_bootstrap(np.ones(5), np.zeros(5))
    with pytest.raises(ValueError, match="clusters"):
        stats.cluster_bootstrap(np.ones((2, 5)), np.arange(4))
    with pytest.raises(ValueError, match="method"):
        stats.cluster_bootstrap(np.ones(5), np.arange(5), method="basic")


def test_seeds_needed_grows_as_delta_shrinks():
    n = [stats.seeds_needed(0.01, d) for d in (0.02, 0.01, 0.005, 0.0025)]
    assert n == sorted(n) and n[0] < n[-1]
    assert stats.seeds_needed(0.01, 0.001) > 500


@pytest.mark.parametrize("alternative", ["greater", "two-sided"])
def test_seeds_needed_matches_simulated_power(alternative):
    sd, delta, target = 0.01, 0.008, 0.8
    n = stats.seeds_needed(sd, delta, power=target, alternative=alternative)
    assert stats.t_test_power(n - 1, delta / sd, alternative=alternative) < target
    reps = 40_000
    d = np.random.default_rng(6).normal(delta, sd, size=(reps, n))
    p = sps.ttest_1samp(d, 0.0, axis=1, alternative=alternative).pvalue
    simulated = np.mean(p < 0.05)
    analytic = float(stats.t_test_power(n, delta / sd, alternative=alternative))
    assert simulated == pytest.approx(analytic, abs=4 * np.sqrt(target * (1 - target) / reps))
    assert analytic >= target


def test_seeds_needed_is_at_least_two_and_checks_sign():
    assert stats.seeds_needed(0.01, 1.0) == 2
    assert stats.seeds_needed(0.01, -0.01, alternative="less") == stats.seeds_needed(0.01, 0.01)
    with pytest.raises(ValueError, match="cannot be detected"):
        stats.seeds_needed(0.01, -0.01)


def _loop_group_bootstrap(deltas, groups, clusters, resample_seeds, n_resamples, rng):
    """Reference: one resample at a time, groups, then clips within them, then seed rows."""
    names = np.unique(groups)
    clips_of = {g: np.unique(clusters[groups == g]) for g in names}
    samples_of = {c: np.flatnonzero(clusters == c) for c in np.unique(clusters)}
    out = []
    for _ in range(n_resamples):
        rows = rng.integers(0, len(deltas), len(deltas)) if resample_seeds else range(len(deltas))
        picked = []
        for g in rng.choice(names, size=len(names)):
            for c in rng.choice(clips_of[g], size=len(clips_of[g])):
                picked.extend(samples_of[c])
        out.append(np.mean([deltas[r, picked].mean() for r in rows]))
    return np.array(out)


def _grouped(rng, n_groups=8, clips=3, size=10, n_seeds=5, true_delta=0.02, seed_sd=0.0):
    """Deltas with a group (model-by-group) effect, a clip effect, seed effects and noise."""
    groups = np.repeat(np.arange(n_groups), clips * size)
    clusters = np.repeat(np.arange(n_groups * clips), size)
    effect = rng.normal(0, 0.05, n_groups)[groups] + rng.normal(0, 0.02, n_groups * clips)[clusters]
    seeds = rng.normal(0, seed_sd, size=(n_seeds, 1))
    noise = rng.normal(0, 0.1, size=(n_seeds, len(groups)))
    return true_delta + effect + seeds + noise, groups, clusters, true_delta + seeds.mean()


@pytest.mark.parametrize("resample_seeds", [False, True])
def test_group_bootstrap_matches_a_loop_reference(resample_seeds):
    rng = np.random.default_rng(11)
    groups = np.repeat(["a", "b", "c", "d"], [6, 9, 4, 8])  # unequal groups
    clusters = np.array([f"{g}{i // 2}" for i, g in enumerate(groups)])  # clips of 1-2 samples
    deltas = rng.normal(0, 0.1, size=(3, len(groups))) + rng.normal(0, 0.1, size=(3, 1))
    reference = _loop_group_bootstrap(deltas, groups, clusters, resample_seeds, 4000, rng)
    d, g, c = stats._group_inputs(deltas, groups, clusters)
    clip, per_group, starts = stats._clip_layout(g, c)
    sums = np.stack([np.bincount(clip, weights=row) for row in d])
    sizes = np.bincount(clip).astype(float)
    ours = stats._group_resampled_means(
        sums, sizes, (per_group, starts), resample_seeds, 20_000, np.random.default_rng(0)
    )
    sd = reference.std()
    assert ours.std() == pytest.approx(sd, rel=0.06)
    for q in (0.05, 0.5, 0.95):
        assert np.quantile(ours, q) == pytest.approx(np.quantile(reference, q), abs=0.1 * sd)
    r = stats.group_bootstrap(deltas, groups, clusters, resample_seeds, n_resamples=20_000)
    levels = stats.expanded_levels(4, 0.95)
    assert r["low"] == pytest.approx(np.quantile(ours, levels[0]), abs=0.2 * sd)
    assert r["estimate"] == pytest.approx(deltas.mean())


def test_one_clip_per_group_is_a_cluster_bootstrap_of_groups():
    deltas, groups, _, _ = _grouped(np.random.default_rng(12), n_groups=12)
    ours = stats.group_bootstrap(deltas, groups, groups, n_resamples=20_000)
    theirs = stats.cluster_bootstrap(deltas, groups, n_resamples=20_000)
    assert ours["n_clusters"] == ours["n_groups"] == 12
    assert ours["estimate"] == pytest.approx(theirs["estimate"])
    width = theirs["high"] - theirs["low"]
    expanded = stats.expanded_levels(12, 0.95)
    plain = stats._resampled_means(*stats._cluster_totals(deltas, groups)[:2], 20_000,
                                   np.random.default_rng(1))  # fmt: skip
    assert ours["low"] == pytest.approx(np.quantile(plain, expanded[0]), abs=0.05 * width)
    assert ours["high"] == pytest.approx(np.quantile(plain, expanded[1]), abs=0.05 * width)


def test_group_bootstrap_reports_what_it_resampled_and_claims():
    deltas, groups, clusters, _ = _grouped(np.random.default_rng(13))
    fixed = stats.group_bootstrap(deltas, groups, clusters, n_resamples=500)
    assert (fixed["n_groups"], fixed["n_clusters"], fixed["n_seeds"]) == (8, 24, 5)
    assert fixed["claim"] == "these 5 trained models on new groups"
    assert fixed["resampled"].startswith("groups (8 groups of 3-3 clips, with replacement)")
    assert "seed(s), which stay fixed" in fixed["resampled"]
    assert fixed["method"] == "expanded percentile over 8 groups"
    assert {"estimate", "low", "high", "confidence", "n_resamples"} <= set(fixed)
    both = stats.group_bootstrap(deltas, groups, clusters, resample_seeds=True, n_resamples=500)
    assert both["claim"] == "this training procedure on new groups"
    assert "two-way over seeds and groups" in both["resampled"]
    one = stats.group_bootstrap(deltas[:1], groups, clusters, n_resamples=100)
    assert one["claim"] == "this 1 trained model on new groups"


def test_resampling_seeds_widens_the_interval_when_seeds_differ():
    rng = np.random.default_rng(14)
    deltas, groups, clusters, _ = _grouped(rng, seed_sd=0.1)
    fixed = stats.group_bootstrap(deltas, groups, clusters, n_resamples=4000)
    both = stats.group_bootstrap(deltas, groups, clusters, resample_seeds=True, n_resamples=4000)
    assert both["high"] - both["low"] > 1.2 * (fixed["high"] - fixed["low"])


def test_group_bootstrap_constant_deltas_give_a_point_interval():
    r = stats.group_bootstrap(np.full((2, 6), 0.25), np.arange(6) // 2, n_resamples=100)
    assert r["low"] == r["high"] == r["estimate"] == 0.25


def test_group_coverage_near_nominal_where_clip_resampling_fails():
    """8 groups with a model-by-group effect: clips alone cover far below 0.95, groups near it.

    Seeds fixed, so the target is the delta of these trained models on new groups.
    """
    rng = np.random.default_rng(15)
    by_group, by_clip = [], []
    for rep in range(300):
        deltas, groups, clusters, truth = _grouped(rng, seed_sd=0.03)
        r = stats.group_bootstrap(deltas, groups, clusters, n_resamples=2000, seed=rep)
        c = stats.cluster_bootstrap(deltas, clusters, n_resamples=2000, seed=rep)
        by_group.append(r["low"] <= truth <= r["high"])
        by_clip.append(c["low"] <= truth <= c["high"])
    assert 0.90 <= np.mean(by_group) <= 0.99, f"group bootstrap coverage {np.mean(by_group)}"
    assert np.mean(by_clip) <= 0.8, f"clip bootstrap coverage {np.mean(by_clip)}"
    assert np.mean(by_group) - np.mean(by_clip) >= 0.15


def test_two_way_covers_the_training_procedure():
    """Seeds random too: the two-way interval covers the procedure's delta at least nominally."""
    rng = np.random.default_rng(16)
    covered = []
    for rep in range(200):
        deltas, groups, clusters, _ = _grouped(rng, seed_sd=0.03)
        r = stats.group_bootstrap(deltas, groups, clusters, True, n_resamples=2000, seed=rep)
        covered.append(r["low"] <= 0.02 <= r["high"])
    assert np.mean(covered) >= 0.92


def test_expanded_levels_widen_for_few_groups():
    few, many = stats.expanded_levels(4, 0.95), stats.expanded_levels(1000, 0.95)
    assert few[0] < many[0] and many[0] == pytest.approx(0.025, abs=1e-3)
    assert few[0] + few[1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 2 units"):
        stats.expanded_levels(1, 0.95)


@pytest.mark.parametrize(
    ("deltas", "groups", "kwargs", "message"),
    [
        (np.ones((2, 4)), np.zeros(4), {}, "at least 2 groups"),
        (np.ones((2, 4)), np.arange(3), {}, "groups and clusters"),
        (np.ones((2, 4)), np.arange(4), {"clusters": np.arange(3)}, "groups and clusters"),
        (np.ones((2, 2, 4)), np.arange(4), {}, "n_seeds, n_samples"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), np.arange(2), {}, "NaN or inf"),
        (np.array([[1.0, np.inf]]), np.arange(2), {}, "NaN or inf"),
        (np.ones((2, 0)), np.arange(0), {}, "no samples"),
        (np.ones((1, 4)), np.arange(4), {"resample_seeds": True}, "at least 2 seeds"),
        (np.ones((2, 4)), np.arange(4), {"confidence": 1.0}, "confidence"),
        (np.ones((2, 4)), np.arange(4), {"n_resamples": 0}, "n_resamples"),
        (
            np.ones((2, 4)),
            np.array([0, 0, 1, 1]),
            {"clusters": np.array(["x", "y", "y", "z"])},
            "clip 'y' has samples in more than one group",
        ),
    ],
)
def test_group_bootstrap_rejects_bad_input(deltas, groups, kwargs, message):
    with pytest.raises(ValueError, match=message):
        stats.group_bootstrap(deltas, groups, **kwargs)
