import numpy as np
import pandas as pd
import pytest
import torch

from avgate.config import Params
from avgate.declare import ConfigError
from avgate.layout.inputs import Examples
from avgate.models.heads import MLPHead
from avgate.stages.train.evaluate import aggregated
from avgate.training import selection
from avgate.training.callbacks import Callback
from avgate.training.finite import Rows
from avgate.training.loop import FitConfig, fit
from avgate.training.tensors import Split, TensorClassification


class Logs(Callback):
    """Each epoch's logs, in order."""

    def __init__(self) -> None:
        self.logs: list[dict] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.logs.append(logs)


def run_fit(selection: str) -> tuple[list[dict], object]:
    torch.manual_seed(0)
    generator = np.random.default_rng(0)
    features = generator.normal(size=(120, 4))
    x = torch.tensor(features, dtype=torch.float32)
    y = torch.tensor((features[:, 0] + 0.8 * generator.normal(size=120) > 0).astype(np.int64))
    model = MLPHead(4, 16, 2, 0.0)
    train, val = Split(x[:80], y[:80], Rows("train")), Split(x[80:], y[80:], Rows("val"))
    task = TensorClassification(model, train, val, lr=0.05, weight_decay=0.0, batch_size=16)
    logs = Logs()
    result = fit(task, FitConfig(40, seed=0, patience=40, selection_metric=selection), [logs])
    return logs.logs, result


@pytest.mark.parametrize(("selection", "best"), [("val_loss", min), ("val_accuracy", max)])
def test_the_kept_epoch_is_the_best_by_the_selection_metric(selection, best):
    logs, result = run_fit(selection)
    values = [log[selection] for log in logs]
    assert result.best_epoch == values.index(best(values)) + 1  # ties keep the earlier epoch
    assert result.best_selection_value == best(values)
    assert result.best_val_loss == logs[result.best_epoch - 1]["val_loss"]


def test_unknown_selection_metric_is_a_params_error():
    """params.yaml cannot know the registry (config never imports metrics); the train stage
    refuses the name before any seed trains, listing the loop's and the task kind's metrics."""
    message = r"train.selection_metric must be one of \['val_loss', 'val_accuracy', 'accuracy'"
    with pytest.raises(ConfigError, match=message):
        selection.check("test_accuracy", "clip", "train.selection_metric")
    with pytest.raises(ConfigError, match="train.selection_metric must not be empty"):
        Params.from_dict({"train": {"selection_metric": ""}})


def test_aggregation_pools_each_events_clips(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = Params.from_dict({"task": {"kind": "clip"}, "evaluate": {
        "primary_metric": "accuracy", "aggregate_by": "event", "aggregate": "mean"}})  # fmt: skip
    manifest = pd.DataFrame({"clip_id": ["a1", "a2", "a3", "b1"],
                             "event": ["A", "A", "A", "B"]})  # fmt: skip
    (tmp_path / params.data.interim_dir).mkdir(parents=True)
    manifest.to_parquet(tmp_path / params.data.interim_dir / "manifest.parquet")
    data = Examples(np.zeros((4, 1)), np.array(["x", "x", "x", "y"]),
                    pd.DataFrame({"clip_id": ["a1", "a2", "a3", "b1"]}))  # fmt: skip
    probs = np.array([[0.4, 0.6], [0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])  # a1 alone is wrong
    assert aggregated(params, data, probs, ["x", "y"])["accuracy"] == 1.0  # A pooled: x
    mixed = Examples(data.x, np.array(["x", "y", "x", "y"]), data.index)
    with pytest.raises(ConfigError, match="evaluate.aggregate_by 'event'"):
        aggregated(params, mixed, probs, ["x", "y"])
    missing = Params.from_dict({"task": {"kind": "clip"}, "evaluate": {
        "primary_metric": "accuracy", "aggregate_by": "source"}})  # fmt: skip
    with pytest.raises(ConfigError, match="'source' is not a manifest column"):
        aggregated(missing, data, probs, ["x", "y"])
    with pytest.raises(ConfigError, match="needs task.kind: clip"):
        Params.from_dict({"evaluate": {"aggregate_by": "event"}})
