import numpy as np
import pytest
from sklearn.metrics import f1_score

from avgate import metrics
from avgate.config import ConfigError
from avgate.stages.evaluate import majority_class, predictions_table
from avgate.stages.inputs import predicted_labels
from avgate.stages.summarize import spread


def test_segment_accuracy_counts_background_seconds():
    y_true = ["bg", "bg", "bell", "bell", "bg"]
    y_pred = ["bg", "bell", "bell", "bg", "bg"]
    scores = metrics.score("event", y_true, y_pred, ["bell", "bg"])
    assert scores["segment_accuracy"] == pytest.approx(3 / 5)
    assert scores["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_macro_f1_matches_sklearn_and_ignores_classes_absent_from_truth():
    rng = np.random.default_rng(0)
    y_true = rng.choice(["a", "b", "c"], 200)
    y_pred = rng.choice(["a", "b", "c", "d"], 200)
    expected = f1_score(y_true, y_pred, labels=["a", "b", "c"], average="macro")
    assert metrics.score("clip", y_true, y_pred, ["a", "b", "c", "d"])["macro_f1"] == expected


def test_primary_metric_must_exist_for_the_task_kind():
    metrics.check_primary("event", "segment_accuracy")
    with pytest.raises(ConfigError, match="not computed for task.kind 'clip'"):
        metrics.check_primary("clip", "segment_accuracy")


def test_predicted_labels_take_the_arg_max_logit():
    import pandas as pd

    logits = np.array([[0.1, 2.0], [3.0, -1.0]], dtype=np.float32)
    table = predictions_table(
        pd.DataFrame({"clip_id": ["x", "y"]}), np.array(["b", "b"]), logits, ["a", "b"]
    )
    assert list(table.columns) == ["clip_id", "label", "logit_a", "logit_b"]
    assert predicted_labels(table).tolist() == ["b", "a"]


def test_majority_class_breaks_ties_in_sorted_order():
    assert majority_class({"b": 3, "a": 3, "c": 1}) == "a"
    assert majority_class({"b": 4, "a": 3}) == "b"


def test_spread_uses_the_sample_standard_deviation():
    values = [0.8, 0.9, 0.7]
    assert spread(values)["std"] == pytest.approx(np.std(values, ddof=1))
    assert spread([0.5]) == {"mean": 0.5, "std": 0.0}
