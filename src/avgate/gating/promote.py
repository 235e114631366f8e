"""`avgate promote`: the whole pre-registered protocol, run over DVC experiments.

1. Checks: a clean git workspace, `gates.yaml` valid and naming the primary metric params.yaml
   evaluates, the workspace's go/no-go verdict a GO that still holds when gates.yaml declares
   `checks:` (reports/go.json, written by the `go` stage), the ledger's hash chain intact, the
   baseline tag present with its `metrics/scores.json`.
2. Validation sweep: every candidate (`-S` overrides, sweeps as in `dvc exp run`) is queued with
   `dvc exp run --queue` on the selection seeds and run by `dvc queue start -j N`.
3. Selection: each finished experiment's per-seed validation scores are read from its commit's
   `metrics/scores.json` (the experiments from `dvc exp show --json`),
   paired by seed with the baseline's, and one winner is chosen by the declared rule.
4. Test stages, in the order of `gates.yaml`: the winner is applied to the workspace and
   `dvc exp run -S gate.stage=<stage>` runs the gate stage (which records the look in the
   ledger). The ledger is committed after each look; the protocol stops at the first failure.
5. Promotion: the workspace is committed, an annotated tag names the model version with the gate
   report's sha256, and `gates.yaml`'s baseline pin moves to the tag in a second commit.

Every step prints what it decided and why. `Promotion.run` returns the decision as a dict.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from avgate.config import Params
from avgate.gating import ledger, selection
from avgate.gating.go_verdict import GO_DETAILS, refusal
from avgate.gating.paths import GATE_METRICS, GATE_REPORT, LEDGER, PARAMS, SPEC
from avgate.gating.revisions import Snapshot, resolve
from avgate.gating.spec import GateSpec, check_params, load_spec
from avgate.go.base import Context
from avgate.layout.results import EVAL_METRICS, SCORES

QUEUED = re.compile(r"Queued experiment '([^']+)'")
FINISHED = ("success", "failed")
RESULTS = ["params.yaml", "dvc.lock", "metrics", "plots", "reports", "gates"]


class PromotionError(RuntimeError):
    """The protocol cannot go on; the message says why and what to do."""


def _seeds(seeds: list[int] | tuple[int, ...]) -> str:
    return "[" + ",".join(str(s) for s in seeds) + "]"


@dataclass
class Promotion:
    """One run of the protocol for candidate line `line` with sweep `overrides`.

    >>> p = Promotion("wider", ["train.hidden=256,512"], jobs=2, tag="")
    >>> p.tag_name()
    'model/wider'
    """

    line: str
    overrides: list[str]
    jobs: int = 1
    tag: str = ""
    poll_seconds: float = 2.0
    heartbeat_seconds: float = 30.0
    log: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def tag_name(self) -> str:
        return self.tag or f"model/{self.line}"

    def say(self, message: str) -> None:
        """One line with the time since the protocol started, e.g. `promote [  42 s] ...`."""
        self.log.append(message)
        print(f"promote [{time.monotonic() - self.started:4.0f} s] {message}", flush=True)

    def sh(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(list(args), capture_output=True, text=True)
        if check and done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise PromotionError(f"`{' '.join(args)}` failed (exit {done.returncode}):\n{tail}")
        return done

    def run(self) -> dict:
        self.say("checking the workspace, gates.yaml and the ledger")
        spec = self.check()
        baseline = Snapshot(spec.baseline, resolve(spec.baseline))
        base_eval = baseline.read_json(SCORES.as_posix())
        names = self.queue(spec)
        runs = self.wait(names)
        try:
            winner, why, overrides = self.select(spec, base_eval, runs)
        except selection.NoWinner as error:
            self.say(f"STOPPED before any test look: {error}")
            return {"decision": "stopped", "reason": str(error), "line": self.line}
        self.say(f"selected {winner} ({', '.join(overrides)}): {why}")
        self.sh("dvc", "exp", "apply", winner)
        for stage in spec.stages:
            result = self.test_stage(stage.name, stage.seeds)
            if not result["passed"]:
                return self.reject(stage.name, result, winner, overrides)
        return self.promote(spec, winner, overrides)

    def check(self) -> GateSpec:
        dirty = self.sh("git", "status", "--porcelain", "--untracked-files=no").stdout.strip()
        if dirty:
            raise PromotionError(
                f"the git workspace has uncommitted changes:\n{dirty}\ncommit or stash them "
                "first: the protocol commits the ledger and the promoted model"
            )
        spec = load_spec(SPEC)
        params = Params.load(PARAMS)
        check_params(spec, params.task.kind, params.evaluate.primary_metric, str(SPEC))
        self.check_go(spec, params)
        entries = ledger.verify(LEDGER)
        if resolve(self.tag_name()) is not None:
            raise PromotionError(
                f"tag {self.tag_name()!r} exists already; name the model version with --tag"
            )
        if resolve(spec.baseline) is None:
            raise PromotionError(
                f"{SPEC}: baseline {spec.baseline!r} is not a git revision; tag the baseline "
                f"commit first (`git tag -a {spec.baseline} -m baseline`)"
            )
        looks = sum(entry.spec_hash == spec.hash for entry in entries)
        if spec.min_power is not None:
            self.check_power(spec.min_power)
        self.say(
            f"plan {SPEC} sha256 {spec.hash[:12]}; baseline {spec.baseline}; ledger {LEDGER} "
            f"intact and complete ({len(entries)} entries, {looks} under this plan)"
        )
        return spec

    def check_go(self, spec: GateSpec, params: Params) -> None:
        """Refuse to start unless the workspace's go/no-go verdict is a GO computed from the
        checks gates.yaml declares and the evidence as it is now; a plan without `checks:` is
        not held back."""
        if not spec.checks:
            self.say(f"go/no-go: {SPEC} declares no checks")
            return
        problem = refusal(spec.checks, Context(tuple(params.train.seeds)), str(SPEC))
        if problem:
            raise PromotionError(f"{problem}; nothing was queued")
        self.say(f"go/no-go: GO under the {len(spec.checks)} checks {SPEC} declares ({GO_DETAILS})")

    def check_power(self, min_power: float) -> None:
        """Refuse to start when `avgate plan check` puts a test stage below `min_power`."""
        done = self.sh(sys.executable, "-m", "avgate.cli", "plan", "check", check=False)
        if done.returncode != 0:
            raise PromotionError(
                f"{SPEC} declares min_power {min_power} and the plan check finds less; nothing "
                f"was queued:\n{done.stdout}{done.stderr}".rstrip()
            )
        self.say(f"plan check: every test stage reaches min_power {min_power}")

    def queue(self, spec: GateSpec) -> list[str]:
        fixed = [
            f"train.seeds={_seeds(spec.selection['seeds'])}",
            "gate.stage=selection",
            f"gate.candidate={self.line}",
        ]
        args = [a for o in [*fixed, *self.overrides] for a in ("-S", o)]
        self.say(f"queueing the candidates of {' '.join(self.overrides) or 'no override'}")
        done = self.sh("dvc", "exp", "run", "--queue", *args)
        names = QUEUED.findall(done.stdout + done.stderr)
        if not names:
            raise PromotionError(f"dvc queued nothing:\n{done.stdout}{done.stderr}")
        self.say(
            f"queued {len(names)} candidate(s) on {spec.selection['split']} seeds "
            f"{spec.selection['seeds']}: {', '.join(names)}"
        )
        start_queue(self.jobs)
        return names

    def experiments(self) -> dict[str, dict]:
        """Name -> exp show entry (params, metrics, executor) of each experiment on HEAD."""
        rows = json.loads(self.exp_show())
        found = {}
        for row in rows:
            for group in row.get("experiments") or []:
                for rev in group["revs"]:
                    found[rev["name"]] = rev | {"executor": group.get("executor")}
        return found

    def exp_show(self, attempts: int = 10) -> str:
        """`dvc exp show --json`, retried: while a queue worker sets up an experiment's copy,
        exp show can fail on the half-made folder (a transient DVC error)."""
        for _ in range(attempts - 1):
            done = self.sh("dvc", "exp", "show", "--json", check=False)
            if done.returncode == 0:
                return done.stdout
            time.sleep(self.poll_seconds)
        return self.sh("dvc", "exp", "show", "--json").stdout

    def wait(self, names: list[str]) -> dict[str, dict]:
        """Poll `dvc exp show` until every queued experiment succeeded or failed; say how many
        are queued, running and done whenever that changes, and every `heartbeat_seconds`."""
        started = last_said = time.monotonic()
        said = ""
        while True:
            found = self.experiments()
            states = {n: ((found.get(n) or {}).get("executor") or {}).get("state") for n in names}
            if all(_finished(found.get(n), states[n]) for n in names):
                break
            count = _count(found, states)
            if count != said or time.monotonic() - last_said >= self.heartbeat_seconds:
                self.say(f"waiting for the sweep ({self.jobs} worker(s)): {count}")
                said, last_said = count, time.monotonic()
            time.sleep(self.poll_seconds)
        failed = [n for n, s in states.items() if s == "failed"]
        elapsed = time.monotonic() - started
        self.say(f"sweep finished in {elapsed:.0f} s; failed: {failed or 'none'}")
        if failed:
            raise PromotionError(
                f"queued experiments failed: {failed}; see `dvc queue logs {failed[0]}`"
            )
        return {n: found[n] for n in names}

    def select(self, spec: GateSpec, base_eval: dict, runs: dict) -> tuple[str, str, list[str]]:
        rows, overrides = {}, {}
        for name, run in runs.items():
            cand_eval = Snapshot(name, run["rev"]).read_json(SCORES.as_posix())
            rows[name] = selection.compare(
                spec.selection, spec.primary_metric, spec.direction, base_eval, cand_eval
            )
            overrides[name] = _changed(runs[name], self.overrides)
            self.say(
                f"  {name} ({', '.join(overrides[name])}): mean {rows[name]['split']} delta "
                f"{rows[name]['mean_delta']:+.4f}, per seed {_fmt(rows[name]['deltas'])}, "
                f"ece {rows[name]['ece']:.4f}"
            )
        winner, why = selection.choose(spec.selection, rows)
        return winner, why, overrides[winner]

    def test_stage(self, name: str, seeds: tuple[int, ...]) -> dict:
        self.say(
            f"{name}: `dvc exp run` in the workspace trains seeds {list(seeds)}, then one test "
            f"look for line {self.line!r} (the gate stage, recorded in the ledger)"
        )
        done = self.sh(
            "dvc",
            "exp",
            "run",
            "-S",
            f"train.seeds={_seeds(seeds)}",
            "-S",
            f"gate.stage={name}",
            "-S",
            f"gate.candidate={self.line}",
            check=False,
        )
        self.commit_ledger(f"{name} of {self.line}")
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
            self.restore()
            raise PromotionError(f"{name} did not run (exit {done.returncode}):\n{tail}")
        result = json.loads(GATE_METRICS.read_text())
        for c in result["criteria"]:
            self.say(f"  {'pass' if c['passed'] else 'FAIL'} {c['name']}: {c['detail']}")
        self.say(f"{name}: {'passed' if result['passed'] else 'failed'}")
        return result

    def commit_ledger(self, what: str) -> None:
        if self.sh("git", "status", "--porcelain", "--", str(LEDGER)).stdout.strip():
            self.sh("git", "add", str(LEDGER))
            self.sh("git", "commit", "-q", "-m", f"Ledger: test look at {what}", "--", str(LEDGER))

    def restore(self) -> None:
        """Back to the committed state (the ledger is already committed)."""
        self.sh("git", "checkout", "HEAD", "--", ".")
        self.sh("dvc", "checkout", "-q", check=False)

    def reject(self, stage: str, result: dict, winner: str, overrides: list[str]) -> dict:
        failed = [c for c in result["criteria"] if not c["passed"]]
        reasons = "; ".join(f"{c['name']} ({c['detail']})" for c in failed)
        print(GATE_REPORT.read_text(), flush=True)
        self.say(f"REJECTED {winner} ({', '.join(overrides)}) at stage {stage}: {reasons}")
        self.restore()
        return {
            "decision": "rejected",
            "stage": stage,
            "failed": [c["name"] for c in failed],
            "candidate": winner,
            "overrides": overrides,
            "line": self.line,
        }

    def promote(self, spec: GateSpec, winner: str, overrides: list[str]) -> dict:
        tag = self.tag_name()
        report_hash = hashlib.sha256(GATE_REPORT.read_bytes()).hexdigest()
        opened = json.loads(GATE_METRICS.read_text()).get("test_split_opened")
        disclosure = (
            f"the test split was opened for exploratory work before the first look (ledger "
            f"entry #{opened['index']} at {opened['timestamp']})\n"
            if opened
            else ""
        )
        self.sh("git", "add", "-A", "--", *RESULTS)
        message = f"Promote {self.line}: {', '.join(overrides)} passed every gate stage"
        self.sh("git", "commit", "-q", "-m", message)
        commit = self.sh("git", "rev-parse", "HEAD").stdout.strip()
        stages = ", ".join(s.name for s in spec.stages)
        note = (
            f"avgate promote: model {tag}\n\ncandidate line: {self.line}\n"
            f"overrides: {', '.join(overrides)}\npassed: {stages}\n"
            f"baseline beaten: {spec.baseline} ({resolve(spec.baseline)})\n"
            f"gate report {GATE_REPORT} sha256 {report_hash}\nspec {SPEC} sha256 {spec.hash}\n"
            f"{disclosure}"
        )
        self.sh("git", "tag", "-a", tag, "-m", note)
        self.say(
            f"PROMOTED {winner} ({', '.join(overrides)}) as {tag} at {commit[:12]}; "
            f"gate report sha256 {report_hash[:12]}"
        )
        self.move_pin(spec.baseline, tag)
        return {
            "decision": "promoted",
            "tag": tag,
            "commit": commit,
            "candidate": winner,
            "overrides": overrides,
            "line": self.line,
            "report_sha256": report_hash,
        }

    def move_pin(self, old: str, tag: str) -> None:
        SPEC.write_text(pin_baseline(SPEC.read_text(), tag))
        self.sh("dvc", "exp", "run", "-S", "gate.stage=selection", "-S", "gate.candidate=")
        self.sh("git", "add", "-A", "--", *RESULTS, str(SPEC))
        self.sh("git", "commit", "-q", "-m", f"Move the baseline pin from {old} to {tag}")
        self.say(f"baseline pin moved: {SPEC} baseline {old} -> {tag}")


def start_queue(jobs: int, cwd: str | Path | None = None, env: dict | None = None) -> None:
    """`dvc queue start -j jobs`, its output not captured: the workers it leaves running keep
    any captured pipe open, and waiting for that pipe's end would wait for the idle workers."""
    done = subprocess.run(
        ["dvc", "queue", "start", "-j", str(jobs)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=cwd,
        env=env,
    )
    if done.returncode != 0:
        raise PromotionError(f"`dvc queue start -j {jobs}` failed (exit {done.returncode})")


def pin_baseline(text: str, tag: str) -> str:
    r"""`gates.yaml` text with its top-level baseline set to `tag`, comments kept.

    >>> pin_baseline("baseline: v1   # the model to beat\nmax_attempts: 2\n", "v2")
    'baseline: v2   # the model to beat\nmax_attempts: 2\n'
    """
    moved, count = re.subn(r"(?m)^baseline:[ \t]*[^\s#]+", f"baseline: {tag}", text, count=1)
    if count != 1:
        raise PromotionError(f"{SPEC}: no top-level `baseline:` line to move to {tag}")
    return moved


def _finished(run: dict | None, state: str | None) -> bool:
    """True once the experiment failed, or succeeded and its metrics are readable."""
    if state == "failed":
        return True
    return state == "success" and EVAL_METRICS.as_posix() in (run or {}).get("data", {}).get(
        "metrics", {}
    )


def _count(found: dict[str, dict], states: dict[str, str | None]) -> str:
    """How many experiments are queued, running and done, e.g. '1 queued, 2 running, 0 done'.

    >>> done = {"data": {"metrics": {EVAL_METRICS.as_posix(): {}}}}
    >>> _count({"c": done, "d": done}, {"a": "running", "b": None, "c": "success", "d": "failed"})
    '1 queued, 1 running, 2 done'
    """
    done = sum(_finished(found.get(n), s) for n, s in states.items())
    running = sum(s == "running" for s in states.values())
    return f"{len(states) - done - running} queued, {running} running, {done} done"


def _changed(run: dict, overrides: list[str]) -> list[str]:
    """The swept keys with this experiment's values, e.g. ['train.hidden=256']."""
    params = run["data"]["params"]["params.yaml"]["data"]
    keys = [o.split("=", 1)[0].removeprefix("params.yaml:") for o in overrides]
    values = []
    for key in keys:
        value = params
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values.append(f"{key}={json.dumps(value)}")
    return values


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:+.4f}" for v in values) + "]"
