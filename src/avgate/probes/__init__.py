"""Probes: the evidence of the go/no-go checks that no training or evaluation step writes, each
computed by the `probe` stage from the trained workspace into reports/probe/<name>.json.

Each probe is a registered `Probe` (`probes/base.py`); one module per probe, imported below.

>>> sorted(PROBES) == sorted(set(PROBES))
True
"""

from avgate.probes import (  # noqa: F401 (they register)
    alignment,
    efficiency,
    frozen,
    items,
    overfit,
    policies,
    resume,
    stress,
)
from avgate.probes.base import PROBES, Probe, ProbeOutput, register_probe

__all__ = ["PROBES", "Probe", "ProbeOutput", "register_probe"]
