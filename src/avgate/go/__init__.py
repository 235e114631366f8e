"""Go/no-go checks: every criterion a plan must meet before compute is spent, declared once under
`checks:` in gates.yaml, run by the `go` stage and reported as one verdict.

Each check is a registered `GoCheck` (`go/base.py`: name, default phase, options, the evidence
files it reads, when it does not apply, how it judges); one module per family:

- `alignment` (event tasks with audio and frames; the `alignment` probe): `av_alignment`,
  `av_mismatch`;
- `data`: `files_load`, `class_imbalance`, `no_leakage`, `no_duplicates`;
- `modality` (audio-visual models): `audio_reliance`;
- `parity` (LoRA runs): `backbone_frozen`, `forward_equivalence`;
- `learning` (on the probes' findings): `tiny_overfit`, `resume_equal`, `memory_headroom`,
  `frozen_checksums`;
- `robustness` (audio-visual heads, from the probes): `audio_dependence`, `irrelevance_stress`,
  `gate_parity`, `gating_policy`;
- `scores`: `seed_std`, `calibration`.

A new check is one module (or one class in a family's module) and, for a new module, one import
line below; the contract test (tests/test_go_contract.py) runs it the day it is registered.
Nothing else lives here: `gating.spec` imports this package to read `checks:`, so every stage
that reads gates.yaml depends on it; `gating.go_verdict` turns the declared checks into the
verdict, its headline and its report.

>>> list(CHECKS)  # doctest: +NORMALIZE_WHITESPACE
['av_alignment', 'av_mismatch', 'files_load', 'class_imbalance', 'no_leakage',
 'no_duplicates', 'tiny_overfit', 'resume_equal', 'memory_headroom', 'frozen_checksums',
 'audio_reliance', 'backbone_frozen', 'forward_equivalence', 'audio_dependence',
 'irrelevance_stress', 'gate_parity', 'gating_policy', 'seed_std', 'calibration']
"""

from avgate.go import (  # noqa: F401 (they register)
    alignment,
    data,
    learning,
    modality,
    parity,
    robustness,
    scores,
)
from avgate.go.base import CHECKS, PHASES, CheckResult, Context, EvidenceError, GoCheck

__all__ = ["CHECKS", "PHASES", "CheckResult", "Context", "EvidenceError", "GoCheck"]
