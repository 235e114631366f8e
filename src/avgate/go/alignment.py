"""Alignment checks: a clip's sound and picture must mark the same seconds as eventful, and no
more than a few clips may look like their audio belongs to another clip's video. They read the
`alignment` probe (reports/probe/alignment.json, `avgate.probes.alignment`), which does not
apply to clip tasks, to data without a frames encoder beside the audio, or to an eventness
method that reads the video; neither check applies then.

>>> AVAlignment.example, AVMismatch.example
({'min_agreement': 0.9}, {'max_share': 0.02})
"""

from __future__ import annotations

from dataclasses import dataclass

from avgate.declare import bound, param
from avgate.go.base import (
    CheckResult,
    Context,
    ProbeCheck,
    at_least,
    at_most,
    lookup,
    register_check,
)

PROBE = "alignment"


@dataclass(frozen=True)
class AVAlignmentOptions:
    min_agreement: float = param(
        0.9,
        "the least share of annotated seconds (train and val) whose audio and visual event "
        "calls agree",
        bound("[0, 1]"),
    )


@register_check("av_alignment")
class AVAlignment(ProbeCheck):
    """Per-second agreement of the audio evidence (eventness scores) and the visual evidence
    (foreground share), each cut per clip into event and background, must reach
    `min_agreement` on the annotated seconds of train and val."""

    phase = "data"
    probe = PROBE
    options_type = AVAlignmentOptions
    example = {"min_agreement": 0.9}

    def run(self, context: Context) -> CheckResult:
        data, path = self.findings(context)
        value = lookup(data, path, "agreement")
        seconds, clips = lookup(data, path, "n_seconds"), lookup(data, path, "n_clips")
        labels = (
            f"audio {lookup(data, path, 'audio_label_agreement'):.4g}, "
            f"visual {lookup(data, path, 'visual_label_agreement'):.4g}"
        )
        what = (
            f"audio and visual event calls agree (share of {seconds} annotated seconds of {clips} "
            f"train+val clips; with the labels: {labels}):"
        )
        return at_least(value, self.options.min_agreement, what, self.evidence(context))


@dataclass(frozen=True)
class AVMismatchOptions:
    max_share: float = param(
        0.02,
        "the largest share of clips whose own audio-video pair correlates no higher than the "
        "median of their pairs swapped with other clips",
        bound("[0, 1]"),
    )


@register_check("av_mismatch")
class AVMismatch(ProbeCheck):
    """The share of obviously mismatched clips must stay within `max_share`: clips whose audio
    evidence correlates with their own video's no better than with the median other clip's
    (the probe's `mismatch_rule`)."""

    phase = "data"
    probe = PROBE
    options_type = AVMismatchOptions
    example = {"max_share": 0.02}

    def run(self, context: Context) -> CheckResult:
        data, path = self.findings(context)
        share = lookup(data, path, "mismatched_share")
        count, clips = lookup(data, path, "n_mismatched"), lookup(data, path, "n_clips")
        named = lookup(data, path, "mismatched_clips")
        listed = f" ({', '.join(named[:5])}{', ...' if count > 5 else ''})" if named else ""
        what = (
            f"{count} of {clips} clips{listed} correlate with their own video no better than "
            "with the median swapped clip's (Pearson over seconds), share"
        )
        return at_most(share, self.options.max_share, what, self.evidence(context))
