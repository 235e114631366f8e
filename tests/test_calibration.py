"""Calibration metrics against hand-computed cases and scikit-learn, temperature recovery,
degenerate inputs, and random logits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import softmax as scipy_softmax
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss

from avgate.calibration import (
    adaptive_ece,
    brier,
    calibration_report,
    classwise_ece,
    ece,
    fit_temperature,
    nll,
    reliability,
    reliability_bins,
    softmax,
)

ECE_VARIANTS = (ece, adaptive_ece, classwise_ece)


def random_probs(rng: np.random.Generator, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Dirichlet probabilities and uniform labels."""
    return rng.dirichlet(np.ones(k), size=n), rng.integers(0, k, size=n)


def sample_labels(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One label per row drawn from that row's class probabilities."""
    cumulative = probs.cumsum(axis=1)
    drawn = (rng.random(len(probs))[:, None] > cumulative).sum(axis=1)
    return np.minimum(drawn, probs.shape[1] - 1)


def non_empty(bins: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy, confidence) of the non-empty bins: calibration_curve's (prob_true, prob_pred)."""
    kept = [b for b in bins if b["count"]]
    return np.array([b["accuracy"] for b in kept]), np.array([b["confidence"] for b in kept])


def test_softmax_is_stable_float64_and_matches_scipy():
    logits = np.array([[1000.0, 999.0, -1000.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    probs = softmax(logits)
    assert probs.dtype == np.float64
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(probs, scipy_softmax(logits.astype(np.float64), axis=1))
    np.testing.assert_allclose(softmax(logits, 2.0), softmax(logits / 2.0))


def test_ece_hand_computed():
    probs = np.array(
        [
            [0.95, 0.03, 0.02],  # right, bin (0.8, 1.0]
            [0.92, 0.04, 0.04],  # wrong, bin (0.8, 1.0]
            [0.55, 0.45, 0.00],  # right, bin (0.4, 0.6]
            [0.30, 0.50, 0.20],  # wrong, bin (0.4, 0.6]
        ]
    )
    y = np.array([0, 1, 0, 2])
    # (0.8, 1]: |0.5 - 0.935| x 2 rows; (0.4, 0.6]: |0.5 - 0.525| x 2 rows; over 4 rows
    assert ece(probs, y, n_bins=5) == pytest.approx((0.435 * 2 + 0.025 * 2) / 4)
    bins = reliability(probs, y, n_bins=5)
    assert [b["count"] for b in bins] == [0, 0, 2, 0, 2]
    assert bins[4]["confidence"] == pytest.approx(0.935)
    assert bins[4]["accuracy"] == 0.5
    assert bins[0]["confidence"] is None and bins[0]["accuracy"] is None


def test_adaptive_ece_hand_computed():
    # confidences sorted: 0.5 (right), 0.6 (wrong), 0.7 (right) | 0.8 (right), 0.9 (wrong)
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    probs = np.stack([p, 1 - p], axis=1)
    y = np.array([1, 0, 0, 1, 0])
    first = 3 * abs(2 / 3 - 0.6)
    second = 2 * abs(0.5 - 0.85)
    assert adaptive_ece(probs, y, n_bins=2) == pytest.approx((first + second) / 5)


def test_bins_are_right_inclusive_with_zero_first_and_one_last():
    bins = reliability_bins(np.array([0.0, 0.5, 0.5000001, 1.0]), np.array([1, 1, 0, 0]), n_bins=2)
    assert [b["count"] for b in bins] == [2, 2]
    assert (bins[0]["bin_lower"], bins[0]["bin_upper"], bins[1]["bin_upper"]) == (0.0, 0.5, 1.0)


def test_reliability_matches_sklearn_calibration_curve():
    rng = np.random.default_rng(0)
    p1 = np.concatenate([rng.random(400), np.linspace(0.0, 1.0, 16)])  # bin edges included
    y = (rng.random(len(p1)) < p1).astype(int)
    probs = np.stack([1 - p1, p1], axis=1)

    prob_true, prob_pred = calibration_curve(y, p1, n_bins=15, strategy="uniform")
    accuracy, confidence = non_empty(reliability_bins(p1, y == 1, n_bins=15))
    np.testing.assert_allclose(accuracy, prob_true)
    np.testing.assert_allclose(confidence, prob_pred)

    top = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(int)
    prob_true, prob_pred = calibration_curve(correct, top, n_bins=15, strategy="uniform")
    bins = reliability(probs, y)
    accuracy, confidence = non_empty(bins)
    np.testing.assert_allclose(accuracy, prob_true)
    np.testing.assert_allclose(confidence, prob_pred)
    assert sum(b["count"] for b in bins) == len(y)


def test_binary_classwise_ece_is_positive_class_ece():
    rng = np.random.default_rng(1)
    p1 = rng.random(500)
    y = (rng.random(500) < p1**2).astype(int)
    prob_true, prob_pred = calibration_curve(y, p1, n_bins=10, strategy="uniform")
    counts = np.histogram(p1, bins=np.linspace(0, 1, 11))[0]
    expected = np.sum(counts[counts > 0] * np.abs(prob_true - prob_pred)) / len(y)
    assert classwise_ece(np.stack([1 - p1, p1], axis=1), y, n_bins=10) == pytest.approx(expected)


def test_nll_matches_sklearn_log_loss():
    rng = np.random.default_rng(2)
    probs, y = random_probs(rng, 300, 4)
    assert nll(probs, y) == pytest.approx(log_loss(y, probs, labels=range(4)))
    y_without_class_3 = y % 3
    assert nll(probs, y_without_class_3) == pytest.approx(
        log_loss(y_without_class_3, probs, labels=range(4))
    )


def test_brier_matches_sklearn():
    rng = np.random.default_rng(3)
    probs, y = random_probs(rng, 300, 2)
    assert brier(probs, y) == pytest.approx(2 * brier_score_loss(y, probs[:, 1]))
    probs, y = random_probs(rng, 300, 5)
    expected = brier_score_loss(y, probs, labels=range(5), scale_by_half=False)
    assert brier(probs, y) == pytest.approx(expected)


def test_probabilities_of_exactly_zero_and_one_stay_finite():
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    y = np.array([0, 0, 1])
    assert nll(probs, y) == pytest.approx(2 / 3 * -np.log(1e-12))
    assert brier(probs, y) == pytest.approx(4 / 3)
    for metric in ECE_VARIANTS:
        assert metric(probs, y) == pytest.approx(2 / 3)
    saturated = softmax(np.array([[800.0, -800.0]]))
    assert np.isfinite(nll(saturated, np.array([1])))


@pytest.fixture(scope="module")
def synthetic():
    """Logits z whose softmax is the true label distribution (T = 1 is calibrated)."""
    rng = np.random.default_rng(4)
    z = rng.normal(scale=2.0, size=(20_000, 5))
    return z, sample_labels(rng, softmax(z))


def test_fit_temperature_recovers_overconfidence(synthetic):
    z, y = synthetic
    assert fit_temperature(z, y) == pytest.approx(1.0, rel=0.1)
    t = fit_temperature(3 * z, y)
    assert t == pytest.approx(3.0, rel=0.1)
    assert ece(softmax(3 * z, t), y) < ece(softmax(3 * z), y)
    assert nll(softmax(3 * z, t), y) < nll(softmax(3 * z), y)


def test_fit_temperature_sharpens_underconfidence(synthetic):
    z, y = synthetic
    t = fit_temperature(z / 3, y)
    assert t < 1.0
    assert t == pytest.approx(1 / 3, rel=0.1)


def test_fit_temperature_is_the_grid_minimum_and_deterministic(synthetic):
    z, y = synthetic
    logits, labels = 3 * z[:2000], y[:2000]
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 2001))
    best = grid[np.argmin([nll(softmax(logits, t), labels) for t in grid])]
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(best, rel=0.01)
    assert fit_temperature(logits, labels) == t


def test_calibration_report_is_plain_json(synthetic):
    z, y = synthetic
    report = calibration_report(3 * z[:5000], y[:5000], 3 * z[5000:], y[5000:], n_bins=10)
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    assert set(report["before"]) == {"nll", "brier", "ece", "adaptive_ece", "classwise_ece"}
    assert report["after"]["ece"] < report["before"]["ece"]
    assert len(report["reliability_after"]) == report["n_bins"] == 10
    assert report["temperature"] == fit_temperature(3 * z[:5000], y[:5000])


@pytest.mark.parametrize(
    ("logits", "y"),
    [
        (np.array([[2.0, 0.0, -1.0], [1.0, 0.5, 0.0], [0.0, 3.0, 0.0]]), np.array([0, 1, 1])),
        (np.array([[5.0, 0.0, 0.0], [4.0, 1.0, 0.0], [3.0, 0.0, 2.0]]), np.array([0, 1, 2])),
        (np.array([[1.0, -1.0, 0.5]]), np.array([0])),
        (np.array([[1.0, -1.0, 0.5]]), np.array([2])),
    ],
    ids=["class-absent-from-y", "all-predict-one-class", "single-row-right", "single-row-wrong"],
)
def test_degenerate_inputs_give_finite_results(logits, y):
    report = calibration_report(logits, y, logits, y)
    json.dumps(report, allow_nan=False)
    assert 0.05 <= report["temperature"] <= 20.0


def test_bad_inputs_are_refused():
    probs = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="labels"):
        nll(probs, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="expected"):
        ece(probs, np.array([0, 1]))
    with pytest.raises(ValueError, match="temperature"):
        softmax(probs, 0.0)


@st.composite
def logits_and_labels(draw):
    n = draw(st.integers(1, 40))
    k = draw(st.integers(2, 6))
    logits = draw(arrays(np.float64, (n, k), elements=st.floats(-50, 50)))
    y = draw(arrays(np.int64, n, elements=st.integers(0, k - 1)))
    return logits, y


@settings(max_examples=60, deadline=None)
@given(logits_and_labels(), st.integers(1, 20))
def test_random_logits_give_bounded_finite_metrics(data, n_bins):
    logits, y = data
    t = fit_temperature(logits, y)
    assert 0.05 <= t <= 20.0
    for probs in (softmax(logits), softmax(logits, t)):
        assert 0.0 <= nll(probs, y) <= -np.log(1e-12) + 1e-9
        assert 0.0 <= brier(probs, y) <= 2.0 + 1e-12
        for metric in ECE_VARIANTS:
            assert 0.0 <= metric(probs, y, n_bins) <= 1.0
        assert sum(b["count"] for b in reliability(probs, y, n_bins)) == len(y)
