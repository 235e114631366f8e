"""How a tensor task draws and perturbs its training rows beyond plain shuffled mini-batches: rows
drawn by class weights (a balanced sampler, oversampled classes), label smoothing, mixup and
Gaussian feature noise. The defaults are the plain recipe, which draws nothing extra from the
loop's generator, so a run at the defaults gives the weights it gave before any of these existed.

Every random draw comes from the loop's generator (`torch.Generator`), so a seed fixes it and a
resumed run draws what an uninterrupted one would have.

>>> y = torch.tensor([0, 0, 0, 1])
>>> weights = class_draw_weights(y, 2, balanced=True)
>>> [round(float(weights[y == c].sum()), 2) for c in (0, 1)]
[0.5, 0.5]
>>> weights = class_draw_weights(y, 2, boosted=[1], share=0.75)
>>> [round(float(weights[y == c].sum()), 2) for c in (0, 1)]
[0.25, 0.75]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

SEED_RANGE = 2**62  # seeds drawn from the loop's generator for other generators


@dataclass(frozen=True)
class Recipe:
    """What a `TensorClassification` does beyond shuffled mini-batches and cross-entropy.

    `row_weights`: each epoch draws as many rows as the split holds, with replacement, each row
    as likely as its weight (None: every row once, in a shuffled order). `label_smoothing`:
    torch's cross-entropy `label_smoothing` of the training loss (validation stays plain).
    `mixup`: the alpha of mixup's Beta(alpha, alpha) (0: off). `noise`: the per-column std of
    Gaussian noise added to training rows (None: off).
    """

    row_weights: torch.Tensor | None = None
    label_smoothing: float = 0.0
    mixup: float = 0.0
    noise: torch.Tensor | None = None

    @property
    def augments(self) -> bool:
        """True when training batches are perturbed (mixup or noise)."""
        return self.mixup > 0 or self.noise is not None


PLAIN = Recipe()  # shuffled mini-batches and plain cross-entropy


def class_draw_weights(
    y: torch.Tensor,
    n_classes: int,
    balanced: bool = False,
    boosted: Sequence[int] = (),
    share: float = 0.5,
) -> torch.Tensor:
    """One draw weight per row (summing to 1) from the rows' class indices `y`.

    Each class's share of the draws is its share of the rows, or 1/k of the k classes present
    when `balanced`; the `boosted` classes then take `share` of the draws together and the
    others the rest, each group split in the proportions it had. Within a class every row is
    equally likely.
    """
    counts = torch.bincount(y, minlength=n_classes).double()
    mass = (counts > 0).double() if balanced else counts.clone()
    mass /= mass.sum()
    if boosted:
        named = torch.zeros(n_classes, dtype=torch.bool)
        named[list(boosted)] = True
        mass = torch.where(
            named, mass / mass[named].sum() * share, mass / mass[~named].sum() * (1 - share)
        )
    return mass[y] / counts[y]


def draw_order(n: int, weights: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    """One epoch's row indices: a permutation of `n` rows, or `n` draws by `weights`."""
    if weights is None:
        return torch.randperm(n, generator=generator)
    return torch.multinomial(weights, n, replacement=True, generator=generator)


def batch_generator(generator: torch.Generator) -> torch.Generator:
    """A generator for one epoch's augmentation draws, seeded from the loop's generator."""
    seed = int(torch.randint(SEED_RANGE, (1,), generator=generator))
    return torch.Generator().manual_seed(seed)


def mix(
    x: torch.Tensor, alpha: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup of a batch: each row blended with a row of a random pairing by one weight
    lam ~ Beta(alpha, alpha); returns the mixed rows, the pairing and lam."""
    seed = int(torch.randint(SEED_RANGE, (1,), generator=generator))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    pairing = torch.randperm(len(x), generator=generator)
    return lam * x + (1 - lam) * x[pairing], pairing, lam


def add_noise(x: torch.Tensor, std: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """`x` plus Gaussian noise of the per-column `std`."""
    return x + torch.randn(x.shape, generator=generator, dtype=x.dtype) * std
