"""The contract every registered gate statistic keeps: its result states the test, the sidedness
and the pairing; its p-value matches scipy or an exact enumeration of the sign patterns, ties
and zero deltas included; the smallest p-value it declares is the one its most extreme pattern
reaches; it refuses exactly the seed counts it says it cannot run on."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from avgate import stats

NAMES = list(stats.STATISTICS)
ALTERNATIVES = stats.ALTERNATIVES


def enumerated(values: np.ndarray, alternative: str) -> float:
    """Share of all 2**n sign patterns of `values` whose sum is as extreme as the observed one."""
    sums = np.array([np.dot(s, values) for s in itertools.product([1, -1], repeat=len(values))])
    observed = values.sum()
    if alternative == "greater":
        return float(np.mean(sums >= observed - 1e-12))
    if alternative == "less":
        return float(np.mean(sums <= observed + 1e-12))
    return float(np.mean(np.abs(sums) >= abs(observed) - 1e-12))


def signed_midranks(deltas: np.ndarray) -> np.ndarray:
    kept = deltas[deltas != 0]
    return np.sign(kept) * sps.rankdata(np.abs(kept))


# name -> reference p-value of (deltas, alternative): scipy, or the exact enumeration by hand
REFERENCES = {
    "paired_t": lambda d, alt: sps.ttest_1samp(d, 0.0, alternative=alt).pvalue,
    "wilcoxon": lambda d, alt: (
        enumerated(signed_midranks(d), alt)
        if np.count_nonzero(d) <= stats.MAX_ENUMERATED
        else sps.wilcoxon(d, alternative=alt, method="approx", correction=False).pvalue
    ),
    "sign_flip": lambda d, alt: enumerated(d, alt),
}

CASES = {
    "distinct": np.array([0.012, -0.004, 0.020, 0.009, 0.015, -0.001, 0.007]),
    "ties": np.array([0.01, 0.01, 0.01, 0.01, -0.01]),
    "ties and a zero": np.array([0.02, 0.02, -0.01, 0.0, 0.03, -0.02, 0.01]),
    "all alike": np.array([0.01, 0.01, 0.01]),
    "mixed signs": np.array([0.3, -0.2, 0.1, -0.4, 0.25, 0.05, -0.15, 0.35, 0.2, -0.05, 0.1]),
}


def runnable(name: str, n: int) -> bool:
    return not stats.STATISTICS[name].seeds_problem(n)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_states_its_test_sidedness_and_pairing(name, alternative):
    statistic = stats.STATISTICS[name]
    result = statistic.test(CASES["distinct"], alternative)
    assert statistic.name == name and statistic.title
    assert result.test.endswith(statistic.title) or "approximation" in result.test
    assert (result.alternative, result.pairing) == (alternative, stats.SEED_PAIRING)
    assert result.min_p_value <= result.p_value <= 1.0
    assert set(result.as_dict()) >= {"test", "alternative", "pairing", "n", "p_value"}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize("case", list(CASES))
def test_matches_scipy_or_the_exact_enumeration(name, alternative, case):
    deltas = CASES[case]
    if not runnable(name, len(deltas)) or (name == "paired_t" and np.ptp(deltas) == 0):
        pytest.skip("not a case this test runs on (a t-test needs some spread)")
    got = stats.STATISTICS[name].test(deltas, alternative).p_value
    assert got == pytest.approx(REFERENCES[name](deltas, alternative), rel=1e-9)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 12, 20])
def test_wilcoxon_without_ties_matches_scipy_exact(alternative, n):
    deltas = np.random.default_rng(n).normal(0.2, 1.0, n)
    got = stats.STATISTICS["wilcoxon"].test(deltas, alternative)
    ref = sps.wilcoxon(deltas, alternative=alternative, method="exact")
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert got.statistic == ref.statistic


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize("n", [1, 2, 3, 4, 6, 10, 20, 21, 25])
def test_the_declared_smallest_p_is_what_the_most_extreme_pattern_reaches(name, alternative, n):
    if not runnable(name, n):
        pytest.skip(f"{name} does not run on {n} seeds")
    statistic = stats.STATISTICS[name]
    floor = statistic.min_p_value(n, alternative)
    sign = -1.0 if alternative == "less" else 1.0
    deltas = sign * (1.0 + 1e-6 * np.arange(n))  # every seed alike in sign, distinct in size
    p = statistic.test(deltas, alternative).p_value
    if floor > 0:
        assert p == pytest.approx(floor, rel=1e-9)  # reached exactly: the floor is real
    else:
        assert p < 1e-3  # not bounded: an extreme pattern goes as low as it likes


@pytest.mark.parametrize("name", NAMES)
def test_refuses_exactly_the_seed_counts_it_declares(name):
    statistic = stats.STATISTICS[name]
    for n in range(1, 24):
        deltas = np.linspace(0.01, 0.03, n)
        if statistic.seeds_problem(n):
            with pytest.raises(ValueError):
                statistic.test(deltas)
        else:
            statistic.test(deltas)


def test_every_registered_statistic_has_a_reference():
    """A new statistic gets its scipy call or enumeration here: the test above checks it."""
    assert set(REFERENCES) == set(NAMES)
