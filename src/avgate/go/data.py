"""Data checks: the files decode, the classes are not too lopsided, the split leaks nothing and
no clip has a near-copy on another side. They read what `ingest`, `split` and `audit` write.

>>> [check.name for check in (FilesLoad, ClassImbalance, NoLeakage, NoDuplicates)]
['files_load', 'class_imbalance', 'no_leakage', 'no_duplicates']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avgate.declare import bound, param
from avgate.go.base import (
    CheckResult,
    Context,
    EvidenceError,
    GoCheck,
    NoOptions,
    at_least,
    at_most,
    lookup,
    register_check,
)

INGEST = Path("metrics/ingest.json")
LEAKAGE = Path("metrics/leakage.json")
AUDIT = Path("metrics/audit.json")


@dataclass(frozen=True)
class FilesLoadOptions:
    min_ok_fraction: float = param(
        0.95, "the least share of the dataset's media files that decode", bound("[0, 1]")
    )


@register_check("files_load")
class FilesLoad(GoCheck):
    """The share of media files that ingest decoded (`n_ok / n_files` of metrics/ingest.json)
    must reach `min_ok_fraction`."""

    phase = "data"
    options_type = FilesLoadOptions
    example = {"min_ok_fraction": 0.95}

    def evidence(self, context: Context) -> tuple[Path, ...]:
        return (INGEST,)

    def run(self, context: Context) -> CheckResult:
        ingest = context.read(INGEST)
        ok, total = lookup(ingest, INGEST, "n_ok"), lookup(ingest, INGEST, "n_files")
        share = ok / total if total else 0.0
        what = f"{ok} of {total} files decode:"
        return at_least(share, self.options.min_ok_fraction, what, self.evidence(context))


@dataclass(frozen=True)
class ClassImbalanceOptions:
    max_ratio: float = param(
        5.0, "the largest class's clips over the smallest class's, at most", bound(">= 1")
    )


@register_check("class_imbalance")
class ClassImbalance(GoCheck):
    """Clips of the largest class over clips of the smallest must stay within `max_ratio`,
    counted over the clips in play (every split of metrics/leakage.json: after `data.labels`,
    `data.exclude_labels` and `split.rare_labels` chose the classes)."""

    phase = "data"
    options_type = ClassImbalanceOptions
    example = {"max_ratio": 5.0}

    def evidence(self, context: Context) -> tuple[Path, ...]:
        return (LEAKAGE,)

    def run(self, context: Context) -> CheckResult:
        per_split = lookup(context.read(LEAKAGE), LEAKAGE, "label_counts")
        counts: dict[str, int] = {}
        for split_counts in per_split.values():
            for label, n in split_counts.items():
                counts[label] = counts.get(label, 0) + n
        if not counts:
            raise EvidenceError(f"{LEAKAGE}: label_counts holds no clip; run `dvc repro split`")
        largest = max(counts, key=lambda label: (counts[label], label))
        smallest = min(counts, key=lambda label: (counts[label], label))
        ratio = counts[largest] / counts[smallest]
        what = f"{largest} ({counts[largest]} clips) / {smallest} ({counts[smallest]} clips) ="
        return at_most(ratio, self.options.max_ratio, what, self.evidence(context))


@register_check("no_leakage")
class NoLeakage(GoCheck):
    """No group (speaker, channel, video) and no identical file or decoded audio on two sides of
    the split (metrics/leakage.json). A split whose groups all hold one clip fails: zero overlap
    then proves nothing, and the detail says how to give the groups."""

    phase = "data"
    options_type = NoOptions
    example: dict = {}

    def evidence(self, context: Context) -> tuple[Path, ...]:
        return (LEAKAGE,)

    def run(self, context: Context) -> CheckResult:
        leakage = context.read(LEAKAGE)
        groups = sum(lookup(leakage, LEAKAGE, "group_overlap").values())
        content = sum(
            n for pairs in lookup(leakage, LEAKAGE, "duplicate_overlap").values()
            for n in pairs.values()
        )  # fmt: skip
        found = groups + content
        evidence = tuple(map(str, self.evidence(context)))
        groups_seen = lookup(leakage, LEAKAGE, "group_check")
        if groups_seen.get("blind") and not found:
            detail = (
                "UNKNOWN: every group holds one clip, so zero overlap proves nothing; fix: "
                f"{groups_seen.get('fix', '')}"
            )
            return CheckResult(None, 0.0, False, detail, evidence, "<=")
        detail = (
            f"{groups} group(s) and {content} identical file or audio pair(s) on two sides of "
            f"the split: {'leaky' if found else 'none'}"
        )
        return CheckResult(float(found), 0.0, found == 0, detail, evidence, "<=")


@dataclass(frozen=True)
class NoDuplicatesOptions:
    max_pairs: int = param(
        0, "the most clip pairs across splits the audit may find near-identical", bound(">= 0")
    )


@register_check("no_duplicates")
class NoDuplicates(GoCheck):
    """Pairs of clips on two sides of the split whose embeddings are near-identical (the audit's
    cosine threshold on standardised clip means: re-encoded or re-cut copies that hashes cannot
    see) must number at most `max_pairs`."""

    phase = "data"
    options_type = NoDuplicatesOptions
    example = {"max_pairs": 0}

    def evidence(self, context: Context) -> tuple[Path, ...]:
        return (AUDIT,)

    def run(self, context: Context) -> CheckResult:
        near = lookup(context.read(AUDIT), AUDIT, "near_duplicates")
        sides = {pair: lookup(near, AUDIT, pair, "pairs") for pair in near if "|" in pair}
        listed = ", ".join(f"{pair} {n}" for pair, n in sides.items())
        what = f"pairs at cosine >= {near.get('threshold')} ({listed}):"
        found = float(sum(sides.values()))
        return at_most(found, float(self.options.max_pairs), what, self.evidence(context))
