"""`av_agreement`: how well a second's sound and picture agree, as the cosine of the two rows
after a linear projection into a shared space learned on train.

The projection is canonical correlation analysis (scikit-learn's `CCA`, standardised inputs):
`components` pairs of directions along which the train audio and visual rows correlate most.
Two choices make the cosine an eventness score:

- each canonical coordinate is weighted by its canonical correlation on train (negative ones by
  0), so directions in which the modalities do not agree add no noise to the cosine;
- the origin of the space is the mean of the train background seconds, not CCA's mean of all
  rows. From the mean of all rows, a background second sits at minus the event offset in both
  modalities and would look as agreed as an event; from the background mean its two projections
  are unrelated noise (cosine near 0) and only an event moves both the same way.

Fitting needs visual rows and labels (for the background mean); scoring needs visual rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cross_decomposition import CCA

from avgate.declare import bound, param
from avgate.eventness.base import EventnessMethod, not_fitted, register
from avgate.eventness.data import SecondsData

TINY = 1e-12  # a projected row shorter than this counts as zero: its cosine is 0


@dataclass(frozen=True)
class AVAgreementOptions:
    components: int = param(
        4,
        "canonical directions of the shared space (at most the smaller feature count)",
        bound(">= 1"),
    )


@dataclass(frozen=True, eq=False)
class SharedSpace:
    """A fitted CCA, the weight of each canonical coordinate and the origin of each modality."""

    cca: CCA
    weights: np.ndarray
    origin: tuple[np.ndarray, np.ndarray]

    def project(self, audio: np.ndarray, visual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both modalities' rows as weighted coordinates from the origin."""
        projected = self.cca.transform(audio.astype(np.float64), visual.astype(np.float64))
        return tuple((p - o) * self.weights for p, o in zip(projected, self.origin, strict=True))


@register("av_agreement")
class AVAgreement(EventnessMethod):
    """Cosine of the audio and visual rows in a CCA space learned on train."""

    options_type = AVAgreementOptions
    options: AVAgreementOptions
    needs_visual = True

    def __init__(self, options: AVAgreementOptions) -> None:
        super().__init__(options)
        self.space: SharedSpace | None = None

    def fit(self, train: SecondsData) -> None:
        audio, visual = train.audio.astype(np.float64), train.visual_rows().astype(np.float64)
        background = ~train.events()
        most = min(audio.shape[1], visual.shape[1], len(visual) - 1)
        if self.options.components > most:
            raise ValueError(
                f"eventness.av_agreement.components {self.options.components} exceeds {most}, "
                "the smaller of the audio and visual feature counts (and rows - 1)"
            )
        if not background.any():
            raise ValueError("av_agreement needs train seconds labelled background")
        cca = CCA(n_components=self.options.components, max_iter=1000).fit(audio, visual)
        audio_scores, visual_scores = cca.transform(audio, visual)
        correlations = [
            np.corrcoef(audio_scores[:, i], visual_scores[:, i])[0, 1]
            for i in range(self.options.components)
        ]
        origin = (audio_scores[background].mean(axis=0), visual_scores[background].mean(axis=0))
        self.space = SharedSpace(cca, np.maximum(correlations, 0.0), origin)

    def score(self, data: SecondsData) -> np.ndarray:
        if self.space is None:
            raise not_fitted(self)
        audio, visual = self.space.project(data.audio, data.visual_rows())
        return cosine(audio, visual)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity; 0 where either row is (nearly) zero.

    >>> cosine(np.array([[1.0, 0], [0, 0]]), np.array([[2.0, 2], [1, 0]])).round(4).tolist()
    [0.7071, 0.0]
    """
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.einsum("ij,ij->i", a, b)
    return np.where(norms > TINY, dots / np.maximum(norms, TINY), 0.0)
