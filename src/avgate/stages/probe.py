"""`probe`: the evidence of the go/no-go checks that the training and evaluation steps do not
write, computed from the trained workspace (models/, the embeddings, the splits).

Every registered probe (`avgate.probes`) writes reports/probe/<name>.json: its findings, or
`{"applies": false, "reason": ...}` when it does not apply to this workspace (the checks that
read it are then listed as not applicable). A probe's plot goes to plots/<plot_name>.csv; its
wall-clock timings go to data/profiles/probe/, outside every DVC output, so that dvc.lock stays
reproducible on any machine.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from avgate.config import Params
from avgate.files import write_csv, write_json
from avgate.layout.results import APPLIES, PROBE_DIR, probe_path
from avgate.probes import PROBES
from avgate.probes.base import plot_path
from avgate.profiles import recorded


def run(params: Params, say: Callable[[str], None] = print) -> dict[str, dict]:
    """Run every registered probe; write its files; return each one's JSON content by name."""
    results: dict[str, dict] = {}
    PROBE_DIR.mkdir(parents=True, exist_ok=True)  # a DVC output even when no probe is registered
    for name, kind in PROBES.items():
        with recorded(f"probe/{name}") as profile:
            probe = kind()
            reason = probe.applies(params)
            if reason is not None:
                result = {APPLIES: False, "reason": reason}
                if kind.plot_name:  # the plot is a DVC output: an empty table with its header
                    write_csv(pd.DataFrame(columns=list(kind.plot_columns)), plot_path(kind))
                say(f"probe {name}: not applicable ({reason})")
            else:
                output = probe.run(params)
                result = {APPLIES: True, **output.result}
                if kind.plot_name:
                    if output.plot is None or list(output.plot.columns) != list(kind.plot_columns):
                        raise TypeError(
                            f"probe {name}: its plot must have the columns "
                            f"{list(kind.plot_columns)}"
                        )
                    write_csv(output.plot, plot_path(kind))
                profile.update(output.timings)
                say(f"probe {name}: {output.line or 'done'} ({probe_path(name)})")
            write_json(probe_path(name), result)
            results[name] = result
    return results
