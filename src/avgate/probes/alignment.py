"""`alignment`: do a clip's sound and picture mark the same seconds as eventful?

Both streams of evidence are ones the pipeline already has, neither learnt from the picture:

- audio: the eventness stage's score of each second (`eventness.method` on
  `eventness.audio_encoder`; data/eventness/<method>/scores.parquet); a method that reads the
  video too (`av_agreement`) is no audio evidence, and the probe does not apply;
- visual: the foreground share of each second from `eventness.visual_encoder`, a `frames`
  encoder (the share of pixels away from the clip's median frame: column 0 of its rows), no
  labels involved.

On the annotated seconds (train and val: the test split's labels are sealed and never read),
each stream is cut per clip into event and background seconds by `two_means` (no labels), and
the probe reports the share of seconds where the two calls agree, and where each agrees with the
labels (event = not `task.background_label`).

The mismatch detector needs no labels: each clip's own audio and video time courses are
correlated (Pearson over seconds), and so is its audio with every other clip's video (swapped
pairs, cut to the shorter clip). A clip is obviously mismatched when its own pair correlates no
higher than the median of its swapped pairs (`MISMATCH_RULE`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from avgate import eventness
from avgate.config import Params
from avgate.encoders.registry import encoder_class
from avgate.errors import StageError
from avgate.layout.clips import embedding_dir, eventness_scores
from avgate.layout.labels import second_labels
from avgate.probes.base import DECIMALS, Probe, ProbeOutput, register_probe

LABELLED = ("train", "val")  # the splits whose labels the probe reads: never test
FOREGROUND = 0  # frames encoder rows: the first feature is the second's foreground share
VISUAL_KIND = "frames"
LISTED = 20  # mismatched clips named in the result
TINY = 1e-12  # a time course spreading less than this is constant: it correlates 0
BINARISATION = (
    "per clip and stream, event = above the cut of the exact 1-D two-means split of the clip's "
    "seconds (the cut between sorted values that minimises the within-group sum of squares); "
    "a constant clip is all background"
)
MISMATCH_RULE = (
    "a clip is mismatched when the Pearson correlation over seconds of its own audio and visual "
    "evidence is no higher than the median correlation of its audio with every other clip's "
    "visual evidence (swapped pairs, cut to the shorter clip; a constant course correlates 0)"
)


def two_means(values: np.ndarray) -> np.ndarray:
    """(n,) bool: the values above the cut of the exact two-means split (the cut between two
    distinct sorted values that minimises the within-group sum of squares); all False when
    every value is equal.

    >>> two_means(np.array([0.1, 0.9, 0.2, 1.0, 0.8])).tolist()
    [False, True, False, True, True]
    >>> two_means(np.array([3.0, 3.0])).tolist()
    [False, False]
    """
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n = len(ordered)
    cuts = np.flatnonzero(np.diff(ordered) > 0) + 1  # sizes of the low group
    if not len(cuts):
        return np.zeros(n, dtype=bool)
    low = np.cumsum(ordered)[cuts - 1]
    total = ordered.sum()
    between = low**2 / cuts + (total - low) ** 2 / (n - cuts)  # max <=> min within-group SS
    k = cuts[np.argmax(between)]
    return np.asarray(values) > (ordered[k - 1] + ordered[k]) / 2


def centred(course: np.ndarray) -> np.ndarray:
    """A time course minus its mean, scaled to unit length (zeros when it is constant)."""
    course = course - course.mean()
    norm = np.linalg.norm(course)
    return course / norm if norm > TINY else np.zeros_like(course)


def pair_correlations(audio: list[np.ndarray], visual: list[np.ndarray]) -> np.ndarray:
    """(n, n) Pearson correlation of clip i's audio course with clip j's visual course, both cut
    to the shorter of the two clips; 0 where either cut course is constant.

    >>> up, down = np.array([0.0, 1, 2]), np.array([2.0, 1, 0])
    >>> pair_correlations([up, down[:2]], [up, up[:2]]).round(3).tolist()
    [[1.0, 1.0], [-1.0, -1.0]]
    """
    lengths = np.array([len(course) for course in audio])
    if [len(course) for course in visual] != lengths.tolist():
        raise ValueError("each clip needs as many audio as visual seconds")
    shorter = np.minimum.outer(lengths, lengths)
    correlations = np.zeros(shorter.shape)
    for length in np.unique(shorter):
        clips = np.flatnonzero(lengths >= length)
        a = np.stack([centred(audio[i][:length].astype(np.float64)) for i in clips])
        v = np.stack([centred(visual[i][:length].astype(np.float64)) for i in clips])
        block = np.ix_(clips, clips)
        here = shorter[block] == length
        correlations[block] = np.where(here, a @ v.T, correlations[block])
    return correlations


def mismatched(correlations: np.ndarray) -> np.ndarray:
    """(n,) bool: clips whose own pair (the diagonal) correlates no higher than the median of
    their swapped pairs (the rest of their row); needs at least two clips.

    >>> mismatched(np.array([[0.9, 0.1, 0.2], [0.0, 0.4, 0.1], [0.3, 0.3, 0.3]])).tolist()
    [False, False, True]
    """
    n = len(correlations)
    swapped = correlations[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    return np.diag(correlations) <= np.median(swapped, axis=1)


def evidence_table(params: Params, split: str) -> pd.DataFrame:
    """clip_id, t, audio, visual and event (labels: train and val only) of the split's seconds,
    in the visual rows' order."""
    if split not in LABELLED:
        raise ValueError(f"the alignment probe reads the labels of {LABELLED} only, not {split}")
    folder = embedding_dir(params.eventness.visual_encoder)
    index = pd.read_parquet(folder / f"{split}.index.parquet")
    rows = np.load(folder / f"{split}.npy", mmap_mode="r")
    seconds = index[["clip_id", "t"]].assign(visual=np.asarray(rows[:, FOREGROUND], np.float64))
    path = eventness_scores(params.eventness.method)
    scores = pd.read_parquet(path, columns=["clip_id", "t", "split", "score"])
    scores = scores[scores["split"] == split].drop(columns="split")
    table = seconds.merge(scores.rename(columns={"score": "audio"}), on=["clip_id", "t"])
    if len(table) != len(seconds) or len(scores) != len(seconds):
        raise StageError(
            f"{path}: its {split} seconds differ from {folder}'s; re-run `dvc repro eventness`"
        )
    labels = second_labels(params, table)
    return table.assign(event=labels != params.task.background_label)


def calls(table: pd.DataFrame, column: str) -> np.ndarray:
    """Each second's event call from `column`, cut per clip by `two_means`, in table order."""
    return table.groupby("clip_id", sort=False)[column].transform(two_means).to_numpy(bool)


def agreement(table: pd.DataFrame) -> dict:
    """Shares of seconds where audio and visual calls agree, and where each agrees with the
    labels."""
    audio, visual, event = calls(table, "audio"), calls(table, "visual"), table["event"].to_numpy()
    return {
        "n_clips": int(table["clip_id"].nunique()),
        "n_seconds": len(table),
        "agreement": round(float(np.mean(audio == visual)), DECIMALS),
        "audio_label_agreement": round(float(np.mean(audio == event)), DECIMALS),
        "visual_label_agreement": round(float(np.mean(visual == event)), DECIMALS),
    }


def mismatch(table: pd.DataFrame) -> dict:
    """The mismatch detector on every clip of `table` (`MISMATCH_RULE`)."""
    clips = table.sort_values(["clip_id", "t"]).groupby("clip_id", sort=True)
    names = list(clips.groups)
    if len(names) < 2:
        raise StageError("the alignment probe's mismatch detector needs at least two clips")
    correlations = pair_correlations(
        [group["audio"].to_numpy() for _, group in clips],
        [group["visual"].to_numpy() for _, group in clips],
    )
    flagged = mismatched(correlations)
    swapped = correlations[~np.eye(len(names), dtype=bool)]
    return {
        "mismatched_share": round(float(flagged.mean()), DECIMALS),
        "n_mismatched": int(flagged.sum()),
        "mismatched_clips": [name for name, bad in zip(names, flagged, strict=True) if bad][
            :LISTED
        ],
        "own_correlation_median": round(float(np.median(np.diag(correlations))), DECIMALS),
        "swapped_correlation_median": round(float(np.median(swapped)), DECIMALS),
        "mismatch_rule": MISMATCH_RULE,
    }


@register_probe("alignment")
class Alignment(Probe):
    """Per-second agreement of audio and visual event evidence on the annotated splits, and the
    swapped-pair mismatch detector."""

    def applies(self, params: Params) -> str | None:
        settings, encoders = params.eventness, params.embed.encoders
        if params.task.kind != "event":
            return f"task.kind {params.task.kind}: no per-second labels (task.kind event has)"
        if settings.audio_encoder not in encoders or settings.visual_encoder not in encoders:
            return (
                f"eventness.audio_encoder {settings.audio_encoder!r} and visual_encoder "
                f"{settings.visual_encoder!r} are not both in embed.encoders {list(encoders)}"
            )
        if encoder_class(encoders[settings.audio_encoder]).modality != "audio":
            return f"eventness.audio_encoder {settings.audio_encoder!r} does not embed audio"
        if encoders[settings.visual_encoder] != VISUAL_KIND:
            return (
                f"eventness.visual_encoder {settings.visual_encoder!r} is no {VISUAL_KIND} "
                "encoder: the visual evidence is a frames encoder's foreground share"
            )
        if eventness.METHODS[settings.method].needs_visual:
            return (
                f"eventness.method {settings.method} reads the video: its scores are no audio "
                "evidence (use an audio method: energy, audio_head, mil)"
            )
        return None

    def run(self, params: Params) -> ProbeOutput:
        tables = {split: evidence_table(params, split) for split in LABELLED}
        both = pd.concat(tables.values(), ignore_index=True)
        settings = params.eventness
        result = {
            "audio_evidence": (
                f"eventness scores of {settings.method} on {settings.audio_encoder} "
                f"({eventness_scores(settings.method).as_posix()})"
            ),
            "visual_evidence": (
                f"foreground share of {settings.visual_encoder} "
                f"({embedding_dir(settings.visual_encoder).as_posix()}, column {FOREGROUND})"
            ),
            "splits": list(LABELLED),
            "binarisation": BINARISATION,
            **agreement(both),
            "by_split": {split: agreement(table) for split, table in tables.items()},
            **mismatch(both),
        }
        line = (
            f"audio and picture agree on {result['agreement']:.3f} of {result['n_seconds']} "
            f"annotated seconds ({result['n_clips']} clips); {result['n_mismatched']} clip(s) "
            "obviously mismatched"
        )
        return ProbeOutput(result, line=line)
