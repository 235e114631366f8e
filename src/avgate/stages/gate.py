"""`gate`: the candidate in the workspace against the pinned baseline, one stage of `gates.yaml`.

`gate.stage: selection` (the default) compares validation scores per seed with the baseline's
and touches neither the test split nor the ledger. A `gates.yaml` stage name (`quick_test`,
`full_test`) runs that stage. A test stage is the only place test labels are read and test
scores computed (a recorded look): under the ledger's lock the ledger is verified (chain and
completeness), both sides' stored test logits are read (the baseline's at its pinned commit,
through DVC) and must cover the stage's seeds with the same samples in the same order, the
ledger is asked whether this spec, test split and baseline allow another look, and only then are
the test labels joined and every statistic and criterion computed. The look is appended to the
ledger whatever the outcome and committed at once to `refs/avgate/ledger`; `metrics/gate.json`,
`reports/gate.md` and `plots/gate_deltas.csv` are the look's files.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from avgate import metrics, stats
from avgate.config import Params
from avgate.errors import StageError
from avgate.files import atomic_path, read_json, write_csv, write_json
from avgate.gating import buckets, ledger, selection
from avgate.gating.gate_report import markdown
from avgate.gating.opening import workspace_record
from avgate.gating.pairing import UnpairedError, check_paired, check_seeds
from avgate.gating.paths import (
    GATE_HEADLINE,
    GATE_METRICS,
    GATE_PLOT,
    GATE_REPORT,
    LEDGER,
    SPEC,
)
from avgate.gating.revisions import RevisionError, Snapshot, resolve
from avgate.gating.spec import GateSpec, GateStage, check_groups, check_params, load_spec
from avgate.gating.verdict import CI_CONFIDENCE, judge, to_dict
from avgate.gating.worsening import worsening
from avgate.layout.clips import ALLOCATION
from avgate.layout.inputs import predicted_labels
from avgate.layout.labels import clip_column, labels_of
from avgate.layout.results import SCORES, SEED_SCORES, predictions_dir
from avgate.profiles import recorded
from avgate.scoring import logits_of, split_scores

PLOT_COLUMNS = ["seed", "delta", "low", "high", "interval"]
SELECTION = "selection"
POWER = 0.8


class Side:
    """One run's files (predictions, metrics, the manifest), read by `read(path) -> bytes`: from
    the work tree, or at a git revision through DVC."""

    def __init__(self, read: Callable[[str], bytes]) -> None:
        self._read = read

    def frame(self, path: str | Path) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self._read(str(path))))

    def table(self, seed: int, split: str) -> pd.DataFrame:
        return self.frame(f"{predictions_dir(seed)}/{split}.parquet")

    def metrics(self, seed: int) -> dict:
        return json.loads(self._read(f"{predictions_dir(seed)}/{SEED_SCORES}"))

    def eval(self) -> dict:
        return json.loads(self._read(str(SCORES)))


def run(params: Params) -> dict:
    """Run the gate stage named by `gate.stage`; returns what was written to metrics/gate.json."""
    with recorded("gate"):
        return _run(params)


def _run(params: Params) -> dict:
    spec = load_spec(SPEC)
    check_params(spec, params.task.kind, params.evaluate.primary_metric, str(SPEC))
    if params.gate.stage == SELECTION:
        return _selection(spec)
    stage = _stage(spec, params.gate.stage)
    if stage.split != "test":
        return _look(params, spec, stage)
    if ledger.in_throwaway_copy():
        raise StageError(
            f"gate {stage.name}: a look at the test split is refused inside a queued "
            "experiment's temporary copy, where its ledger record would be lost; run the test "
            "stages in the workspace (`avgate promote`, or `dvc exp run` without --queue)"
        )
    _check_candidate(stage, params.gate.candidate)
    with ledger.locked(LEDGER):
        return _look(params, spec, stage)


def _look(params: Params, spec: GateSpec, stage: GateStage) -> dict:
    """Compare the paired runs at `stage`; a test-split look is recorded whatever happens."""
    baseline = _baseline(spec, required=True)
    base_eval = json.loads(_read_baseline(baseline, str(SCORES), stage))
    check_seeds(base_eval["seeds"], params.train.seeds, list(stage.seeds), stage.name)
    sides = Side(lambda path: _read_baseline(baseline, path, stage)), Side(_read_workspace)
    tables = _stored_tables(stage, *sides)
    ids = _paired(stage, tables)
    look = None
    if stage.split == "test":
        clips = tables[stage.seeds[0]][1]["clip_id"].to_numpy()
        check_groups(spec, stage, len(set(_groups(params, sides[1], clips))), str(SPEC))
        look = _allowed(spec, stage, baseline, ids, params.gate.candidate)
    try:
        if look is not None:
            _add_labels(params, sides[1], tables)
        result = evaluate_stage(params, spec, stage, baseline, tables, sides, base_eval)
        result["ids_sha256"] = ids
    except Exception:
        if look is not None:
            _record(look, "error")
        raise
    if look is not None:
        entry = _record(look, result["decision"])
        result |= look_record(ledger.read(LEDGER), entry, stage)
    else:
        record = workspace_record()
        result |= {"candidate_revision": record["candidate_commit"], "ledger": None,
                   "candidate_params_sha256": record["candidate_params_sha256"]}  # fmt: skip
    _write(result)
    return result


def look_record(entries: list[ledger.Entry], entry: ledger.Entry, stage: GateStage) -> dict:
    """What a report says of the look `entry`: the candidate's commit and params, and the
    ledger entry with its place in the stage's budget (all stored in the ledger)."""
    before = entries[: entry.index + 1]
    used = ledger.looks_used(before, entry.spec_hash, entry.test_ids_hash, stage.name)
    opened = ledger.opened(before, entry.spec_hash, entry.test_ids_hash)
    return {
        "test_split_opened": None
        if opened is None
        else {"index": opened.index, "timestamp": opened.timestamp},
        "candidate": entry.candidate,
        "candidate_revision": entry.candidate_commit,
        "candidate_params_sha256": entry.candidate_params_sha256,
        "ledger": {
            "path": str(LEDGER),
            "index": entry.index,
            "hash": entry.hash,
            "ref": ledger.REF,
            "look": len(used),
            "looks": stage.looks,
        },
    }


def recompute(
    params: Params,
    spec: GateSpec,
    stage: GateStage,
    candidate: Side,
    entries: list[ledger.Entry],
    entry: ledger.Entry,
) -> dict:
    """The result of the look `entry` at `stage`, computed again from stored files only: the
    baseline's at the commit the entry pinned, the candidate's through `candidate`. No ledger
    write and no new evaluation: this is how a promotion is re-derived (`avgate verify`)."""
    baseline = Snapshot(entry.baseline, entry.baseline_commit)
    base_eval = json.loads(_read_baseline(baseline, str(SCORES), stage))
    sides = Side(lambda path: _read_baseline(baseline, path, stage)), candidate
    check_seeds(base_eval["seeds"], candidate.eval()["seeds"], list(stage.seeds), stage.name)
    tables = _stored_tables(stage, *sides)
    ids = _paired(stage, tables)
    if ids != entry.test_ids_hash:
        raise StageError(
            f"gate {stage.name}: the stored test ids hash {ids[:12]}, the look recorded "
            f"{entry.test_ids_hash[:12]}: these are not the predictions that look scored"
        )
    _add_labels(params, candidate, tables)
    result = evaluate_stage(params, spec, stage, baseline, tables, sides, base_eval)
    return result | {"ids_sha256": ids} | look_record(entries, entry, stage)


def _check_candidate(stage: GateStage, candidate: str) -> None:
    if not candidate:
        raise StageError(
            f"params.yaml: gate.candidate is empty; a look at the test split ({stage.name}) is "
            f"recorded in {LEDGER} under a candidate line: set -S gate.candidate=<name>"
        )


def _allowed(
    spec: GateSpec, stage: GateStage, baseline: Snapshot, test_ids: str, candidate: str
) -> dict:
    """The ledger entry a look will be recorded as; StageError when the ledger refuses it."""
    try:
        entries = ledger.verify(LEDGER)
        ledger.check_allowed(
            entries,
            spec_hash=spec.hash,
            test_ids_hash=test_ids,
            stage=stage.name,
            looks=stage.looks,
            baseline_commit=baseline.commit,
        )
    except ledger.LedgerError as error:
        raise StageError(f"{LEDGER}: {error}") from None
    return {
        "kind": "look",
        "candidate": candidate,
        **workspace_record(),
        "baseline": baseline.rev,
        "baseline_commit": baseline.commit,
        "spec_hash": spec.hash,
        "test_ids_hash": test_ids,
        "stage": stage.name,
        "seeds": list(stage.seeds),
    }


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


def _stored_tables(stage: GateStage, baseline: Side, candidate: Side) -> dict:
    """Both sides' stored predictions tables per seed of `stage`."""
    return {
        s: (baseline.table(s, stage.split), candidate.table(s, stage.split)) for s in stage.seeds
    }


def _add_labels(params: Params, side: Side, tables: dict) -> None:
    """Join the test labels (read by `side`) to the sealed test tables: a recorded look."""
    for pair in tables.values():
        labels = labels_of(params, pair[1], side.frame)
        for table in pair:
            table["label"] = labels


def _paired(stage: GateStage, tables: dict) -> str:
    """The shared ordered-ids hash; UnpairedError unless ids (and labels, where stored) agree
    seed by seed. Runs before any look, so an unpaired comparison spends none."""
    return [check_paired(*tables[s], f"seed {s} {stage.split}") for s in stage.seeds][0]


def _per_sample_scores(
    metric: metrics.Metric, table: pd.DataFrame, threshold: dict | None
) -> np.ndarray:
    """One score per row of `table` whose mean is `metric` (its `per_sample` function), the
    labels decided by the run's tuned `threshold` if it has one."""
    return metric.per_sample(table["label"].to_numpy(), predicted_labels(table, threshold))


def _per_seed(params: Params, stage: GateStage, tables: dict, side: int, stored: Side,
              majority: str) -> list[dict]:  # fmt: skip
    """Each seed's stored validation metrics plus, at a test stage, the look's test scores."""
    out = []
    for seed in stage.seeds:
        found = stored.metrics(seed)
        if stage.split == "test":
            table = tables[seed][side]
            logits, classes = logits_of(table)
            labels, threshold = table["label"].to_numpy(), found.get(metrics.THRESHOLD)
            found |= split_scores(
                params.task.kind, "test", labels, logits, classes, majority, threshold
            )
        out.append(found)
    return out


def _scores(per_seed: list[dict], split: str, metric: str, side: str) -> np.ndarray:
    try:
        return np.array([m[split][metric] for m in per_seed], dtype=np.float64)
    except KeyError:
        raise StageError(
            f"{SPEC}: primary_metric {metric!r} is not in the {side}'s {split} metrics; "
            "choose a metric that evaluate computes for this task kind"
        ) from None


def evaluate_stage(
    params: Params,
    spec: GateSpec,
    stage: GateStage,
    baseline: Snapshot,
    tables: dict,
    sides: tuple[Side, Side],
    base_eval: dict,
) -> dict:
    """Every statistic and criterion of `stage` on the paired tables, as metrics/gate.json."""
    seeds = list(stage.seeds)
    base_metrics, cand_metrics = (
        _per_seed(params, stage, tables, i, side, found["majority_class"])
        for i, (side, found) in enumerate(zip(sides, (base_eval, sides[1].eval()), strict=True))
    )
    metric = spec.primary_metric
    base = _scores(base_metrics, stage.split, metric, "baseline")
    cand = _scores(cand_metrics, stage.split, metric, "candidate")
    clusters = tables[seeds[0]][1]["clip_id"].to_numpy()
    groups = _groups(params, sides[1], clusters)  # every report states how many
    per_sample = None
    readers = [c for c in stage.criteria if c.needs_per_sample]
    if readers:
        scorer = metrics.METRICS[metric]
        if scorer.per_sample is None:
            means = [name for name, m in metrics.METRICS.items() if m.per_sample is not None]
            raise StageError(
                f"{SPEC}: stages[{stage.name}].{readers[0].stage_keys()[0]} needs a primary "
                f"metric that is a mean over samples ({', '.join(means)}); {metric!r} is not: "
                "remove it"
            )
        per_sample = tuple(
            np.stack(
                [
                    _per_sample_scores(scorer, tables[s][i], found.get(metrics.THRESHOLD))
                    for s, found in zip(seeds, per_seed, strict=True)
                ]
            )
            for i, per_seed in enumerate((base_metrics, cand_metrics))
        )
    diagnostics = {
        name: worsening(name, base_metrics, cand_metrics)
        for criterion in stage.criteria
        for name in criterion.diagnostics()
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
        groups=groups,
        min_groups=spec.min_groups,
    )
    result = _result(params, spec, stage, baseline, base, cand, verdict)
    thresholds = [[m.get(metrics.THRESHOLD) for m in side] for side in (base_metrics, cand_metrics)]
    result["buckets"] = _buckets(params, stage, tables, sides[1], thresholds)
    return result


def _buckets(
    params: Params, stage: GateStage, tables: dict, candidate: Side, thresholds: list[list]
) -> dict:
    """The paired change in per-second accuracy by bucket (`avgate.gating.buckets`), from the
    candidate's budget allocation; a reason instead where there is none to read. `thresholds`:
    each side's decision threshold per seed of the stage (None: arg-max)."""
    if params.task.kind != "event":
        return {"reason": "task.kind clip: no seconds to bucket"}
    try:
        allocation = candidate.frame(ALLOCATION)
    except (OSError, StageError, RevisionError) as error:
        return {"reason": f"{ALLOCATION}: not readable ({error})"}
    if allocation.empty:
        return {"reason": "budget.policy none: no eventness allocation"}
    rows = tables[stage.seeds[0]][1][["clip_id", "t"]]
    mine = rows.merge(allocation[allocation["split"] == stage.split], on=["clip_id", "t"],
                      how="left")  # fmt: skip
    if mine["score"].isna().any():
        return {"reason": f"{ALLOCATION}: lacks {stage.split} seconds the predictions hold"}
    labels = tables[stage.seeds[0]][1]["label"].to_numpy()
    groups = buckets.second_buckets(mine, labels, params.task.background_label)
    correct = [
        np.stack([predicted_labels(tables[s][side], thresholds[side][i])
                  == tables[s][side]["label"].to_numpy() for i, s in enumerate(stage.seeds)])
        for side in (0, 1)
    ]  # fmt: skip
    return {
        "measure": "accuracy per second, mean over seeds; delta = candidate - baseline",
        "fallback_used_frac": float(mine.groupby("clip_id")["fallback"].first().mean()),
        "rows": buckets.deltas_by_bucket(*correct, groups),
    }


def _groups(params: Params, side: Side, clip_ids: np.ndarray) -> np.ndarray:
    """The split group (speaker, channel, video) of each row's clip, from the manifest."""
    return clip_column(params, clip_ids, "group", side.frame).astype(str)


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
    wanted = stage.criterion("min_delta").options.min_delta
    if wanted <= 0 or sd == 0 or stage.alternative != "greater":
        return None
    n = stats.seeds_needed(sd, wanted, stage.alpha_per_look, POWER, stage.alternative)
    return {
        "n": n,
        "power": POWER,
        "delta": wanted,
        "alpha": stage.alpha_per_look,
        "paired_sd": sd,
        "test": stats.STATISTICS["paired_t"].title,
        "alternative": stage.alternative,
    }


def _result(params, spec, stage, baseline, base, cand, verdict) -> dict:
    plain = to_dict(verdict)
    deltas = np.asarray(plain["statistics"]["deltas"])
    test = plain["statistics"]["test"]
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
        "criteria": plain["criteria"],
        "per_seed": [
            {"seed": s, "baseline": float(b), "candidate": float(c), "delta": float(d)}
            for s, b, c, d in zip(stage.seeds, base, cand, deltas, strict=True)
        ],
        "interval": _interval(plain["statistics"], deltas),
        "seeds_needed": _seeds_needed(stage, deltas),
        "statistics": plain["statistics"],
    }


def _record(look: dict, outcome: str) -> ledger.Entry:
    """Append the look to the ledger and commit it to its ref at once."""
    timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    entry = ledger.append(LEDGER, timestamp=timestamp, outcome=outcome, **look)
    ledger.commit_entry(LEDGER, entry)
    return entry


def _plot_rows(result: dict) -> pd.DataFrame:
    """plots/gate_deltas.csv: each seed's delta, then a `mean` row with the interval (the test
    stage's; at selection the t interval over seeds) and what it is. No rows when nothing was
    compared (no baseline yet): DVC then draws no plot rather than an empty one."""
    if "per_seed" in result:
        seeds = [r["seed"] for r in result["per_seed"]]
        deltas = [r["delta"] for r in result["per_seed"]]
    else:
        seeds, deltas = result.get("seeds", []), result.get("deltas", [])
    interval = result.get("interval")
    rows = [{"seed": f"seed{s}", "delta": d} for s, d in zip(seeds, deltas, strict=True)]
    if interval:
        rows.append(
            {
                "seed": "mean",
                "delta": result["mean_delta"],
                "low": interval["low"],
                "high": interval["high"],
                "interval": f"{interval['confidence']:.0%} {interval['method']}",
            }
        )
    return pd.DataFrame(rows, columns=PLOT_COLUMNS)


def _write(result: dict) -> None:
    write_result(result)
    with atomic_path(GATE_REPORT) as tmp:
        tmp.write_text(markdown(result))
    write_csv(_plot_rows(result), GATE_PLOT)


def write_result(result: dict) -> None:
    """metrics/gate.json (everything) and metrics/gate_headline.json (what a table shows)."""
    write_json(GATE_METRICS, result)
    headline: dict = {"gate": f"{result['stage']}: {result['decision']}"}
    if "mean_delta" in result:
        headline["delta"] = result["mean_delta"]
    write_json(GATE_HEADLINE, headline)


def _selection(spec: GateSpec) -> dict:
    """Validation deltas against the baseline, from both runs' metrics/scores.json."""
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
            "yet, or a queued experiment's copy, which carries no tags); tag the baseline's "
            f"commit (`git tag -a {spec.baseline} -m baseline`) and each later run is compared "
            "with it here; `avgate promote` reads every experiment's metrics/scores.json itself",
        }
    else:
        try:
            row = selection.compare(
                spec.selection,
                spec.primary_metric,
                spec.direction,
                snapshot.read_json(str(SCORES)),
                read_json(SCORES),
            )
        except (UnpairedError, RevisionError) as error:
            raise StageError(f"gate selection: {error}") from None
        result |= {
            "decision": "compared",
            "baseline": {"revision": snapshot.rev, "commit": snapshot.commit},
            **row,
            "interval": _interval({}, np.asarray(row["deltas"])),
        }
    write_result(result)
    with atomic_path(GATE_REPORT) as tmp:
        tmp.write_text(_selection_markdown(result))
    write_csv(_plot_rows(result), GATE_PLOT)
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
    interval = result["interval"]
    if interval:
        lines += ["", f"{interval['confidence']:.0%} {interval['method']}: "
                      f"[{interval['low']:+.4f}, {interval['high']:+.4f}] (descriptive: selection "
                      "makes no claim; the test stages of gates.yaml do)"]  # fmt: skip
    return "\n".join(lines) + "\n"
