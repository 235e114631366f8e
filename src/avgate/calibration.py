"""Calibration of class probabilities: temperature scaling, ECE variants, Brier, NLL, reliability.

Everything takes plain arrays: `logits` or `probs` of shape (n, k) and `y`, integer class
indices of shape (n,). Bins for the equal-width ECE variants and the reliability diagram are
right-inclusive, ``(lower, upper]``, with a confidence of exactly 0 in the first bin, as in
`sklearn.calibration.calibration_curve(strategy="uniform")`.

>>> logits = np.array([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, 4.0]])
>>> y = np.array([0, 1, 1, 0])
>>> t = fit_temperature(logits, y)
>>> t > 10  # half of the confident answers are wrong: flatten as far as the bounds allow
True
>>> round(ece(softmax(logits), y), 4)
0.482
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from scipy.special import softmax as _scipy_softmax

PROB_FLOOR = 1e-12
METHOD = "temperature scaling (one T, fitted on validation logits by bounded NLL minimisation)"
CROSS_FIT_METHOD = (
    "temperature scaling, 2-fold cross-fitted on validation: T fitted on one half of the clips, "
    "scored on the other half, and back"
)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of `logits / temperature` in float64 (row max subtracted first).

    >>> softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]])).round(3)
    array([[0.5 , 0.5 ],
           [0.25, 0.75]])
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    return _scipy_softmax(z, axis=-1)


def _mean_nll_of_logits(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    log_p = log_softmax(logits / temperature, axis=1)
    return float(-log_p[np.arange(len(y)), y].mean())


def fit_temperature(
    logits: np.ndarray, y: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)
) -> float:
    """The temperature T within `bounds` that minimises the mean NLL of softmax(logits / T).

    The search runs over log T with scipy's bounded scalar minimiser, so it is deterministic.
    T > 1 softens an overconfident model, T < 1 sharpens an underconfident one.

    >>> logits = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [2.0, 0.0]])
    >>> round(fit_temperature(logits, np.array([0, 1, 0, 1])), 2)
    1.82
    """
    logits, y = _check(logits, y)
    lo, hi = bounds
    if not 0 < lo < hi:
        raise ValueError(f"bounds must satisfy 0 < lo < hi, got {bounds}")
    result = minimize_scalar(
        lambda log_t: _mean_nll_of_logits(logits, y, np.exp(log_t)),
        bounds=(np.log(lo), np.log(hi)),
        method="bounded",
    )
    return float(np.clip(np.exp(result.x), lo, hi))


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class, probabilities clipped to [1e-12, 1].

    >>> round(nll(np.array([[0.5, 0.5], [0.0, 1.0]]), np.array([0, 0])), 3)
    14.162
    """
    probs, y = _check(probs, y)
    p_true = np.clip(probs[np.arange(len(y)), y], PROB_FLOOR, 1.0)
    return float(-np.log(p_true).mean())


def brier(probs: np.ndarray, y: np.ndarray) -> float:
    """Multiclass Brier score: mean over rows of sum_k (p_k - onehot_k)^2, in [0, 2].

    For two classes it is twice the usual binary Brier score of the positive class.

    >>> brier(np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([0, 1]))
    0.25
    """
    probs, y = _check(probs, y)
    onehot = np.eye(probs.shape[1])[y]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> list[dict]:
    """Equal-width bins on [0, 1] of any score against a 0/1 outcome: the reliability diagram.

    Each bin is ``(bin_lower, bin_upper]`` (0 falls in the first). `confidence` and `accuracy`
    are the means of the score and the outcome in the bin, None for an empty bin.

    >>> bins = reliability_bins(np.array([0.0, 0.3, 0.4, 1.0]), np.array([0, 1, 0, 1]), n_bins=2)
    >>> [(b["bin_upper"], round(b["confidence"], 3), b["accuracy"], b["count"]) for b in bins]
    [(0.5, 0.233, 0.3333333333333333, 3), (1.0, 1.0, 1.0, 1)]
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], confidence)  # the same binning as calibration_curve
    counts = np.bincount(ids, minlength=n_bins)
    conf_sums = np.bincount(ids, weights=confidence, minlength=n_bins)
    hit_sums = np.bincount(ids, weights=correct, minlength=n_bins)
    return [
        {
            "bin_lower": float(edges[b]),
            "bin_upper": float(edges[b + 1]),
            "confidence": float(conf_sums[b] / counts[b]) if counts[b] else None,
            "accuracy": float(hit_sums[b] / counts[b]) if counts[b] else None,
            "count": int(counts[b]),
        }
        for b in range(n_bins)
    ]


def reliability(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> list[dict]:
    """Top-label reliability diagram: per equal-width confidence bin, mean confidence,
    accuracy and count (see `reliability_bins`).

    >>> bins = reliability(np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6]]), np.array([0, 1, 1]))
    >>> [(round(b["confidence"], 2), b["accuracy"], b["count"]) for b in bins if b["count"]]
    [(0.6, 1.0, 1), (0.8, 0.0, 1), (0.9, 1.0, 1)]
    """
    probs, y = _check(probs, y)
    return reliability_bins(probs.max(axis=1), probs.argmax(axis=1) == y, n_bins)


def ece(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    """Top-label expected calibration error over equal-width confidence bins:
    sum over bins of (bin share of rows) x |accuracy - mean confidence|.

    >>> round(ece(np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6]]), np.array([0, 1, 1])), 4)
    0.4333
    """
    return _gap(reliability(probs, y, n_bins))


def adaptive_ece(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE over equal-mass bins: the rows sorted by confidence, split into `n_bins`
    near-equal runs with `np.array_split` (empty runs, when n < n_bins, are skipped).

    >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.3, 0.7]])
    >>> round(adaptive_ece(probs, np.array([0, 1, 1, 1]), n_bins=2), 4)
    0.35
    """
    probs, y = _check(probs, y)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    order = np.argsort(confidence, kind="stable")
    gap = sum(
        len(run) * abs(correct[run].mean() - confidence[run].mean())
        for run in np.array_split(order, n_bins)
        if len(run)
    )
    return float(gap / len(y))


def classwise_ece(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    """Mean over the k classes of the equal-width-bin ECE of p_k against the event y == k
    (Kull et al., 2019); a class absent from y still counts, against all-zero outcomes.

    >>> round(classwise_ece(np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6]]), np.array([0, 1, 1])), 4)
    0.4333
    """
    probs, y = _check(probs, y)
    gaps = [_gap(reliability_bins(probs[:, k], y == k, n_bins)) for k in range(probs.shape[1])]
    return float(np.mean(gaps))


def calibration_report(
    logits_val: np.ndarray,
    y_val: np.ndarray,
    logits_test: np.ndarray,
    y_test: np.ndarray,
    n_bins: int = 15,
) -> dict:
    """Temperature fitted on validation logits; test metrics and reliability before and after.

    Every value is a plain Python number, string, list or dict, ready for `json.dumps`.

    >>> logits = np.array([[3.0, 0.0], [0.0, 3.0], [3.0, 0.0], [0.0, 3.0]])
    >>> report = calibration_report(logits, np.array([0, 1, 1, 1]), logits, np.array([0, 0, 0, 1]))
    >>> round(report["temperature"], 2)  # 3 of 4 right at margin 3: sigmoid(3 / T) = 0.75
    2.73
    >>> round(report["before"]["ece"], 3), round(report["after"]["ece"], 3)
    (0.203, 0.0)
    """
    temperature = fit_temperature(logits_val, y_val)
    before = softmax(logits_test)
    after = softmax(logits_test, temperature)
    return {
        "temperature": temperature,
        "test": METHOD,
        "before": scores(before, y_test, n_bins),
        "after": scores(after, y_test, n_bins),
        "n_bins": n_bins,
        "reliability_before": reliability(before, y_test, n_bins),
        "reliability_after": reliability(after, y_test, n_bins),
    }


def two_folds(clusters: np.ndarray) -> np.ndarray:
    """Fold 0 or 1 of each row: whole clusters (clips) alternate in sorted order.

    >>> two_folds(np.array(["b", "a", "b", "c"])).tolist()
    [1, 0, 1, 0]
    """
    _, ids = np.unique(np.asarray(clusters), return_inverse=True)
    return ids % 2


MIN_CLIPS = 10  # clips in validation, below which no temperature is fitted
MIN_ERRORS = 5  # misclassified rows in each fitting half, below which none is either


def cross_fitted_report(
    logits: np.ndarray, y: np.ndarray, clusters: np.ndarray, n_bins: int = 15
) -> dict:
    """Temperature scaling judged on data it was not fitted on, all within one split.

    Each half of the clips (`two_folds`) is scored with the temperature fitted on the other
    half; `before` and `after` compare the same held-out rows. T = 1 is kept, and `reason` says
    why with the numbers, when scaling raises the held-out NLL, when validation is too small
    (fewer than MIN_CLIPS clips) or too easy (a half with fewer than MIN_ERRORS misclassified
    rows: the fit would only sharpen already-right predictions), or when a half holds a single
    class.

    >>> logits = np.array([[3.0, 0.0], [0.0, 3.0], [3.0, 0.0], [0.0, 3.0]] * 40)
    >>> y = np.array([0, 1, 1, 1] * 40)
    >>> report = cross_fitted_report(logits, y, np.arange(160) // 4)  # 40 clips of 4 rows
    >>> report["kept_temperature"] > 1, report["after"]["nll"] < report["before"]["nll"]
    (True, True)
    >>> cross_fitted_report(logits[:20], y[:20], np.arange(20) // 4)["reason"]
    'T = 1 kept: validation is too small to fit a temperature (5 clips, 10 needed)'
    """
    logits, y = _check(logits, y)
    folds = two_folds(clusters)
    before = softmax(logits)
    after = before.copy()
    temperatures = []
    n_clips = len(np.unique(clusters))
    if n_clips < MIN_CLIPS:
        why = f"validation is too small to fit a temperature ({n_clips} clips, {MIN_CLIPS} needed)"
        return _no_scaling(before, y, n_bins, why)
    for fold in (0, 1):
        fit, held = folds != fold, folds == fold
        if len(np.unique(y[fit])) < 2 or not held.any():
            return _no_scaling(before, y, n_bins, "a half of the clips holds a single class")
        errors = int((logits[fit].argmax(axis=1) != y[fit]).sum())
        if errors < MIN_ERRORS:
            why = (
                f"validation is too easy to fit a temperature: a half has {errors} misclassified "
                f"rows of {int(fit.sum())} ({MIN_ERRORS} needed)"
            )
            return _no_scaling(before, y, n_bins, why)
        temperatures.append(fit_temperature(logits[fit], y[fit]))
        after[held] = softmax(logits[held], temperatures[-1])
    report = {
        "method": CROSS_FIT_METHOD,
        "fold_temperatures": temperatures,
        "before": scores(before, y, n_bins),
        "after": scores(after, y, n_bins),
        "n_bins": n_bins,
        "reliability_before": reliability(before, y, n_bins),
        "reliability_after": reliability(after, y, n_bins),
    }
    if report["after"]["nll"] > report["before"]["nll"]:
        why = (
            f"scaling raised the held-out NLL from {report['before']['nll']:.4f} to "
            f"{report['after']['nll']:.4f} (fold temperatures "
            f"{', '.join(f'{t:.3g}' for t in temperatures)})"
        )
        return _no_scaling(before, y, n_bins, why) | {"fold_temperatures": temperatures}
    why = f"held-out NLL fell from {report['before']['nll']:.4f} to {report['after']['nll']:.4f}"
    if report["after"]["ece"] > report["before"]["ece"]:
        why += (
            f"; held-out ECE rose from {report['before']['ece']:.4f} to "
            f"{report['after']['ece']:.4f} ({len(y)} rows in {n_bins} equal-width bins: a noisy "
            "score; NLL, a proper scoring rule, decides)"
        )
    return report | {"kept_temperature": fit_temperature(logits, y), "reason": why}


def _no_scaling(before: np.ndarray, y: np.ndarray, n_bins: int, why: str) -> dict:
    """The report when T = 1 is kept: after equals before."""
    plain, bins = scores(before, y, n_bins), reliability(before, y, n_bins)
    return {
        "method": CROSS_FIT_METHOD,
        "fold_temperatures": [],
        "before": plain,
        "after": plain,
        "n_bins": n_bins,
        "reliability_before": bins,
        "reliability_after": bins,
        "kept_temperature": 1.0,
        "reason": f"T = 1 kept: {why}",
    }


def scores(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> dict[str, float]:
    """NLL, Brier and the three ECE variants of `probs` against `y`."""
    return {
        "nll": nll(probs, y),
        "brier": brier(probs, y),
        "ece": ece(probs, y, n_bins),
        "adaptive_ece": adaptive_ece(probs, y, n_bins),
        "classwise_ece": classwise_ece(probs, y, n_bins),
    }


def _gap(bins: list[dict]) -> float:
    """Count-weighted mean |accuracy - confidence| over the non-empty bins."""
    total = sum(b["count"] for b in bins)
    gap = sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"])
    return float(gap / total)


def _check(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`scores` as float64 (n, k) and `y` as int (n,) class indices, or a ValueError."""
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y)
    if scores.ndim != 2 or y.ndim != 1 or len(scores) != len(y) or len(y) == 0:
        raise ValueError(
            f"expected scores (n, k) and labels (n,) with n > 0, got {scores.shape} and {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= scores.shape[1]:
        raise ValueError(f"labels must be integer class indices in [0, {scores.shape[1]})")
    return scores, y.astype(np.intp)
