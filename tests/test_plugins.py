"""Plugin modules of other packages (entry-point group `avgate.plugins`) load before a command
reads its params, so a metric, statistic, criterion, encoder kind or dataset format of your own
package is there by name without an edit to avgate."""

import sys
from importlib.metadata import EntryPoint

from avgate import cli, metrics, plugins

MODULE = '''
import numpy as np
from avgate import metrics

@metrics.register("always_half", metrics.MAXIMIZE, "labels", ("clip",))
def always_half(y_true, y_pred, classes):
    """Half, on any split."""
    return 0.5
'''


def test_an_entry_point_module_registers_before_the_command_reads_params(tmp_path, monkeypatch):
    (tmp_path / "my_plugins.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    point = EntryPoint("mine", "my_plugins", plugins.GROUP)
    monkeypatch.setattr(
        plugins, "entry_points", lambda group: [point] if group == plugins.GROUP else []
    )
    monkeypatch.chdir(tmp_path)
    try:
        assert cli.main(["--params", str(tmp_path / "missing.yaml"), "summary"]) == 1
        assert "always_half" in metrics.METRICS
        assert "always_half" in metrics.names("clip")
    finally:
        metrics.METRICS.pop("always_half", None)
        sys.modules.pop("my_plugins", None)


def test_no_entry_points_no_imports(monkeypatch):
    monkeypatch.setattr(plugins, "entry_points", lambda group: [])
    assert plugins.load() == []
