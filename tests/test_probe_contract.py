"""The probe extension point: what `register_probe` refuses, what the `probe` stage writes for a
probe that applies and for one that does not, and dvc.yaml listing every probe's plot."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from avgate.config import Params
from avgate.layout.results import probe_path
from avgate.probes import PROBES, Probe, ProbeOutput, register_probe
from avgate.probes.base import plot_path
from avgate.profiles import profile_path
from avgate.stages import probe as stage
from tests.scratch import REPO


class Curve(Probe):
    """A throwaway probe with a plot; applies unless `REASON` is set."""

    plot_name = "throwaway_curve"
    plot_columns = ("x", "y")
    REASON: str | None = None
    COLUMNS: tuple[str, ...] = ("x", "y")

    def applies(self, params: Params) -> str | None:
        return self.REASON

    def run(self, params: Params) -> ProbeOutput:
        plot = pd.DataFrame({c: [1, 2] for c in self.COLUMNS})
        return ProbeOutput({"value": 0.5}, plot, {"seconds_inside": 1.5}, "value 0.5")


@pytest.fixture
def only(monkeypatch, tmp_path):
    """The stage sees only the probes passed to `install`, working in tmp_path."""
    monkeypatch.chdir(tmp_path)

    def install(**probes: type[Probe]) -> None:
        monkeypatch.setattr(stage, "PROBES", probes)
        for name, kind in probes.items():
            monkeypatch.setattr(kind, "name", name, raising=False)

    return install


def test_a_probe_that_applies_writes_its_findings_plot_and_timings(only, monkeypatch):
    only(curve=Curve)
    said: list[str] = []
    results = stage.run(Params(), said.append)
    assert results == {"curve": {"applies": True, "value": 0.5}}
    assert json.loads(probe_path("curve").read_text()) == results["curve"]
    assert pd.read_csv(plot_path(Curve)).to_dict("list") == {"x": [1, 2], "y": [1, 2]}
    assert json.loads(profile_path("probe/curve").read_text())["seconds_inside"] == 1.5
    assert said == ["probe curve: value 0.5 (reports/probe/curve.json)"]


def test_a_probe_that_does_not_apply_writes_its_reason_and_an_empty_plot(only, monkeypatch):
    monkeypatch.setattr(Curve, "REASON", "no audio here")
    only(curve=Curve)
    said: list[str] = []
    stage.run(Params(), said.append)
    assert json.loads(probe_path("curve").read_text()) == {
        "applies": False,
        "reason": "no audio here",
    }
    header = plot_path(Curve).read_text().strip()
    assert header == "x,y"  # the DVC output exists, with nothing to draw
    assert said == ["probe curve: not applicable (no audio here)"]


def test_a_plot_with_other_columns_than_declared_is_refused(only, monkeypatch):
    monkeypatch.setattr(Curve, "COLUMNS", ("x", "z"))
    only(curve=Curve)
    with pytest.raises(
        TypeError, match=r"probe curve: its plot must have the columns \['x', 'y'\]"
    ):
        stage.run(Params(), lambda line: None)


def test_register_probe_refuses_what_breaks_the_contract(monkeypatch):
    monkeypatch.setattr("avgate.probes.base.PROBES", dict(PROBES))
    with pytest.raises(TypeError, match="is not a Probe"):
        register_probe("plain")(type("Plain", (), {}))
    half = type("Half", (Probe,), {"plot_name": "half", "run": lambda self, p: None})
    with pytest.raises(TypeError, match="plot_name and plot_columns go together"):
        register_probe("half")(half)
    with pytest.raises(ValueError, match="probe 'overfit' is registered twice"):
        register_probe("overfit")(type("Again", (Probe,), {"run": lambda self, p: None}))


def test_dvc_yaml_lists_every_probe_plot_and_the_probe_folder_as_outputs_read_by_go():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    body = stages["probe"]
    outs = {next(iter(o)) if isinstance(o, dict) else o for o in body["outs"]}
    plots = {plot_path(kind).as_posix() for kind in PROBES.values() if kind.plot_name}
    assert outs == {"reports/probe", *plots}
    assert body["cmd"] == "avgate probe"
    assert "reports/probe" in stages["go"]["deps"]
