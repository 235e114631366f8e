"""`gate`: the candidate in the workspace against the pinned baseline, one stage of `gates.yaml`.

`gate.stage: selection` (the default) compares validation scores per seed with the baseline's
and touches neither the test split nor the ledger. A `gates.yaml` stage name (`quick_test`,
`full_test`) runs that stage: the ledger is verified and asked whether the candidate line may
look at the test split again; both sides' predictions are read (the baseline's at its pinned
revision, through DVC) and must cover the stage's seeds with the same samples in the same order;
then every statistic and criterion is computed, the look is appended to the ledger whatever the
outcome, and `metrics/gate.json`, `reports/gate.md` and `plots/gate_deltas.csv` are written.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from avgate import stats
from avgate.config import Params
from avgate.files import atomic_path, read_json, write_csv, write_json
from avgate.gating import ledger, selection
from avgate.gating.diagnostics import worsening
from avgate.gating.pairing import UnpairedError, check_paired, check_seeds
from avgate.gating.report import markdown
from avgate.gating.revisions import RevisionError, Snapshot, git, resolve
from avgate.gating.spec import GateSpec, GateStage, load_spec
from avgate.gating.verdict import CI_CONFIDENCE, judge, to_dict
from avgate.stages import StageError
from avgate.stages.inputs import LOGIT_PREFIX, predictions_dir
from avgate.stages.summarize import EVAL_METRICS

SPEC = Path("gates.yaml")
LEDGER = Path("gates/ledger.jsonl")
GATE_METRICS = Path("metrics/gate.json")
GATE_REPORT = Path("reports/gate.md")
GATE_PLOT = Path("plots/gate_deltas.csv")
SELECTION = "selection"
POWER = 0.8
PER_SAMPLE_METRICS = ("segment_accuracy", "accuracy")  # means of a per-row 0/1 score


class Side:
    """One run's per-seed predictions and `metrics.json`, read by `read(path) -> bytes`."""

    def __init__(self, read: Callable[[str], bytes]) -> None:
        self._read = read

    def table(self, seed: int, split: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self._read(f"{predictions_dir(seed)}/{split}.parquet")))

    def metrics(self, seed: int) -> dict:
        return json.loads(self._read(f"{predictions_dir(seed)}/metrics.json"))


def run(params: Params) -> dict:
    """Run the gate stage named by `gate.stage`; returns what was written to metrics/gate.json."""
    spec = load_spec(SPEC)
    if params.gate.stage == SELECTION:
        return _selection(spec)
    stage = _stage(spec, params.gate.stage)
    if stage.split != "test":
        return _look(params, spec, stage)
    with ledger.locked(LEDGER):
        _check_ledger(spec, stage, params.gate.candidate)
        return _look(params, spec, stage)


def _look(params: Params, spec: GateSpec, stage: GateStage) -> dict:
    """Compare the paired runs at `stage`; a test-split look is recorded whatever happens."""
    looks_at_test = stage.split == "test"
    baseline = _baseline(spec, required=True)
    base_eval = json.loads(_read_baseline(baseline, str(EVAL_METRICS), stage))
    check_seeds(base_eval["seeds"], params.train.seeds, list(stage.seeds), stage.name)
    sides = Side(lambda path: _read_baseline(baseline, path, stage)), Side(_read_workspace)
    tables = _paired_tables(stage, *sides)
    try:
        result = _evaluate(params, spec, stage, baseline, tables, sides)
    except Exception:
        if looks_at_test:
            _record(spec, stage, params.gate.candidate, "error")
        raise
    if looks_at_test:
        entry = _record(spec, stage, params.gate.candidate, result["decision"])
        used = ledger.attempts(ledger.read(LEDGER), params.gate.candidate, stage.name)
        result["ledger"] = {
            "path": str(LEDGER),
            "index": entry.index,
            "hash": entry.hash,
            "attempt": used,
            "max_attempts": spec.max_attempts,
        }
    _write(result)
    return result


def _read_workspace(path: str) -> bytes:
    return Path(path).read_bytes()


def _read_baseline(baseline: Snapshot, path: str, stage: GateStage) -> bytes:
    try:
        return baseline.read_bytes(path)
    except RevisionError as error:
        raise StageError(f"gate {stage.name}: {error}") from None


def _stage(spec: GateSpec, name: str) -> GateStage:
    for stage in spec.stages:
        if stage.name == name:
            return stage
    known = [SELECTION, *(s.name for s in spec.stages)]
    raise StageError(
        f"params.yaml: gate.stage {name!r} is not a stage of {SPEC}; use one of {known}"
    )


def _check_ledger(spec: GateSpec, stage: GateStage, candidate: str) -> None:
    if not candidate:
        raise StageError(
            f"params.yaml: gate.candidate is empty; a look at the test split ({stage.name}) is "
            f"recorded in {LEDGER} under a candidate line: set -S gate.candidate=<name>"
        )
    try:
        entries = ledger.verify(LEDGER)
        ledger.check_allowed(
            entries,
            candidate=candidate,
            spec_hash=spec.hash,
            stage=stage.name,
            max_attempts=spec.max_attempts,
        )
    except ledger.LedgerError as error:
        raise StageError(f"{LEDGER}: {error}") from None


def _baseline(spec: GateSpec, required: bool) -> Snapshot | None:
    commit = resolve(spec.baseline)
    if commit is None:
        if not required:
            return None
        raise StageError(
            f"{SPEC}: baseline {spec.baseline!r} is not a git revision here; tag the baseline's "
            f"commit (`git tag -a {spec.baseline} <commit> -m ...`) or fetch the tags"
        )
    return Snapshot(spec.baseline, commit)


def _paired_tables(stage: GateStage, baseline: Side, candidate: Side) -> dict:
    """Both sides' tables per seed; UnpairedError unless ids and labels agree seed by seed."""
    tables = {}
    for seed in stage.seeds:
        pair = baseline.table(seed, stage.split), candidate.table(seed, stage.split)
        check_paired(*pair, f"seed {seed} {stage.split}")
        tables[seed] = pair
    return tables


def _correct(table: pd.DataFrame) -> np.ndarray:
    columns = [c for c in table.columns if c.startswith(LOGIT_PREFIX)]
    classes = np.array([c.removeprefix(LOGIT_PREFIX) for c in columns])
    return (classes[table[columns].to_numpy().argmax(axis=1)] == table["label"].to_numpy()) * 1.0


def _scores(per_seed: list[dict], split: str, metric: str, side: str) -> np.ndarray:
    try:
        return np.array([m[split][metric] for m in per_seed], dtype=np.float64)
    except KeyError:
        raise StageError(
            f"{SPEC}: primary_metric {metric!r} is not in the {side}'s {split} metrics; "
            "choose a metric that evaluate computes for this task kind"
        ) from None


def _evaluate(
    params: Params,
    spec: GateSpec,
    stage: GateStage,
    baseline: Snapshot,
    tables: dict,
    sides: tuple[Side, Side],
) -> dict:
    """Every statistic and criterion of `stage` on the paired tables, as metrics/gate.json."""
    seeds = list(stage.seeds)
    base_metrics, cand_metrics = ([side.metrics(s) for s in seeds] for side in sides)
    metric = spec.primary_metric
    base = _scores(base_metrics, stage.split, metric, "baseline")
    cand = _scores(cand_metrics, stage.split, metric, "candidate")
    per_sample, clusters = None, None
    if stage.ci_low_min is not None:
        if metric not in PER_SAMPLE_METRICS:
            raise StageError(
                f"{SPEC}: stages[{stage.name}].ci_low_min needs a primary metric that is a mean "
                f"over samples ({', '.join(PER_SAMPLE_METRICS)}); {metric!r} is not: remove it"
            )
        per_sample = tuple(np.stack([_correct(tables[s][i]) for s in seeds]) for i in (0, 1))
        clusters = tables[seeds[0]][1]["clip_id"].to_numpy()
    diagnostics = {
        name: worsening(name, base_metrics, cand_metrics) for name in stage.non_inferiority
    }
    verdict = judge(
        stage,
        spec.direction,
        base,
        cand,
        per_sample,
        clusters,
        diagnostics,
        n_resamples=params.gate.n_resamples,
    )
    return _result(params, spec, stage, baseline, tables, base, cand, verdict)


def _interval(verdict_stats: dict, deltas: np.ndarray) -> dict | None:
    """The bootstrap interval when the stage asked for one, else the t interval of the mean."""
    if "bootstrap" in verdict_stats:
        return verdict_stats["bootstrap"]
    if len(deltas) < 2:
        return None
    mean, sem = float(deltas.mean()), float(sps.sem(deltas))
    low, high = (
        (mean, mean) if sem == 0 else sps.t.interval(CI_CONFIDENCE, len(deltas) - 1, mean, sem)
    )
    return {
        "estimate": mean,
        "low": float(low),
        "high": float(high),
        "confidence": CI_CONFIDENCE,
        "method": "t interval over seeds",
    }


def _seeds_needed(stage: GateStage, deltas: np.ndarray) -> dict | None:
    """Seeds a paired t-test needs for 80% power at `min_delta`, from the observed delta sd."""
    sd = float(deltas.std(ddof=1)) if len(deltas) > 1 else 0.0
    if stage.min_delta <= 0 or sd == 0 or stage.alternative != "greater":
        return None
    n = stats.seeds_needed(sd, stage.min_delta, stage.alpha, POWER, stage.alternative)
    return {
        "n": n,
        "power": POWER,
        "delta": stage.min_delta,
        "alpha": stage.alpha,
        "paired_sd": sd,
        "test": stats.PAIRED_T,
        "alternative": stage.alternative,
    }


def _result(params, spec, stage, baseline, tables, base, cand, verdict) -> dict:
    plain = to_dict(verdict)
    deltas = np.asarray(plain["statistics"]["deltas"])
    test = plain["statistics"]["test"]
    params_sha = hashlib.sha256(Path("params.yaml").read_bytes()).hexdigest()
    return {
        "stage": stage.name,
        "split": stage.split,
        "candidate": params.gate.candidate,
        "decision": "pass" if verdict.passed else "fail",
        "passed": verdict.passed,
        "mean_delta": plain["statistics"]["mean_delta"],
        "p_value": test["p_value"],
        "n_seeds": len(stage.seeds),
        "failed": [c["name"] for c in plain["criteria"] if not c["passed"]],
        "primary_metric": spec.primary_metric,
        "direction": spec.direction,
        "spec": {"path": str(SPEC), "sha256": spec.hash},
        "baseline": {"revision": baseline.rev, "commit": baseline.commit},
        "candidate_revision": git("rev-parse", "HEAD"),
        "candidate_params_sha256": params_sha,
        "ids_sha256": check_paired(*tables[stage.seeds[0]], "ids"),
        "criteria": plain["criteria"],
        "per_seed": [
            {"seed": s, "baseline": float(b), "candidate": float(c), "delta": float(d)}
            for s, b, c, d in zip(stage.seeds, base, cand, deltas, strict=True)
        ],
        "interval": _interval(plain["statistics"], deltas),
        "seeds_needed": _seeds_needed(stage, deltas),
        "statistics": plain["statistics"],
        "ledger": None,
    }


def _record(spec: GateSpec, stage: GateStage, candidate: str, outcome: str) -> ledger.Entry:
    return ledger.append(
        LEDGER,
        timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        candidate=candidate,
        revision=git("rev-parse", "HEAD"),
        spec_hash=spec.hash,
        stage=stage.name,
        seeds=list(stage.seeds),
        outcome=outcome,
    )


def _plot_rows(result: dict) -> pd.DataFrame:
    rows = [
        {"seed": f"seed{r['seed']}", "delta": r["delta"], "low": None, "high": None}
        for r in result["per_seed"]
    ]
    interval = result["interval"]
    if interval:
        rows.append(
            {
                "seed": "mean",
                "delta": result["mean_delta"],
                "low": interval["low"],
                "high": interval["high"],
            }
        )
    return pd.DataFrame(rows)


def _write(result: dict) -> None:
    write_json(GATE_METRICS, result)
    with atomic_path(GATE_REPORT) as tmp:
        tmp.write_text(markdown(result))
    write_csv(_plot_rows(result), GATE_PLOT)


def _selection(spec: GateSpec) -> dict:
    """Validation deltas against the baseline, from both runs' metrics/eval.json."""
    snapshot = _baseline(spec, required=False)
    result: dict = {
        "stage": SELECTION,
        "split": spec.selection["split"],
        "primary_metric": spec.primary_metric,
        "direction": spec.direction,
        "spec": {"path": str(SPEC), "sha256": spec.hash},
    }
    if snapshot is None:
        result |= {
            "decision": "no_baseline",
            "reason": f"baseline {spec.baseline!r} of {SPEC} is not a git revision here (no tag "
            "yet, or a queued experiment's copy, which carries no tags); validation deltas are "
            "left to `avgate promote`, which reads them from `dvc exp show`",
        }
    else:
        try:
            row = selection.compare(
                spec.selection,
                spec.primary_metric,
                spec.direction,
                snapshot.read_json(str(EVAL_METRICS)),
                read_json(EVAL_METRICS),
            )
        except (UnpairedError, RevisionError) as error:
            raise StageError(f"gate selection: {error}") from None
        result |= {
            "decision": "compared",
            "baseline": {"revision": snapshot.rev, "commit": snapshot.commit},
            **row,
        }
    write_json(GATE_METRICS, result)
    with atomic_path(GATE_REPORT) as tmp:
        tmp.write_text(_selection_markdown(result))
    rows = [
        {"seed": f"seed{s}", "delta": d, "low": None, "high": None}
        for s, d in zip(result.get("seeds", []), result.get("deltas", []), strict=True)
    ]
    write_csv(pd.DataFrame(rows, columns=["seed", "delta", "low", "high"]), GATE_PLOT)
    return result


def _selection_markdown(result: dict) -> str:
    title = f"## Gate `selection` on {result['split']}: "
    if result["decision"] == "no_baseline":
        return title + f"no baseline\n\n{result['reason']}\n"
    lines = [
        title + f"mean delta {result['mean_delta']:+.4f} against "
        f"`{result['baseline']['revision']}` (no test split read, no ledger entry)",
        "",
        "| seed | baseline | candidate | delta |",
        "|---|---|---|---|",
    ]
    for s, b, c, d in zip(
        result["seeds"],
        result["baseline_scores"],
        result["candidate_scores"],
        result["deltas"],
        strict=True,
    ):
        lines.append(f"| {s} | {b:.4f} | {c:.4f} | {d:+.4f} |")
    return "\n".join(lines) + "\n"
