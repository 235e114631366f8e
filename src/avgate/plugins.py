"""Plugins from other packages: every module named under the entry-point group `avgate.plugins`
is imported before a command reads its params, so that its `@register...` decorators run.

A package of your own declares its plugin modules in its pyproject.toml,

    [project.entry-points."avgate.plugins"]
    my_metrics = "my_package.metrics"

and, once installed in the project's environment, its metrics, gate statistics, gate criteria,
go/no-go checks, encoder kinds or dataset formats are there by name (docs/extending.md). Their
code is not in dvc.yaml's deps: add the module's file to the stages that use it.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

GROUP = "avgate.plugins"


def load() -> list[str]:
    """Import every plugin module of the group; the names of the modules imported."""
    loaded = []
    for point in sorted(entry_points(group=GROUP), key=lambda p: p.name):
        importlib.import_module(point.value.partition(":")[0])
        loaded.append(point.value)
    return loaded
