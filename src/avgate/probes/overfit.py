"""`overfit`: can the configured head memorise a few hundred training rows? A model, loss or
data path that cannot drive the loss to near zero on a tiny fixed subset will not learn the
whole set either.

The subset is `probe.overfit_rows` training rows taken one class at a time in turn (each class's
rows in stored order, so the subset is the same on every run; a class that runs out is skipped).
The head is trained on it by the train stage's own code (`avgate.finetune.none.train`, the one
loop) for `probe.overfit_epochs` epochs with seed `probe.seed`, with everything that fights
memorisation off: no early stopping (patience = epochs), no dropout, no weight decay, no label
smoothing, mixup, feature noise or class re-weighting (`RELAXED`). The subset is its own
validation split, so the epoch kept is the one with the lowest loss on it (eval mode). The
result: that loss and the accuracy on the subset, the rows and the epochs.

>>> balanced_rows(np.array(["a", "a", "a", "b", "c", "c"]), 5).tolist()
[0, 3, 4, 1, 5]
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import numpy as np

from avgate.config import Params
from avgate.finetune.none import Data, train
from avgate.layout.inputs import Examples
from avgate.probes.base import Probe, ProbeOutput, register_probe, round_floats
from avgate.probes.head_mode import head_data, not_head_mode, scores, with_train

# train.<key>: the value that turns it off in a memorisation run (early stopping and
# oversampling are turned off too, by `memorising`)
RELAXED = {
    "dropout": 0.0,
    "weight_decay": 0.0,
    "label_smoothing": 0.0,
    "mixup": 0.0,
    "feature_noise": 0.0,
    "sampler": "shuffle",
}
TURNED_OFF = sorted([*RELAXED, "oversample", "early_stopping"])


def balanced_rows(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of up to `n` rows: the first row of each class (sorted), then the second, ..."""
    per_class = [np.flatnonzero(labels == label) for label in sorted(set(labels.tolist()))]
    taken = (i for row in itertools.zip_longest(*per_class) for i in row if i is not None)
    return np.fromiter(itertools.islice(taken, n), dtype=np.int64)


def subset(rows: Examples, picked: np.ndarray) -> Examples:
    """The rows `picked` of `rows`."""
    index = rows.index.iloc[picked].reset_index(drop=True)
    return Examples(rows.x[picked], rows.labels[picked], index)


def memorising(params: Params) -> Params:
    """The train params of the overfit run (`RELAXED`, `probe.overfit_epochs` epochs)."""
    epochs = params.probe.overfit_epochs
    no_oversampling = type(params.train.oversample)()
    return with_train(params, **RELAXED, oversample=no_oversampling, max_epochs=epochs,
                      patience=epochs, selection_metric="val_loss")  # fmt: skip


def overfit(params: Params, data: Data) -> dict:
    """Train on the fixed subset of `data.train` (see the module doc); its findings."""
    rows = subset(data.train, balanced_rows(data.train.labels, params.probe.overfit_rows))
    relaxed = memorising(params)
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = Path(scratch) / "last.pt"
        trained = train(relaxed, params.probe.seed, Data(rows, rows, data.blocks), checkpoint)
    found = scores(trained.model, rows, trained.description["classes"])
    return {
        "train_loss": found["loss"],
        "train_accuracy": found["accuracy"],
        "rows": len(rows.labels),
        "classes": len(trained.description["classes"]),
        "epochs": relaxed.train.max_epochs,
        "best_epoch": trained.result.best_epoch,
        "seed": params.probe.seed,
        "turned_off": TURNED_OFF,
    }


@register_probe("overfit")
class TinyOverfit(Probe):
    """The tiny-overfit run of the configured head (see the module doc)."""

    def applies(self, params: Params) -> str | None:
        return not_head_mode(params)

    def run(self, params: Params) -> ProbeOutput:
        result = round_floats(overfit(params, head_data(params)))
        line = (
            f"loss {result['train_loss']:.3g}, accuracy {result['train_accuracy']:.3f} on "
            f"{result['rows']} training rows after {result['epochs']} epochs"
        )
        return ProbeOutput(result, line=line)
