import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import norm
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_recall_fscore_support,
    recall_score,
    roc_auc_score,
)

from avgate import metrics
from avgate.declare import ConfigError
from avgate.layout.inputs import predicted_labels
from avgate.scoring import majority_class, predictions_table
from avgate.stages.train.summarize import spread

D_PRIME_BOUND = math.sqrt(2) * norm.ppf(1 - metrics.AUC_CLIP)


def one_hot(labels, classes) -> np.ndarray:
    """Probabilities that put all mass on the given labels."""
    return (np.asarray(labels)[:, None] == np.asarray(classes)[None, :]).astype(float)


def random_probs(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.dirichlet(np.ones(k), size=n)


def test_the_registry_is_the_list_of_names_per_kind():
    assert metrics.names("event") == (
        "segment_accuracy",
        "balanced_accuracy",
        "macro_f1",
        "macro_roc_auc",
        "map",
        "d_prime",
    )
    assert metrics.names("clip") == (
        "accuracy", "balanced_accuracy", "macro_f1", "macro_roc_auc", "map", "d_prime",
        "tail_recall", "tail_f1",
    )  # fmt: skip
    assert metrics.METRICS["segment_accuracy"].fn is metrics.METRICS["accuracy"].fn


def test_a_name_registers_once_and_declares_a_known_direction_and_input():
    with pytest.raises(ValueError, match="registered twice"):
        metrics.register("accuracy", metrics.MAXIMIZE, "labels", ("clip",))(lambda *a: 0.0)
    with pytest.raises(ValueError, match="direction must be one of"):
        metrics.register("x", "higher", "labels", ("clip",))
    with pytest.raises(ValueError, match="needs must be one of"):
        metrics.register("x", metrics.MAXIMIZE, "logits", ("clip",))
    with pytest.raises(ValueError, match="kinds must be a non-empty tuple"):
        metrics.register("x", metrics.MAXIMIZE, "labels", "clip")


def test_segment_accuracy_counts_background_seconds():
    y_true = ["bg", "bg", "bell", "bell", "bg"]
    y_pred = ["bg", "bell", "bell", "bg", "bg"]
    scores = metrics.score("event", y_true, one_hot(y_pred, ["bell", "bg"]), ["bell", "bg"])
    assert scores["segment_accuracy"] == pytest.approx(3 / 5)
    assert scores["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert list(scores) == list(metrics.names("event"))


def test_macro_f1_matches_sklearn_and_ignores_classes_absent_from_truth():
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c", "d"]
    y_true = rng.choice(["a", "b", "c"], 200)
    y_pred = rng.choice(classes, 200)
    expected = f1_score(y_true, y_pred, labels=["a", "b", "c"], average="macro")
    assert metrics.score("clip", y_true, one_hot(y_pred, classes), classes)["macro_f1"] == expected


def test_label_metrics_take_the_first_class_on_ties():
    probs = np.array([[0.5, 0.5], [0.5, 0.5]])
    assert metrics.score("clip", ["a", "b"], probs, ["a", "b"])["accuracy"] == 0.5
    assert metrics.score("clip", ["b", "b"], probs, ["b", "a"])["accuracy"] == 1.0


def test_primary_metric_must_exist_for_the_task_kind():
    metrics.check_primary("event", "segment_accuracy")
    metrics.check_primary("clip", "tail_f1")
    metrics.check_primary("event", "d_prime")
    with pytest.raises(ConfigError, match=r"one of \['accuracy', .*for task.kind 'clip'"):
        metrics.check_primary("clip", "segment_accuracy")
    with pytest.raises(ConfigError, match="evaluate.primary_metric must be one of .*'tail_recall'"):
        metrics.check_primary("event", "tail_recall")


def test_score_rejects_misshapen_or_non_finite_probabilities():
    with pytest.raises(ValueError, match=r"expected \(2, 2\)"):
        metrics.score("clip", ["a", "b"], np.ones((2, 3)) / 3, ["a", "b"])
    with pytest.raises(ValueError, match="NaN"):
        metrics.score("clip", ["a", "b"], np.array([[np.nan, 1.0], [0.5, 0.5]]), ["a", "b"])


def test_macro_roc_auc_and_map_match_sklearn_when_every_class_is_present():
    rng = np.random.default_rng(1)
    classes = ["a", "b", "c", "d"]
    y_true = rng.choice(classes, 300)
    probs = random_probs(rng, 300, 4)
    scores = metrics.score("clip", y_true, probs, classes)
    auc = roc_auc_score(y_true, probs, multi_class="ovr", average="macro", labels=classes)
    ap = average_precision_score(one_hot(y_true, classes), probs, average="macro")
    assert scores["macro_roc_auc"] == pytest.approx(auc)
    assert scores["map"] == pytest.approx(ap)
    assert scores["d_prime"] == pytest.approx(math.sqrt(2) * norm.ppf(auc))


def test_binary_macro_roc_auc_is_the_ordinary_auc():
    rng = np.random.default_rng(2)
    y_true = rng.choice(["neg", "pos"], 100, p=[0.8, 0.2])
    probs = random_probs(rng, 100, 2)
    scores = metrics.score("clip", y_true, probs, ["neg", "pos"])
    assert scores["macro_roc_auc"] == pytest.approx(roc_auc_score(y_true == "pos", probs[:, 1]))


def test_auc_and_map_skip_a_class_absent_from_the_split():
    rng = np.random.default_rng(3)
    classes = ["a", "b", "c"]
    y_true = rng.choice(["a", "b"], 50)
    probs = random_probs(rng, 50, 3)
    scores = metrics.score("clip", y_true, probs, classes)
    aucs = [roc_auc_score(y_true == c, probs[:, i]) for i, c in enumerate(classes[:2])]
    aps = [average_precision_score(y_true == c, probs[:, i]) for i, c in enumerate(classes[:2])]
    assert scores["macro_roc_auc"] == pytest.approx(np.mean(aucs))
    assert scores["map"] == pytest.approx(np.mean(aps))
    y_pred = np.asarray(classes)[probs.argmax(axis=1)]
    assert metrics.per_class(y_true, y_pred, classes)["c"]["recall"] is None


def test_a_single_class_in_the_split_has_no_auc_and_no_d_prime():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]])
    scores = metrics.score("event", ["a", "a", "a"], probs, ["a", "b"])
    assert scores["macro_roc_auc"] is None
    assert scores["d_prime"] is None
    assert scores["map"] == 1.0  # every row is a positive: precision is 1 at every threshold
    assert scores["segment_accuracy"] == pytest.approx(2 / 3)


def test_d_prime_stays_finite_for_a_perfect_or_inverted_ranking():
    y_true = ["a", "b", "b"]
    perfect = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    scores = metrics.score("clip", y_true, perfect, ["a", "b"])
    assert scores["macro_roc_auc"] == 1.0
    assert scores["d_prime"] == pytest.approx(D_PRIME_BOUND)
    inverted = metrics.score("clip", y_true, perfect[:, ::-1], ["a", "b"])
    assert inverted["macro_roc_auc"] == 0.0
    assert inverted["d_prime"] == pytest.approx(-D_PRIME_BOUND)
    chance = metrics.score("clip", y_true, np.full((3, 2), 0.5), ["a", "b"])
    assert chance["macro_roc_auc"] == 0.5
    assert chance["d_prime"] == 0.0


def test_probabilities_of_exactly_zero_and_one_give_no_nan():
    classes = ["a", "b", "c"]
    y_true = ["a", "a", "b", "c", "c"]
    probs = one_hot(["a", "b", "b", "c", "a"], classes)
    scores = metrics.score("clip", y_true, probs, classes)
    assert all(v is not None and math.isfinite(v) for k, v in scores.items() if "tail" not in k)
    # pairs (positive, negative) ranked right count 1, ties 1/2; columns are one-hot:
    # a: positives 1, 0 vs negatives 0, 0, 1 -> 3.5 / 6; b: 1 vs 0, 1, 0, 0 -> 3.5 / 4;
    # c: positives 1, 0 vs 0, 0, 0 -> 4.5 / 6
    assert scores["macro_roc_auc"] == pytest.approx((3.5 / 6 + 3.5 / 4 + 4.5 / 6) / 3)
    assert scores["accuracy"] == pytest.approx(3 / 5)


def test_all_predictions_in_one_class():
    classes = ["a", "b", "c"]
    y_true = ["a", "a", "b", "c"]
    probs = np.tile([0.6, 0.3, 0.1], (4, 1))
    scores = metrics.score("clip", y_true, probs, classes)
    assert scores["accuracy"] == 0.5
    assert scores["balanced_accuracy"] == pytest.approx(1 / 3)
    assert scores["macro_f1"] == pytest.approx((2 / 3) / 3)  # a: P 1/2, R 1 -> F1 2/3
    assert scores["macro_roc_auc"] == 0.5  # constant scores rank nothing
    assert scores["tail_recall"] is None and scores["tail_f1"] is None
    table = metrics.per_class(y_true, ["a"] * 4, classes)
    assert table["b"] == {"precision": None, "recall": 0.0, "f1": 0.0, "support": 1}
    assert table["a"]["precision"] == 0.5


def test_tail_metrics_on_an_imbalanced_binary_task_by_hand():
    y_true = ["neg"] * 8 + ["pos"] * 2
    y_pred = ["neg"] * 6 + ["pos"] * 2 + ["pos", "neg"]
    scores = metrics.score("clip", y_true, one_hot(y_pred, ["neg", "pos"]), ["neg", "pos"])
    # pos: TP 1, FP 2, FN 1 -> recall 1/2, precision 1/3, F1 2 * 1 / (2 * 1 + 2 + 1) = 2/5
    assert scores["tail_recall"] == pytest.approx(1 / 2)
    assert scores["tail_f1"] == pytest.approx(2 / 5)
    assert scores["tail_recall"] == pytest.approx(recall_score(y_true, y_pred, pos_label="pos"))
    assert scores["tail_f1"] == pytest.approx(f1_score(y_true, y_pred, pos_label="pos"))


def test_minority_class_is_the_rarer_one_and_ties_go_to_the_later_class():
    assert metrics.minority_class(np.array(["x", "y", "y"]), ["x", "y"]) == "x"
    assert metrics.minority_class(np.array(["x", "y"]), ["x", "y"]) == "y"
    assert metrics.minority_class(np.array(["x", "y"]), ["y", "x"]) == "x"


def test_tail_recall_is_none_when_the_minority_class_is_absent():
    scores = metrics.score("clip", ["x", "x"], one_hot(["x", "y"], ["x", "y"]), ["x", "y"])
    assert scores["tail_recall"] is None
    assert scores["tail_f1"] == 0.0  # predicted once, never true


def test_per_class_matches_sklearn_where_defined_and_is_none_where_not():
    rng = np.random.default_rng(4)
    classes = ["a", "b", "c", "d", "e"]
    y_true = rng.choice(["a", "b", "c", "d"], 80)
    y_pred = rng.choice(["a", "b", "c", "e"], 80)
    table = metrics.per_class(y_true, y_pred, classes)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    for i, name in enumerate(["a", "b", "c"]):
        assert table[name] == pytest.approx(
            {"precision": p[i], "recall": r[i], "f1": f[i], "support": s[i]}
        )
    assert table["d"]["precision"] is None and table["d"]["recall"] is not None
    assert table["e"]["recall"] is None and table["e"]["precision"] == 0.0
    assert table["e"]["support"] == 0


def windows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "clip_id": ["z", "z", "a", "z"],
            "label": ["dog", "dog", "cat", "dog"],
            "prob_cat": [0.6, 0.2, 0.9, 0.1],
            "prob_dog": [0.4, 0.8, 0.1, 0.9],
        }
    )


def test_aggregate_windows_mean_in_first_appearance_order():
    pooled = metrics.aggregate_windows(windows(), "clip_id", "mean")
    assert list(pooled.columns) == ["clip_id", "label", "prob_cat", "prob_dog"]
    assert pooled["clip_id"].tolist() == ["z", "a"]
    assert pooled["label"].tolist() == ["dog", "cat"]
    assert pooled["prob_cat"].tolist() == pytest.approx([0.3, 0.9])
    assert pooled["prob_dog"].tolist() == pytest.approx([0.7, 0.1])


def test_aggregate_windows_max_renormalises():
    pooled = metrics.aggregate_windows(windows(), "clip_id", "max")
    # z: max cat 0.6, max dog 0.9 -> 0.6 / 1.5, 0.9 / 1.5
    assert pooled["prob_cat"].tolist() == pytest.approx([0.4, 0.9])
    assert pooled["prob_dog"].tolist() == pytest.approx([0.6, 0.1])


def test_aggregate_windows_refuses_conflicting_labels_and_unknown_pooling():
    frame = windows()
    frame.loc[1, "label"] = "cat"
    with pytest.raises(ValueError, match=r"'clip_id'.*\['z'\]"):
        metrics.aggregate_windows(frame, "clip_id", "mean")
    with pytest.raises(ValueError, match="'median'"):
        metrics.aggregate_windows(windows(), "clip_id", "median")


@st.composite
def scored_splits(draw):
    k = draw(st.integers(1, 5))
    n = draw(st.integers(1, 30))
    cell = st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0)
    weights = draw(arrays(np.float64, (n, k), elements=cell))
    weights[weights.sum(axis=1) == 0] = 1.0
    classes = [f"c{i}" for i in range(k)]
    labels = draw(st.lists(st.sampled_from(classes), min_size=n, max_size=n))
    return labels, weights / weights.sum(axis=1, keepdims=True), classes


@settings(deadline=None, max_examples=150)
@given(split=scored_splits(), kind=st.sampled_from(["event", "clip"]))
def test_score_is_none_or_in_range_for_random_probabilities(split, kind):
    labels, probs, classes = split
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = metrics.score(kind, labels, probs, classes)
    assert list(scores) == list(metrics.names(kind))
    for name, value in scores.items():
        if value is None:
            continue
        assert isinstance(value, float) and math.isfinite(value), name
        low, high = (-D_PRIME_BOUND, D_PRIME_BOUND) if name == "d_prime" else (0.0, 1.0)
        assert low - 1e-9 <= value <= high + 1e-9, name


def test_predicted_labels_take_the_arg_max_logit():
    logits = np.array([[0.1, 2.0], [3.0, -1.0]], dtype=np.float32)
    table = predictions_table(
        pd.DataFrame({"clip_id": ["x", "y"]}), np.array(["b", "b"]), logits, ["a", "b"]
    )
    assert list(table.columns) == ["clip_id", "label", "logit_a", "logit_b"]
    assert predicted_labels(table, None).tolist() == ["b", "a"]


def test_majority_class_breaks_ties_in_sorted_order():
    assert majority_class({"b": 3, "a": 3, "c": 1}) == "a"
    assert majority_class({"b": 4, "a": 3}) == "b"


def test_spread_uses_the_sample_standard_deviation():
    values = [0.8, 0.9, 0.7]
    assert spread(values)["std"] == pytest.approx(np.std(values, ddof=1))
    assert spread([0.5]) == {"mean": 0.5, "std": 0.0}
