"""Throwaway plugins: for each kind of plugin, ONE new module, written to a temporary folder with no
other file edited, is imported, and the name it registers works end to end. The sections follow
docs/extending.md, one per kind of plugin: metrics, gate statistics, gate criteria, go/no-go
checks, probes (then encoders, dataset formats and training modes). Each uses the `plugin`
fixture, which writes the module, imports it and, afterwards, unregisters what it registered."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from types import ModuleType

import numpy as np
import pytest

from avgate import metrics, stats
from avgate.config import Params
from avgate.declare import ConfigError
from avgate.gating.criteria import CRITERIA
from avgate.gating.go_verdict import judge as go_judge
from avgate.gating.spec import parse_spec
from avgate.gating.verdict import judge
from avgate.go import CHECKS, Context
from avgate.go.base import probe_result
from avgate.probes import PROBES
from avgate.stages import probe

Load = Callable[..., ModuleType]


@pytest.fixture
def plugin(tmp_path, monkeypatch) -> Iterator[Load]:
    """`load(module_name, source, *registries)`: write `source` as `<tmp>/<module_name>.py`, put
    the folder on sys.path and import it; on teardown each registry (a dict) gets back the
    entries it had before the import and the module is forgotten."""
    saved: list[tuple[dict, dict]] = []
    names: list[str] = []

    def load(name: str, source: str, *registries: dict) -> ModuleType:
        saved.extend((registry, dict(registry)) for registry in registries)
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path))
        names.append(name)
        return importlib.import_module(name)

    yield load
    for registry, before in reversed(saved):
        registry.clear()
        registry.update(before)
    for name in names:
        sys.modules.pop(name, None)


PLAN = {
    "baseline": "v1", "alpha_correction": "bonferroni", "min_groups": 2,
    "selection": {"split": "val", "seeds": [0, 1, 2], "rule": "max_mean_delta"},
}  # fmt: skip
STAGE = {
    "name": "quick", "split": "test", "seeds": [0, 1, 2, 3, 4, 5], "statistic": "paired_t",
    "alternative": "greater", "alpha": 0.1, "looks": 1, "min_delta": 0.0,
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Metrics: `@metrics.register(name, direction, needs, kinds)` on a function (docs/extending.md)
# ---------------------------------------------------------------------------------------------

ERROR_RATE = """
    import numpy as np

    from avgate import metrics


    def wrong(y_true, y_pred):
        return (np.asarray(y_true) != np.asarray(y_pred)).astype(np.float64)


    @metrics.register("error_rate", metrics.MINIMIZE, "labels", ("clip", "event"), per_sample=wrong)
    def error_rate(y_true, y_pred, classes):
        \"\"\"Share of rows whose predicted label is wrong; lower is better.\"\"\"
        return float(wrong(y_true, y_pred).mean())
"""


def test_a_metric_module_is_a_primary_metric_that_validates_scores_and_gates(plugin):
    module = plugin("throwaway_error_rate", ERROR_RATE, metrics.METRICS)
    params = Params.from_dict(
        {"task": {"kind": "clip"}, "evaluate": {"primary_metric": "error_rate"}}
    )
    metrics.check_primary(params.task.kind, params.evaluate.primary_metric)  # what train checks
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    scores = metrics.score("clip", ["a", "b", "b"], probs, ["a", "b"])
    assert scores["error_rate"] == pytest.approx(1 - scores["accuracy"])
    spec = parse_spec({**PLAN, "primary_metric": "error_rate", "stages": [STAGE]}, "gates.yaml")
    assert spec.direction == "minimize"  # the metric's own sign, not restated in gates.yaml
    errors = np.array([0.30, 0.31, 0.29, 0.30, 0.32, 0.28])
    verdict = judge(
        spec.stages[0], spec.direction, errors, errors - [0.02, 0.03, 0.01, 0.02, 0.025, 0.015]
    )
    assert verdict.passed and verdict.statistics["delta"] == "baseline - candidate"
    with pytest.raises(ConfigError) as err:
        parse_spec(
            {**PLAN, "primary_metric": "error_rate", "direction": "maximize", "stages": [STAGE]},
            "gates.yaml",
        )
    assert "contradicts error_rate's direction (minimize) declared in" in str(err.value)
    assert module.__file__.endswith(str(err.value).split("declared in ")[1].split(";")[0])


# ---------------------------------------------------------------------------------------------
# Gate statistics: a `stats.PairedStatistic` subclass under `@stats.register_statistic(name)`
# ---------------------------------------------------------------------------------------------

SIGN_TEST = """
    import numpy as np
    from scipy import stats as sps

    from avgate import stats


    @stats.register_statistic("sign_test")
    class SignTest(stats.PairedStatistic):
        \"\"\"Exact binomial sign test: how many of the nonzero deltas are positive.\"\"\"

        title = "exact sign test"

        def test(self, deltas, alternative="greater"):
            d = np.asarray(deltas, dtype=np.float64)
            kept = d[d != 0]
            if len(kept) == 0:
                return stats.TestResult(self.title, alternative, 0, 0.0, 1.0, 1.0)
            positive = int(np.sum(kept > 0))
            p = sps.binomtest(positive, len(kept), 0.5, alternative=alternative).pvalue
            floor = self.min_p_value(len(kept), alternative)
            return stats.TestResult(self.title, alternative, len(kept), positive, float(p), floor)

        def min_p_value(self, n, alternative):
            return min(1.0, (2 if alternative == "two-sided" else 1) / 2.0**n) if n else 1.0
"""


def test_a_statistic_module_is_a_stage_statistic_that_parses_and_judges(plugin):
    plugin("throwaway_sign_test", SIGN_TEST, stats.STATISTICS)
    stage = {**STAGE, "statistic": "sign_test"}
    spec = parse_spec({**PLAN, "primary_metric": "segment_accuracy", "stages": [stage]}, "x")
    base = np.full(6, 0.8)
    verdict = judge(
        spec.stages[0], spec.direction, base, base + [0.02, 0.01, 0.03, 0.02, 0.01, -0.01]
    )
    assert verdict.statistics["test"]["test"] == "exact sign test"
    assert verdict.statistics["test"]["p_value"] == pytest.approx(7 / 64)
    assert [c.name for c in verdict.criteria] == ["min_delta", "p_value"]
    with pytest.raises(ConfigError, match="an exact one-sided test \\(sign_test\\) with 3 seeds"):
        parse_spec({**PLAN, "primary_metric": "segment_accuracy",
                    "stages": [{**stage, "seeds": [0, 1, 2]}]}, "gates.yaml")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Gate criteria: a `GateCriterion` subclass under `@register_criterion(name)`, its stage keys a
# dataclass of `avgate.declare.param` fields
# ---------------------------------------------------------------------------------------------

WORST_SEED = """
    from dataclasses import dataclass

    from avgate.declare import param
    from avgate.gating.criteria import GateCriterion, at_least, register_criterion
    from avgate.gating.verdict import Judged


    @dataclass(frozen=True)
    class WorstSeedOptions:
        worst_seed_min: float | None = param(
            None, "the least per-seed delta any seed may show (null: not checked)"
        )


    @register_criterion("worst_seed")
    class WorstSeed(GateCriterion):
        \"\"\"No seed's delta may fall below `worst_seed_min`.\"\"\"

        options_type = WorstSeedOptions
        example = {"worst_seed_min": -0.02}

        def applies(self):
            return self.options.worst_seed_min is not None

        def judge(self, stage, evidence):
            worst = float(evidence.deltas.min())
            bound = self.options.worst_seed_min
            return Judged((at_least(self.name, worst, bound, "worst seed's delta"),))
"""


def test_a_criterion_module_adds_a_stage_key_that_parses_and_judges(plugin):
    plugin("throwaway_worst_seed", WORST_SEED, CRITERIA)
    plan = {**PLAN, "primary_metric": "segment_accuracy"}
    before = parse_spec({**plan, "stages": [STAGE]}, "gates.yaml")
    stage = {**STAGE, "worst_seed_min": -0.005}
    spec = parse_spec({**plan, "stages": [stage]}, "gates.yaml")
    assert [c.name for c in spec.stages[0].criteria] == ["min_delta", "p_value", "worst_seed"]
    assert spec.hash != before.hash
    base = np.full(6, 0.8)
    verdict = judge(
        spec.stages[0], spec.direction, base, base + [0.03, 0.02, 0.03, 0.02, 0.03, -0.01]
    )
    worst = verdict.criteria[-1]
    assert (worst.name, worst.passed, worst.value) == ("worst_seed", False, pytest.approx(-0.01))
    assert worst.detail == "worst seed's delta -0.01 < -0.005"
    with pytest.raises(
        ConfigError, match=r"^gates.yaml: stages\[quick\].worst_seed_min must be a number"
    ):
        parse_spec({**plan, "stages": [{**stage, "worst_seed_min": "low"}]}, "gates.yaml")


def test_a_criterion_module_changes_no_existing_plan_hash(plugin):
    plan = {**PLAN, "primary_metric": "segment_accuracy", "stages": [STAGE]}
    before = parse_spec(plan, "gates.yaml").hash
    plugin("throwaway_worst_seed", WORST_SEED, CRITERIA)
    assert parse_spec(plan, "gates.yaml").hash == before


def test_a_stage_names_the_new_statistic_and_uses_the_new_criterion_together(plugin):
    plugin("throwaway_sign_test", SIGN_TEST, stats.STATISTICS)
    plugin("throwaway_worst_seed", WORST_SEED, CRITERIA)
    stage = {**STAGE, "statistic": "sign_test", "worst_seed_min": -0.02}
    spec = parse_spec({**PLAN, "primary_metric": "segment_accuracy", "stages": [stage]}, "x")
    base = np.full(6, 0.8)
    verdict = judge(
        spec.stages[0], spec.direction, base, base + [0.01, 0.02, 0.01, 0.03, 0.02, 0.01]
    )
    assert verdict.passed
    assert [c.name for c in verdict.criteria] == ["min_delta", "p_value", "worst_seed"]
    assert verdict.statistics["test"]["test"] == "exact sign test"


# ---------------------------------------------------------------------------------------------
# Go/no-go checks: a `GoCheck` subclass under `@register_check(name)`, its thresholds a dataclass
# of `avgate.declare.param` fields, its evidence the files it reads
# ---------------------------------------------------------------------------------------------

TRAINABLE_BUDGET = """
    from dataclasses import dataclass
    from pathlib import Path

    from avgate.declare import REQUIRED, bound, param
    from avgate.go.base import GoCheck, at_most, lookup, register_check

    EFFICIENCY = Path("metrics/efficiency.json")


    @dataclass(frozen=True)
    class TrainableBudgetOptions:
        max_trainable: int = param(REQUIRED, "the most trainable parameters", bound(">= 1"))


    @register_check("trainable_budget")
    class TrainableBudget(GoCheck):
        \"\"\"The model trains at most `max_trainable` parameters.\"\"\"

        phase = "efficiency"
        options_type = TrainableBudgetOptions
        example = {"max_trainable": 100_000}

        def evidence(self, context):
            return (EFFICIENCY,)

        def run(self, context):
            found = lookup(context.read(EFFICIENCY), EFFICIENCY, "trainable_parameters")
            threshold = float(self.options.max_trainable)
            return at_most(float(found), threshold, "trainable parameters", (EFFICIENCY,))
"""


def test_a_check_module_is_a_go_check_a_plan_declares_and_the_verdict_judges(plugin, tmp_path):
    plugin("throwaway_trainable_budget", TRAINABLE_BUDGET, CHECKS)
    plan = {**PLAN, "primary_metric": "segment_accuracy", "stages": [STAGE]}
    before = parse_spec(plan, "gates.yaml")
    spec = parse_spec({**plan, "checks": {"trainable_budget": {"max_trainable": 1000}}}, "x")
    assert spec.hash != before.hash and spec.checks[0].phase == "efficiency"
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/efficiency.json").write_text('{"trainable_parameters": 1200}')
    details = go_judge(spec.checks, Context((0,), tmp_path))
    assert details["verdict"] == "NO-GO" and details["failed"] == ["trainable_budget"]
    assert details["checks"][0]["detail"] == "trainable parameters 1200 > 1000"
    assert details["checks"][0]["evidence"] == ["metrics/efficiency.json"]
    with pytest.raises(
        ConfigError, match=r"^x: checks.trainable_budget.max_trainable must be >= 1"
    ):
        parse_spec({**plan, "checks": {"trainable_budget": {"max_trainable": 0}}}, "x")


SEED_COUNT = """
    from avgate.probes.base import Probe, ProbeOutput, register_probe


    @register_probe("seed_count")
    class SeedCount(Probe):
        \"\"\"How many seeds the plan trains (evidence a check could judge).\"\"\"

        def applies(self, params):
            return None if len(params.train.seeds) > 1 else "one seed: nothing to count"

        def run(self, params):
            n = len(params.train.seeds)
            return ProbeOutput({"seeds": n}, line=f"{n} seeds")
"""


def test_a_probe_module_is_run_by_the_probe_stage_and_read_by_checks(plugin, tmp_path, monkeypatch):
    plugin("throwaway_seed_count", SEED_COUNT, PROBES)
    monkeypatch.setattr(probe, "PROBES", {"seed_count": PROBES["seed_count"]})
    monkeypatch.chdir(tmp_path)
    said: list[str] = []
    probe.run(Params.from_dict({"train": {"seeds": [0, 1, 2]}}), said.append)
    assert said == ["probe seed_count: 3 seeds (reports/probe/seed_count.json)"]
    assert probe_result(Context((0, 1, 2)), "seed_count") == ({"applies": True, "seeds": 3}, None)
    probe.run(Params.from_dict({"train": {"seeds": [0]}}), said.append)
    expected = "reports/probe/seed_count.json: one seed: nothing to count"
    assert probe_result(Context((0,)), "seed_count") == (None, expected)


def test_the_registries_are_as_before_after_a_throwaway_plugin():
    assert "error_rate" not in metrics.METRICS and "sign_test" not in stats.STATISTICS
    assert "worst_seed" not in CRITERIA and "trainable_budget" not in CHECKS
    assert "seed_count" not in PROBES


# ---------------------------------------------------------------------------------------------
# Encoders: an `Encoder` subclass under `@register(kind)`, its options a dataclass of
# `avgate.declare.param` fields in the same module; `embed.encoders` names it (name: kind)
# ---------------------------------------------------------------------------------------------

LOUDNESS = """
    from dataclasses import dataclass

    import numpy as np

    from avgate import media
    from avgate.declare import bound, param
    from avgate.encoders.base import Encoder, fit_waveform, register


    @dataclass(frozen=True)
    class LoudnessOptions:
        sample_rate: int = param(16000, "audio is resampled to this rate (Hz)", bound(">= 1"))
        floor_db: float = param(-100.0, "the level of silence (dB)", bound("[-200, 0]"))


    @register("loudness")
    class Loudness(Encoder):
        \"\"\"Each second's RMS level in dB: one column.\"\"\"

        options_type = LoudnessOptions
        modality = "audio"
        dim = 1

        def load(self, path, n_seconds):
            rate = self.options.sample_rate
            return fit_waveform(media.decode_audio(path, rate), n_seconds * rate)

        def embed(self, batch):
            rate, out = self.options.sample_rate, []
            for wave in batch:
                rms = np.sqrt(np.mean(wave.reshape(-1, rate).astype(np.float64) ** 2, axis=1))
                db = np.maximum(20 * np.log10(np.maximum(rms, 1e-12)), self.options.floor_db)
                out.append(db[:, None].astype(np.float32))
            return out
"""


def test_an_encoder_module_is_a_kind_that_params_name_and_the_embed_stage_runs(plugin, tmp_path):
    import soundfile

    from avgate.encoders.base import ENCODERS
    from avgate.encoders.registry import build
    from avgate.stages import embed

    plugin("throwaway_loudness", LOUDNESS, ENCODERS)
    section = {"encoders": {"logmel": "logmel", "loud": "loudness"}, "logmel": {},
               "loud": {"floor_db": -60}}  # fmt: skip
    params = Params.from_dict({"embed": section})
    encoder = build("loud", params.embed)
    assert (encoder.name, encoder.kind, encoder.modality, encoder.dim) == ("loud", "loudness",
                                                                            "audio", 1)  # fmt: skip
    assert encoder.identity() == {"encoder": "loudness", "sample_rate": 16000, "floor_db": -60.0}
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    soundfile.write(tmp_path / "clip.wav", np.concatenate([tone, np.zeros(16000)]), 16000)
    rows = encoder.embed_seconds(tmp_path / "clip.wav", 2)
    np.testing.assert_allclose(rows[:, 0], [20 * np.log10(0.5 / np.sqrt(2)), -60.0], atol=1e-3)
    staged = {}  # the embed stage's own loader and batching, unchanged
    embed.embed_clips([str(tmp_path / "clip.wav")], [2], encoder, staged.__setitem__, 0, 64, "t")
    np.testing.assert_array_equal(staged[0], rows)
    with pytest.raises(ConfigError, match=r"^params.yaml: embed\.loud\.floor_db must lie in"):
        build("loud", Params.from_dict({"embed": {**section, "loud": {"floor_db": 3}}}).embed)


def test_the_encoder_registry_is_as_before_after_a_throwaway_kind():
    from avgate.encoders.base import ENCODERS

    assert "loudness" not in ENCODERS


# ---------------------------------------------------------------------------------------------
# Dataset formats: a `DatasetFormat` subclass under `@register(name)`, its options a frozen
# dataclass of `avgate.declare.param` fields (the section `data.<name>`); `data.format` names it
# ---------------------------------------------------------------------------------------------

LISTING = """
    from dataclasses import dataclass

    import pandas as pd

    from avgate.datasets.base import DatasetFormat, register
    from avgate.datasets.checks import (
        DatasetError,
        Rejected,
        clip_id_of,
        make_records,
        read_text,
        relative_path,
    )
    from avgate.declare import NOT_EMPTY, param


    @dataclass(frozen=True)
    class ListingOptions:
        listing: str = param(
            "listing.txt", "the text file of `<label> <file>` lines, in data/raw/<name>", NOT_EMPTY
        )


    @register("listing")
    class Listing(DatasetFormat):
        \"\"\"clip_id, path, label, group (the file's folder) of each `<label> <file>` line.\"\"\"

        layout = "a text file (data.listing.listing) of `<label> <file>` lines, <group>/<file>"
        group_fix = "put each speaker's or recording's files in a folder of its own"
        options_type = ListingOptions

        def load(self, root, options):
            source = root / options.listing
            if not source.is_file():
                raise DatasetError(f"{source}: not found; a listing dataset needs {self.layout}")
            rows, rejected = [], []
            for number, line in enumerate(read_text(source).splitlines(), 1):
                if not line.strip():
                    continue
                label, _, file = line.strip().partition(" ")
                try:
                    relative = relative_path(file.strip())
                except ValueError as error:
                    rejected.append(Rejected(str(source), number, str(error)))
                    continue
                clip_id = clip_id_of(relative)
                group = relative.parent.as_posix() if len(relative.parts) > 1 else clip_id
                rows.append((clip_id, str(root / relative), label, group))
            frame = pd.DataFrame(rows, columns=["clip_id", "path", "label", "group"])
            return make_records(frame, [], rejected)
"""


def write_listing(root, name: str):
    """`<group>/<label>_<take>.wav` tones (2 labels x 3 groups x 2 takes) and the listing file
    `name` of their `<label> <file>` lines; returns the records the format should give."""
    import pandas as pd

    from tests import formats

    lines, rows = [], []
    for label, group, take in np.ndindex(2, 3, 2):
        file = f"{formats.GROUPS[group]}/{formats.LABELS[label]}_{take}.wav"
        formats.write_tone(root / file, 220.0 * (label + 1) + 20.0 * group + 5.0 * take)
        lines.append(f"{formats.LABELS[label]} {file}")
        rows.append((file[:-4], str(root / file), formats.LABELS[label], formats.GROUPS[group]))
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text("\n".join(lines) + "\n")
    frame = pd.DataFrame(rows, columns=["clip_id", "path", "label", "group"])
    return frame.sort_values("clip_id", ignore_index=True)


def test_a_format_module_is_a_data_format_that_params_name_and_validate(plugin):
    from avgate.datasets.base import FORMATS
    from avgate.datasets.registry import check_sections, options_of

    data = {"name": "clips", "format": "listing", "listing": {"listing": "lists/all.txt"}}
    with pytest.raises(ConfigError, match="data.format names unknown dataset format 'listing'"):
        check_sections("listing", {"listing": {}})  # before the module: no such format
    module = plugin("throwaway_listing", LISTING, FORMATS)
    params = Params.from_dict({"data": data})
    assert params.data.format == "listing"
    assert params.data.options == {"listing": {"listing": "lists/all.txt"}}
    assert check_sections(params.data.format, params.data.options) == []  # what ingest checks
    assert options_of("listing", params.data.options["listing"]) == module.ListingOptions(
        "lists/all.txt"
    )
    assert options_of("listing", {}).listing == "listing.txt"
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['lisitng'\] in data\.listing"):
        check_sections("listing", {"listing": {"lisitng": "all.txt"}})
    with pytest.raises(
        ConfigError, match=r"^params.yaml: data\.listing\.listing must not be empty"
    ):
        check_sections("listing", {"listing": {"listing": ""}})
    assert check_sections("csv", {"csv": {}, "listing": {"listing": "all.txt"}}) == [
        "data.listing.listing 'all.txt' is ignored: it applies to data.format listing, not csv"
    ]


def test_a_format_module_reads_a_fixture_through_load_records(plugin, tmp_path):
    from avgate.datasets import DatasetError, Rejected, load_records
    from avgate.datasets.base import FORMATS
    from tests import formats

    plugin("throwaway_listing", LISTING, FORMATS)
    root = tmp_path / "clips"
    expected = write_listing(root, "lists/all.txt")
    before = formats.snapshot(root)
    records = load_records("listing", root, listing="lists/all.txt")
    assert records.frame.equals(expected)
    assert (records.warnings, records.rejected) == ([], [])
    assert formats.snapshot(root) == before  # never writes under the root
    with open(root / "lists/all.txt", "a") as stream:
        stream.write("dog ../elsewhere.wav\n")  # the 13th line, left out alone
    records = load_records("listing", root, listing="lists/all.txt")
    assert len(records.frame) == len(expected)
    assert records.rejected == [
        Rejected(
            str(root / "lists/all.txt"), 13,
            "'../elsewhere.wav' contains '..'; paths must stay inside the dataset root",
        )
    ]  # fmt: skip
    with pytest.raises(DatasetError, match=r"listing\.txt: not found; a listing dataset needs"):
        load_records("listing", root)  # the default listing.txt is not there


def test_the_ingest_stage_runs_unchanged_on_a_format_module(plugin, tmp_path, monkeypatch):
    import pandas as pd

    from avgate.datasets.base import FORMATS
    from avgate.stages import ingest
    from tests import formats
    from tests.conftest import write_params

    plugin("throwaway_listing", LISTING, FORMATS)
    project = tmp_path / "project"
    root = project / "data/raw/clips"
    expected = write_listing(root, "clips.txt")
    settings = {"data": {"name": "clips", "format": "listing", "listing": {"listing": "clips.txt"}},
                "task": {"kind": "clip"}, "embed": {"encoders": {"logmel": "logmel"}},
                "evaluate": {"primary_metric": "accuracy"}}  # fmt: skip
    monkeypatch.chdir(project)
    params = write_params(project, settings)
    before = formats.snapshot(root)
    report = ingest.run(params)
    assert report["n_failed"] == 0 and report["n_ok"] == len(expected) == 12
    manifest = pd.read_parquet(project / "data/interim/clips/manifest.parquet")
    assert manifest["clip_id"].tolist() == expected["clip_id"].tolist()
    assert manifest["label"].tolist() == expected["label"].tolist()
    assert manifest["group"].tolist() == expected["group"].tolist()
    assert formats.snapshot(root) == before  # data/raw is never written


def test_the_format_registry_is_as_before_after_a_throwaway_format():
    from avgate.datasets.base import FORMATS

    assert "listing" not in FORMATS
    assert all(cls.__module__.startswith("avgate.datasets.") for cls in FORMATS.values())


# ---------------------------------------------------------------------------------------------
# Training modes: a section to come (docs/extending.md)
# ---------------------------------------------------------------------------------------------
