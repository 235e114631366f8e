import numpy as np
import pandas as pd
import pytest

from avgate import model_diagnostics


def test_muted_modality_takes_the_fill_and_leaves_the_rest():
    x = np.arange(12, dtype=float).reshape(3, 4)
    fill = np.full(4, -1.0)
    out = model_diagnostics.ablate(x, np.array([2, 3]), "muted", fill, np.array(["a", "a", "b"]))
    assert (out[:, 2:] == -1).all() and (out[:, :2] == x[:, :2]).all()
    assert (x[:, 2:] != -1).all()  # the input is not modified


def test_features_from_another_clip_roll_clips_second_by_second():
    x = np.array([[1, 10], [2, 20], [3, 30], [4, 40], [5, 50]], dtype=float)
    clips = np.array(["a", "a", "b", "b", "b"])
    out = model_diagnostics.ablate(x, np.array([1]), "from_other_clip", np.zeros(2), clips)
    assert out[:, 0].tolist() == [1, 2, 3, 4, 5]
    assert out[:, 1].tolist() == [30, 40, 10, 20, 20]  # a gets b's seconds; b repeats a's last


def test_modality_reliance_shows_the_drop_of_the_informative_modality():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    informative = y[:, None] + rng.normal(0, 0.1, (200, 2))
    noise = rng.normal(0, 1, (200, 2))
    x = np.concatenate([informative, noise], axis=1)

    def predict(features):
        p = 1 / (1 + np.exp(-10 * (features[:, :2].mean(axis=1) - 0.5)))
        return np.stack([1 - p, p], axis=1)

    def score(probs):
        return float((probs.argmax(axis=1) == y).mean())

    result = model_diagnostics.modality_reliance(
        predict, score, x, {"audio": np.array([0, 1]), "visual": np.array([2, 3])},
        x.mean(axis=0), np.arange(200).astype(str),
    )  # fmt: skip
    assert result["full"] > 0.95
    assert result["audio_muted"]["drop"] > 0.3 and result["audio_from_other_clip"]["drop"] > 0.3
    assert result["visual_muted"]["drop"] == 0 and result["visual_from_other_clip"]["drop"] == 0
    single = {"audio": np.array([0])}
    ids = np.arange(200).astype(str)
    assert model_diagnostics.modality_reliance(predict, score, x, single, x.mean(axis=0), ids) == {}


def test_probability_clusters_count_identical_vectors():
    probs = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.1, 0.9], [0.2, 0.8]])
    found = model_diagnostics.probability_clusters(probs)
    assert found == {"share_in_clusters": 0.6, "largest_cluster": 3, "distinct_vectors": 3}
    assert model_diagnostics.probability_clusters(np.zeros((0, 2)))["largest_cluster"] == 0


def test_group_scores_rank_the_worst_first():
    frame = pd.DataFrame(
        {"group": ["g1", "g1", "g2", "g2"], "label": ["a", "b", "a", "b"],
         "predicted": ["a", "b", "b", "b"]}
    )  # fmt: skip
    found = model_diagnostics.group_scores(frame, lambda t, p: float((t == p).mean()))
    assert found["per_group"] == {"g1": 1.0, "g2": 0.5}
    assert found["worst"][0] == {"group": "g2", "score": 0.5}


def test_wrong_in_every_seed_keeps_only_rows_all_seeds_miss():
    base = pd.DataFrame({"clip_id": ["a", "b", "c"], "t": [0, 0, 0], "label": ["x", "y", "z"]})
    seeds = [base.assign(predicted=p) for p in (["x", "x", "x"], ["y", "x", "x"])]
    wrong = model_diagnostics.wrong_in_every_seed(seeds, ["clip_id", "t"])
    assert wrong["clip_id"].tolist() == ["b", "c"]  # a is right in the first seed
    with pytest.raises(ValueError, match="unknown ablation"):
        model_diagnostics.ablate(
            np.zeros((1, 1)), np.array([0]), "blurred", np.zeros(1), np.array(["a"])
        )
