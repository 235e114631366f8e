"""Tests of avgate.stats against scipy, hand-computed cases and simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from avgate import stats

DELTAS = np.array([0.012, -0.004, 0.020, 0.009, 0.015, -0.001, 0.007])


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_paired_t_matches_scipy(alternative):
    r = stats.paired_t(DELTAS, alternative)
    ref = sps.ttest_1samp(DELTAS, 0.0, alternative=alternative)
    assert (r.test, r.alternative, r.n) == ("paired t-test", alternative, len(DELTAS))
    assert r.statistic == pytest.approx(ref.statistic)
    assert r.p_value == pytest.approx(ref.pvalue)
    assert r.min_p_value == 0.0


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_wilcoxon_exact_matches_scipy(alternative):
    r = stats.wilcoxon_exact(DELTAS, alternative)
    ref = sps.wilcoxon(DELTAS, alternative=alternative, method="exact")
    assert r.p_value == pytest.approx(ref.pvalue)
    assert r.statistic == pytest.approx(ref.statistic)
    assert r.note == ""


def test_wilcoxon_drops_zero_deltas_and_says_so():
    r = stats.wilcoxon_exact([0.0, 0.01, 0.02, 0.03, 0.0])
    assert r.n == 3
    assert r.p_value == 0.125
    assert "2 zero delta(s) dropped" in r.note


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
@pytest.mark.parametrize("n", [3, 6, 9])
def test_sign_flip_matches_scipy_exact_permutation(alternative, n):
    d = np.random.default_rng(n).normal(0.005, 0.01, size=n)
    r = stats.sign_flip(d, alternative)
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
    assert stats.sign_flip([1.0, 1.0, -1.0]).p_value == 0.5  # 3 ties + the all-plus pattern


def test_sign_flip_refuses_more_than_20_seeds():
    with pytest.raises(ValueError, match="n=21"):
        stats.sign_flip(np.ones(21))


def test_min_p_value_three_seeds():
    assert stats.min_p_value("exact sign-flip permutation", 3, "greater") == 0.125
    assert stats.min_p_value("exact Wilcoxon signed-rank", 3, "greater") == 0.125
    assert stats.min_p_value("exact Wilcoxon signed-rank", 3, "two-sided") == 0.25
    assert stats.min_p_value("paired t-test", 3, "greater") == 0.0
    with pytest.raises(ValueError, match="unknown test"):
        stats.min_p_value("z-test", 3, "greater")


def test_three_positive_seeds_reach_exactly_the_floor():
    r = stats.sign_flip([0.001, 0.5, 3.0])
    assert r.p_value == 0.125 == r.min_p_value
    assert stats.wilcoxon_exact([0.001, 0.5, 3.0]).p_value == 0.125


def test_result_as_dict_states_test_sidedness_pairing():
    d = stats.sign_flip(DELTAS, "two-sided").as_dict()
    assert d["test"] == "exact sign-flip permutation"
    assert d["alternative"] == "two-sided"
    assert "paired by seed" in d["pairing"]


def test_mcnemar_hand_computed():
    # b = 7 (A right, B wrong), c = 1 (A wrong, B right), 12 concordant samples.
    a = np.array([1] * 7 + [0] + [1] * 6 + [0] * 6, dtype=bool)
    b = np.array([0] * 7 + [1] + [1] * 6 + [0] * 6, dtype=bool)
    r = stats.mcnemar_exact(a, b)
    exact = 2 * (1 + 8) / 2**8  # 2 * P(X <= 1), X ~ Binomial(8, 1/2)
    assert (r["b"], r["c"], r["n"]) == (7, 1, 20)
    assert r["p_value"] == pytest.approx(exact)
    mid = stats.mcnemar_exact(a, b, mid_p=True)
    assert mid["p_value"] == pytest.approx(exact - 8 / 2**8)
    assert mid["p_value"] < r["p_value"]
    assert mid["test"] == "exact McNemar (mid-p)" and mid["alternative"] == "two-sided"


def test_mcnemar_no_discordant_pairs_and_no_pooling():
    same = np.array([1, 0, 1], dtype=bool)
    assert stats.mcnemar_exact(same, same)["p_value"] == 1.0
    with pytest.raises(ValueError, match="one seed"):
        stats.mcnemar_exact(np.ones((3, 4)), np.ones((3, 4)))


def test_holm_hand_example():
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])


def test_holm_by_hand_monotone_and_capped():
    p = np.array([0.2, 0.001, 0.04, 0.5, 0.012])
    # sorted: 0.001*5, 0.012*4, 0.04*3, 0.2*2, 0.5*1 -> 0.005, 0.048, 0.12, 0.4, 0.5
    np.testing.assert_allclose(stats.holm(p), [0.4, 0.005, 0.12, 0.5, 0.048])
    adjusted = stats.holm([0.6, 0.7, 0.01])
    assert adjusted.max() == 1.0
    order = np.argsort(p)
    assert (np.diff(stats.holm(p)[order]) >= 0).all()


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
