"""The tail-class recipe for heads on cached embeddings, on a small imbalanced fixture (synthetic
embeddings, one class a tenth of the rows) trained through the real head fitting code: each
option's effect, its refusal of bad values naming the key, and the defaults' bit-identical
weights."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import recall_score

from avgate import calibration, metrics
from avgate.config import LOOP_SELECTION, Params
from avgate.declare import ConfigError
from avgate.finetune import none
from avgate.finetune.none import fitting
from avgate.layout.inputs import Examples, predicted_labels
from avgate.models.fused import Block
from avgate.models.heads import MLPHead
from avgate.scoring import predictions_table, split_scores
from avgate.stages import gate
from avgate.training import selection
from avgate.training.callbacks import Callback
from avgate.training.checkpoint import Checkpointing
from avgate.training.finite import Rows
from avgate.training.loop import FitConfig, fit
from avgate.training.recipe import Recipe, add_noise, mix
from avgate.training.tensors import Split, TensorClassification

DIM = 8
CLASSES = ["common", "rare"]
BLOCKS = [Block("emb", "audio", ((0, DIM),))]
SMALL_HEAD = {"max_epochs": 8, "patience": 8, "batch_size": 32, "hidden": 16}
# Weights of heads trained on `fixture()` by the code before the recipe existed (commit 190c16a).
GOLDEN = {
    "plain": "994a01acee0203a019a34e60b8db8787ee2aa097e33b10db0cdc3da1bd91c9b2",
    "val_accuracy": "c686bdb033ba4fbeba276813c4b12dcbd7fe2290ff234fc362c148202c046a78",
    "gated": "3058dc9927da21cb65d92030f11bea74aa47858ab4070dedc1176197f9f2ec2d",
}
GOLDEN_PARAMS = {
    "plain": {},
    "val_accuracy": {"selection_metric": "val_accuracy"},
    "gated": {"head": "linear", "fusion": "gated"},
}
EVERY_DEFAULT = {
    "label_smoothing": 0.0,
    "sampler": "shuffle",
    "oversample": {"classes": [], "share": 0.5},
    "mixup": 0.0,
    "feature_noise": 0.0,
}


def examples(n: int, seed: int, shift: float, rare_share: float = 0.1) -> Examples:
    """`n` rows of DIM Gaussian features; about `rare_share` of them are `rare`, their first two
    features moved by `shift` (the classes overlap)."""
    rng = np.random.default_rng(seed)
    rare = rng.random(n) < rare_share
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    x[rare, :2] += shift
    index = pd.DataFrame({"clip_id": [f"c{seed}_{i}" for i in range(n)]})
    return Examples(x, np.where(rare, "rare", "common"), index)


def fixture(shift: float = 1.5) -> none.Data:
    """400 training rows (41 rare) and 200 validation rows (22 rare)."""
    return none.Data(examples(400, 1, shift), examples(200, 2, shift), BLOCKS)


def params(train: dict | None = None, evaluate: dict | None = None) -> Params:
    """A clip task scored by accuracy, with a small head and `train` / `evaluate` overrides."""
    return Params.from_dict(
        {
            "task": {"kind": "clip"},
            "evaluate": {"primary_metric": "accuracy", **(evaluate or {})},
            "train": SMALL_HEAD | (train or {}),
        }
    )


def train(tmp_path: Path, p: Params, data: none.Data | None = None, seed: int = 0):
    """One seed's head through `avgate.finetune.none.train`."""
    return none.train(p, seed, data or fixture(), tmp_path / f"seed{seed}" / "last.pt")


def weights_hash(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def val_scores(model: torch.nn.Module, data: none.Data, threshold: dict | None = None) -> dict:
    probs = calibration.softmax(none.predict(model.eval(), data.val.x))
    return metrics.score("clip", data.val.labels, probs, CLASSES, threshold)


def task_of(p: Params, data: none.Data) -> TensorClassification:
    """The task `fitting.train` builds, from the fixture's rows."""
    x, y = torch.from_numpy(data.train.x), torch.tensor(data.train.labels == "rare").long()
    xv, yv = torch.from_numpy(data.val.x), torch.tensor(data.val.labels == "rare").long()
    torch.manual_seed(0)
    model = MLPHead(DIM, 16, 2, 0.0)
    model.set_standardisation(x)
    return TensorClassification(
        model,
        Split(x, y, Rows("train")),
        Split(xv, yv, Rows("val")),
        0.01,
        0.0,
        32,
        recipe=fitting.recipe(p.train, y, CLASSES, model.scale),
        scores=fitting.val_scores(p.train.selection_metric, CLASSES),
    )


class Logs(Callback):
    """Each epoch's logs, in order."""

    def __init__(self) -> None:
        self.logs: list[dict] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.logs.append(logs)


# --- defaults: the weights the code gave before the recipe --------------------------------------


@pytest.mark.parametrize("name", GOLDEN)
def test_defaults_give_the_weights_the_code_gave_before_the_recipe(tmp_path, name):
    plain = train(tmp_path, params(GOLDEN_PARAMS[name]))
    assert weights_hash(plain.model) == GOLDEN[name]
    written = train(tmp_path / "explicit", params(GOLDEN_PARAMS[name] | EVERY_DEFAULT))
    assert weights_hash(written.model) == GOLDEN[name]
    assert "decision_threshold" not in plain.description  # head.json as before


def test_the_repo_params_leave_the_recipe_off():
    p = Params.load(Path(__file__).resolve().parents[1] / "params.yaml")
    assert fitting.recipe(p.train, torch.tensor([0, 1]), CLASSES, torch.ones(2)) == Recipe()
    assert p.evaluate.threshold == "argmax" and p.train.selection_metric == "val_loss"


# --- which rows each epoch draws ----------------------------------------------------------------


def drawn_share(p: Params, data: none.Data, epochs: int = 200) -> tuple[float, int]:
    """The share of `rare` rows among those drawn over `epochs` epochs, and one epoch's length."""
    task = task_of(p, data)
    generator = torch.Generator().manual_seed(0)
    rows = [torch.cat(task.batches(generator)) for _ in range(epochs)]
    drawn = torch.cat(rows)
    return float(task.train.y[drawn].double().mean()), len(rows[0])


def within(share: float, target: float, draws: int) -> bool:
    """`share` within four binomial standard errors of `target`."""
    return abs(share - target) < 4 * np.sqrt(target * (1 - target) / draws)


@pytest.mark.parametrize(
    ("train_params", "target"),
    [
        ({"sampler": "balanced"}, 0.5),
        ({"oversample": {"classes": ["rare"], "share": 0.3}}, 0.3),
        ({"sampler": "balanced", "oversample": {"classes": ["rare"], "share": 0.7}}, 0.7),
    ],
)
def test_balanced_and_oversampled_draws_reach_the_target_share(train_params, target):
    data = fixture()
    natural = float(np.mean(data.train.labels == "rare"))
    assert natural == pytest.approx(41 / 400)
    share, length = drawn_share(params(train_params), data)
    assert within(share, target, 200 * 400), (share, target)
    assert length == len(data.train.x)  # the epoch keeps its length
    assert drawn_share(params(), data)[0] == pytest.approx(natural)  # shuffle: every row once


def test_balanced_draws_make_three_classes_equally_likely():
    y = torch.tensor([0] * 70 + [1] * 25 + [2] * 5)
    p = params({"sampler": "balanced"})
    weights = fitting.row_weights(p.train, y, ["a", "b", "c"])
    drawn = torch.multinomial(weights, 30000, replacement=True, generator=torch.Generator())
    shares = torch.bincount(y[drawn], minlength=3).double() / 30000
    assert all(within(float(s), 1 / 3, 30000) for s in shares), shares


def test_a_seed_fixes_the_drawn_rows():
    data, p = fixture(), params({"sampler": "balanced"})
    first, again, other = (
        torch.cat(task_of(p, data).batches(torch.Generator().manual_seed(seed)))
        for seed in (0, 0, 1)
    )
    assert torch.equal(first, again) and not torch.equal(first, other)


# --- the loss ----------------------------------------------------------------------------------


@pytest.mark.parametrize("smoothing", [0.1, 0.4])
def test_label_smoothing_is_torch_cross_entropy_with_smoothed_targets(smoothing):
    data = fixture()
    task = task_of(params({"label_smoothing": smoothing}), data)
    task.model.eval()  # no dropout: one forward to compare with
    batch = torch.arange(64)
    logits = task.model(task.train.x[batch])
    k = logits.shape[1]
    target = torch.nn.functional.one_hot(task.train.y[batch], k) * (1 - smoothing) + smoothing / k
    expected = -(target * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
    got = task.loss(batch)
    assert torch.allclose(got, expected, atol=1e-6)
    plain = torch.nn.functional.cross_entropy(logits, task.train.y[batch])
    assert not torch.allclose(got, plain)
    assert task.validate()["val_loss"] == task_of(params(), data).validate()["val_loss"]


@pytest.mark.parametrize("train_params", [{"mixup": 0.4}, {"feature_noise": 0.5}])
def test_mixup_and_noise_change_training_batches_only_and_follow_the_seed(tmp_path, train_params):
    data = fixture()
    plain, augmented = task_of(params(), data), task_of(params(train_params), data)
    for task in (plain, augmented):
        task.batches(torch.Generator().manual_seed(0))
        task.model.eval()
    batch = torch.arange(64)
    assert not torch.equal(plain.loss(batch), augmented.loss(batch))  # training batches change
    assert plain.validate() == augmented.validate()  # validation does not
    runs = [
        train(tmp_path / f"run{i}", params(train_params), seed=s) for i, s in enumerate([0, 0, 1])
    ]
    hashes = [weights_hash(run.model) for run in runs]
    assert hashes[0] == hashes[1] != hashes[2]
    assert hashes[0] != weights_hash(train(tmp_path / "plain", params()).model)


def test_noise_is_in_standardised_units_and_mixup_blends_pairs():
    data = fixture()
    task = task_of(params({"feature_noise": 0.5}), data)
    assert torch.allclose(task.recipe.noise, 0.5 * task.model.scale)
    x = torch.zeros(20000, 2)
    noisy = add_noise(x, torch.tensor([0.5, 2.0]), torch.Generator().manual_seed(0))
    assert torch.allclose(noisy.std(dim=0), torch.tensor([0.5, 2.0]), rtol=0.05)
    rows = torch.arange(12.0).reshape(6, 2)
    mixed, pairing, lam = mix(rows, 0.4, torch.Generator().manual_seed(0))
    assert 0 < lam < 1 and sorted(pairing.tolist()) == list(range(6))
    assert torch.allclose(mixed, lam * rows + (1 - lam) * rows[pairing])


def test_a_resumed_run_with_every_option_equals_an_uninterrupted_one(tmp_path):
    recipe = {"sampler": "balanced", "label_smoothing": 0.1, "mixup": 0.4, "feature_noise": 0.3}
    p, data = params(recipe), fixture()
    straight = task_of(p, data)
    fit(straight, FitConfig(6, seed=0))
    checkpoint = Checkpointing(tmp_path / "last.pt", "key")
    fit(task_of(p, data), FitConfig(3, seed=0), checkpoint=checkpoint)
    resumed = task_of(p, data)
    result = fit(resumed, FitConfig(6, seed=0), checkpoint=checkpoint)
    assert result.resumed_from_epoch == 3
    assert weights_hash(resumed.model) == weights_hash(straight.model)


# --- the epoch kept ----------------------------------------------------------------------------


def test_selection_by_a_registered_metric_keeps_its_best_epoch(tmp_path):
    data = fixture()
    logs = Logs()
    task = task_of(params({"selection_metric": "tail_f1"}), data)
    result = fit(task, FitConfig(15, seed=0, selection_metric="tail_f1"), [logs])
    values = [log["val_tail_f1"] for log in logs.logs]
    assert len(set(values)) > 1
    assert result.best_epoch == values.index(max(values)) + 1  # maximise: the registry's sign
    assert result.best_selection_value == max(values)
    assert val_scores(task.model, data)["tail_f1"] == pytest.approx(max(values))
    trained = train(tmp_path, params({"selection_metric": "tail_f1", "max_epochs": 15}))
    assert trained.description["selection_metric"] == "tail_f1"
    assert trained.description["best_selection_value"] == pytest.approx(
        val_scores(trained.model, data)["tail_f1"]
    )


def test_the_direction_of_a_registered_metric_comes_from_the_registry():
    """A metric registered to be minimised keeps the epoch where it is lowest."""

    @metrics.register("rare_predicted", metrics.MINIMIZE, "labels", ("clip",))
    def _rare_predicted(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> float:
        return float(np.mean(y_pred == "rare"))

    try:
        assert selection.sign("rare_predicted") == -1 and selection.sign("tail_f1") == 1
        logs = Logs()
        task = task_of(params({"selection_metric": "rare_predicted", "sampler": "balanced"}),
                       fixture())  # fmt: skip
        result = fit(task, FitConfig(10, seed=0, selection_metric="rare_predicted"), [logs])
        values = [log["val_rare_predicted"] for log in logs.logs]
        assert len(set(values)) > 1
        assert result.best_epoch == values.index(min(values)) + 1
    finally:
        del metrics.METRICS["rare_predicted"]


def test_the_selection_scorer_agrees_with_sklearn():
    rng = np.random.default_rng(0)
    logits, y = torch.from_numpy(rng.normal(size=(50, 2))), torch.from_numpy(rng.integers(0, 2, 50))
    y[:5] = 1  # both classes present
    rare = CLASSES[int(torch.bincount(y, minlength=2).argmin())]
    labels = np.asarray(CLASSES)[y.numpy()]
    predicted = np.asarray(CLASSES)[logits.argmax(dim=1).numpy()]
    expected = recall_score(labels, predicted, pos_label=rare)
    assert selection.scorer("tail_recall", CLASSES)(logits, y) == pytest.approx(expected)


def test_the_loop_metric_names_agree_between_config_and_the_loop():
    assert tuple(selection.LOOP_METRICS) == LOOP_SELECTION


# --- the decision threshold --------------------------------------------------------------------


def test_a_tuned_threshold_is_the_best_on_validation_and_decides_every_label(tmp_path):
    data = fixture(shift=2.0)
    p = params(
        {"max_epochs": 20, "patience": 20}, {"threshold": "tuned", "primary_metric": "tail_f1"}
    )
    trained = train(tmp_path, p, data)
    threshold = trained.description["decision_threshold"]
    assert threshold["class"] == "rare"
    probs = calibration.softmax(none.predict(trained.model.eval(), data.val.x))
    best = metrics.value("tail_f1", data.val.labels, probs, CLASSES, threshold)
    for t in np.linspace(0.01, 0.99, 99):
        grid = metrics.value(
            "tail_f1", data.val.labels, probs, CLASSES, {"class": "rare", "value": t}
        )
        assert best >= grid
    assert best >= val_scores(trained.model, data)["tail_f1"]  # at least the arg-max's
    logits = none.predict(trained.model, data.val.x)
    decided = metrics.decide(probs, CLASSES, threshold)
    assert (
        decided.tolist() == np.where(probs[:, 1] >= threshold["value"], "rare", "common").tolist()
    )
    table = predictions_table(data.val.index, data.val.labels, logits, CLASSES)
    assert predicted_labels(table, threshold).tolist() == decided.tolist()
    scored = split_scores("clip", "val", data.val.labels, logits, CLASSES, "common", threshold)
    assert scored["val"]["tail_f1"] == best
    assert scored["per_class_val"]["rare"]["recall"] == pytest.approx(
        recall_score(data.val.labels, decided, pos_label="rare")
    )


def test_the_gate_scores_a_test_look_by_the_runs_stored_threshold():
    """The gate's per-sample scores (its bootstrap) decide labels as evaluate did: by the
    threshold in the seed's metrics.json when there is one, by the arg-max otherwise."""
    logits = np.log(np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]]))
    table = predictions_table(
        pd.DataFrame({"clip_id": ["a", "b", "c"]}), np.array(["common", "rare", "rare"]), logits,
        CLASSES,
    )  # fmt: skip
    accuracy = metrics.METRICS["accuracy"]
    threshold = {"class": "rare", "value": 0.3}
    assert gate._per_sample_scores(accuracy, table, None).tolist() == [1.0, 0.0, 1.0]
    assert gate._per_sample_scores(accuracy, table, threshold).tolist() == [1.0, 1.0, 1.0]


def test_tune_threshold_breaks_ties_towards_the_arg_max():
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])  # every threshold in (0.1, 0.8] is perfect
    tuned = metrics.tune_threshold("accuracy", ["a", "b"], probs, ["a", "b"], "b")
    assert tuned == {"class": "b", "value": 0.5}


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"train": {"label_smoothing": 1.0}}, "train.label_smoothing"),
        ({"train": {"label_smoothing": -0.1}}, "train.label_smoothing"),
        ({"train": {"sampler": "stratified"}}, "train.sampler"),
        ({"train": {"oversample": {"share": 1.0}}}, "train.oversample.share"),
        ({"train": {"oversample": {"classes": "rare"}}}, "train.oversample.classes"),
        ({"train": {"mixup": -1.0}}, "train.mixup"),
        ({"train": {"feature_noise": -0.5}}, "train.feature_noise"),
        ({"train": {"selection_metric": ""}}, "train.selection_metric"),
        ({"evaluate": {"threshold": "best"}}, "evaluate.threshold"),
        ({"train": {"finetune": "lora", "sampler": "balanced"}}, "train.sampler"),
        ({"train": {"finetune": "lora", "selection_metric": "tail_f1"}}, "train.selection_metric"),
        ({"train": {"finetune": "lora"}, "evaluate": {"threshold": "tuned"}}, "evaluate.threshold"),
    ],
)
def test_bad_values_are_refused_naming_the_key(section, key):
    with pytest.raises(ConfigError, match=rf"params.yaml: {key} "):
        Params.from_dict(section)


@pytest.mark.parametrize(
    ("train_params", "evaluate", "message"),
    [
        ({"oversample": {"classes": ["tail"]}}, {},
         r"oversample.classes must name training classes \['common', 'rare'\], got \['tail'\]"),
        ({"oversample": {"classes": ["common", "rare"]}}, {},
         "train.oversample.classes must leave at least one training class out"),
        ({"selection_metric": "segment_accuracy"}, {},
         r"train.selection_metric must be one of \['val_loss', 'val_accuracy', 'accuracy'"),
        ({}, {"threshold": "tuned", "primary_metric": "macro_roc_auc"},
         "evaluate.threshold 'tuned' needs evaluate.primary_metric to score labels"),
    ],
)  # fmt: skip
def test_the_train_stage_refuses_what_only_the_data_can_tell(tmp_path, train_params, evaluate,
                                                            message):  # fmt: skip
    with pytest.raises(ConfigError, match=message):
        train(tmp_path, params(train_params, evaluate))


def test_a_metric_undefined_on_the_validation_labels_or_classes_is_refused(tmp_path):
    three = none.Data(Examples(*_three_classes(300, 1)), Examples(*_three_classes(90, 2)), BLOCKS)
    with pytest.raises(ConfigError, match="train.selection_metric is undefined on the validation"):
        train(tmp_path, params({"selection_metric": "tail_recall"}), three)
    with pytest.raises(ConfigError, match="evaluate.threshold 'tuned' needs a binary task"):
        train(tmp_path, params(evaluate={"threshold": "tuned"}), three)


def _three_classes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    rows = examples(n, seed, 1.0)
    labels = np.where(np.arange(n) % 3 == 0, "third", rows.labels)
    return rows.x, labels, rows.index


# --- a sweep moves tail recall -------------------------------------------------------------------


def test_a_sweep_over_sampler_and_smoothing_moves_tail_recall(tmp_path):
    """The figures of a `-S train.sampler=... -S train.label_smoothing=...` sweep on the fixture
    (printed with `pytest -s`)."""
    data = fixture(shift=2.0)
    recall = {}
    for sampler in ("shuffle", "balanced"):
        for smoothing in (0.0, 0.3):
            p = params({"sampler": sampler, "label_smoothing": smoothing, "max_epochs": 20,
                        "patience": 20})  # fmt: skip
            trained = train(tmp_path / f"{sampler}{smoothing}", p, data)
            recall[sampler, smoothing] = val_scores(trained.model, data)["tail_recall"]
    print("tail recall on validation:", {f"{k[0]}, smoothing {k[1]}": v for k, v in recall.items()})
    assert recall["balanced", 0.0] > recall["shuffle", 0.0]
    assert recall["shuffle", 0.3] != recall["shuffle", 0.0]
