"""String labels to class indices, the one way every trained model numbers its classes."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from avgate.errors import StageError


def classes_of(labels: Iterable[str]) -> list[str]:
    """The classes a model is trained on: the training labels, sorted, as plain strings (a
    numpy array's `np.str_` would show as such in messages).

    >>> classes_of(["b", "a", "b"])
    ['a', 'b']
    """
    return sorted({str(label) for label in labels})


def encode(labels: Iterable[str], classes: list[str], split: str) -> torch.Tensor:
    """Class indices of `labels`; refuses labels the training split never saw.

    >>> encode(["b", "a"], ["a", "b"], "val").tolist()
    [1, 0]
    """
    lookup = {c: i for i, c in enumerate(classes)}
    labels = list(labels)
    unseen = sorted(set(labels) - set(lookup))
    if unseen:
        raise StageError(f"labels {unseen} occur in {split} but not in train; re-split the data")
    return torch.tensor([lookup[label] for label in labels], dtype=torch.long)
