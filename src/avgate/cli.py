"""The `avgate` command: one subcommand per DVC stage, plus the commands people type.

Each subcommand loads params.yaml and calls one stage function; errors that a user can fix are
printed as one message naming the file and the fix, with exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from avgate import plugins
from avgate.config import Params
from avgate.numerics import pin_environment
from avgate.workspace import params_held

# Errors a user can fix, by name: importing their modules here would load pandas, scipy.stats,
# PyAV and dvc.api into every stage's process, a second or more each time DVC runs one.
USER_ERRORS = frozenset(
    {
        "avgate.declare.ConfigError",
        "avgate.datasets.checks.DatasetError",
        "avgate.media.MediaError",
        "avgate.errors.StageError",
        "avgate.gating.ledger.LedgerError",
        "avgate.gating.pairing.UnpairedError",
        "avgate.gating.revisions.RevisionError",
        "avgate.gating.promote.PromotionError",
        "builtins.FileNotFoundError",
    }
)


def is_user_error(error: BaseException) -> bool:
    """True for an error whose message tells the user the fix (one of USER_ERRORS, or a subclass).

    >>> from avgate.declare import ConfigError
    >>> is_user_error(ConfigError("params.yaml: x")), is_user_error(KeyError("x"))
    (True, False)
    """
    return any(f"{c.__module__}.{c.__qualname__}" in USER_ERRORS for c in type(error).__mro__)


def _demo_data(args: argparse.Namespace, params: Params) -> None:
    from avgate.stages import demo_data

    demo_data.run(params, Path(args.out))


def _demo_encoder(args: argparse.Namespace, params: Params) -> None:
    from avgate.stages import demo_encoder

    print(f"demo-encoder: {demo_encoder.run(params, Path(args.out))}")


def _ingest(args: argparse.Namespace, params: Params) -> None:
    from avgate.stages import ingest

    summary = ingest.run(params)
    print(
        f"ingest: {summary['n_ok']} of {summary['n_files']} files usable, "
        f"{summary['n_failed']} failed (see {ingest.REPORT})"
    )
    for failure in summary["failures"][:20]:
        print(f"ingest: failed: {failure['path']}: {failure['reason']}")
    if summary["n_failed"] > 20:
        print(f"ingest: ... and {summary['n_failed'] - 20} more failed files in {ingest.REPORT}")
    for warning in summary["warnings"]:
        print(f"ingest: warning: {warning}")


def _split(args: argparse.Namespace, params: Params) -> None:
    from avgate.stages import split

    print("\n".join(split.console_lines(split.run(params))))


def _embed(args: argparse.Namespace, params: Params) -> None:
    from avgate.stages import embed

    meta = embed.run(params, args.encoder)
    if meta is not None:  # rank 0 (or the only process) writes the arrays
        print(f"embed {args.encoder}: dim {meta['dim']}, rows {meta['rows']}")


def _audit(args: argparse.Namespace, params: Params) -> None:
    from avgate.stages import audit_embeddings

    summary = audit_embeddings.run(params)
    found = summary["group_from_embedding"]
    pairs = {k: v["pairs"] for k, v in summary["near_duplicates"].items() if "|" in k}
    accuracy, chance = found.get("accuracy"), found.get("chance")
    group = "not measured" if accuracy is None else f"{accuracy:.3f} (chance {chance:.3f})"
    print(f"audit: near-duplicate pairs across splits {pairs}; group from embedding {group}")


def _eventness(args: argparse.Namespace, params: Params) -> None:
    from avgate.stages import eventness

    summary = eventness.run(params)
    val = summary["val"]
    if val is None:
        print(f"eventness {summary['method']}: scores written; {summary['reason']}")
        return
    rates = {k: "n/a" if val[k] is None else f"{val[k]:.3f}"
             for k in ("auc", "top1_hit_rate", "topk_hit_rate")}  # fmt: skip
    print(
        f"eventness {summary['method']}: val AUC {rates['auc']}, top-1 hit rate "
        f"{rates['top1_hit_rate']}, top-k hit rate {rates['topk_hit_rate']} "
        f"over {val['clips']} clips with an event"
    )


def _budget(args: argparse.Namespace, params: Params) -> None:
    from avgate.stages import budget

    summary = budget.run(params)
    if summary["policy"] == "none":
        print(f"budget none: {summary['reason']}")
        return
    planned, fallback = summary["planned"], summary["fallback_used_frac"]
    hits, hit = summary["val"], ""
    if hits is not None and hits["event_share_of_high"] is not None:
        hit = (
            f"; val: {hits['event_share_of_high']:.3f} of high-resolution seconds hold an event "
            f"(all seconds: {hits['event_share_of_all']:.3f})"
        )
    print(
        f"budget {summary['policy']}: planned visual cost uniform {planned['uniform']:.4g}, "
        f"anchored_topk {planned['anchored_topk']:.4g} ({planned['gap']:+.2%}, equal within "
        f"1%); fallback to uniform on {fallback['val']:.1%} of val clips{hit}"
    )


def _train(args: argparse.Namespace, params: Params) -> None:
    from avgate.stages import train

    summary = train.run(params, say=lambda line: print(f"train {line}", flush=True))
    primary = summary["primary_metric"]
    val = summary["val"][primary]
    print(
        f"train: val {primary} {val['mean']:.4f} ± {val['std']:.4f} over {summary['n_seeds']} "
        f"seeds (sample std); majority {summary['majority_baseline']['val'][primary]:.4f}; "
        + ("test sealed" if params.evaluate.test == "sealed" else "test opened")
    )


def _summary(args: argparse.Namespace, params: Params) -> None:
    import json

    from avgate import summary

    def read(path: str) -> dict | None:
        file = Path(path)
        return json.loads(file.read_text()) if file.is_file() else None

    evaluation = read("metrics/scores.json")
    if evaluation is None:
        raise FileNotFoundError("metrics/scores.json: run `dvc repro` first")
    lines = summary.render(
        evaluation,
        read("metrics/leakage.json"),
        read("metrics/gate.json"),
        read("metrics/budget.json"),
        read("reports/go.json"),
    )
    print("\n".join(lines))


def _profiles(args: argparse.Namespace, params: Params) -> None:
    from avgate.profiles import PROFILES, read_all

    found = read_all()
    if not found:
        print(f"profiles: none under {PROFILES}: run a stage first")
    for p in found:
        rate = f"  {p['samples_per_s']:.0f} samples/s" if "samples_per_s" in p else ""
        print(f"{p['stage']:<20}{p['seconds']:>9.2f} s{p['peak_rss_mib']:>9.0f} MiB{rate}")


def _report(args: argparse.Namespace, params: Params) -> None:
    from avgate.commands import report

    path = report.run(args.rev)
    print(f"report: {path} (workspace against {args.rev})")


def _gate(args: argparse.Namespace, params: Params) -> None:
    from avgate.gating.paths import GATE_REPORT
    from avgate.stages import gate

    result = gate.run(params)
    if result["decision"] == "no_baseline":
        print(f"gate selection: no baseline yet ({GATE_REPORT} says why and what to do)")
    elif result["stage"] == gate.SELECTION:
        print(
            f"gate selection: mean {result['split']} delta {result['mean_delta']:+.4f} against "
            f"{result['baseline']['revision']} over seeds {result['seeds']}"
        )
    else:
        failed = ", ".join(result["failed"]) or "none"
        print(
            f"gate {result['stage']}: {result['decision'].upper()} (mean delta "
            f"{result['mean_delta']:+.4f}, p = {result['p_value']:.4g}; failed criteria: "
            f"{failed}); see {GATE_REPORT}"
        )


def _probe(args: argparse.Namespace, params: Params) -> None:
    from avgate.stages import probe

    probe.run(params)


def _go(args: argparse.Namespace, params: Params) -> None:
    from avgate.gating.go_verdict import console_lines
    from avgate.stages import go

    print("\n".join(console_lines(go.run(params))))


def _ledger_verify(args: argparse.Namespace, params: Params) -> None:
    from avgate.gating import ledger

    entries = ledger.verify(args.path)
    print(
        f"ledger {args.path}: {len(entries)} entries, hash chain intact, and no look recorded "
        "in any committed version of it (any branch, tag, experiment or refs/avgate/ledger) "
        "is missing"
    )


def _plan_check(args: argparse.Namespace, params: Params) -> None:
    from avgate.commands import plan_check
    from avgate.errors import StageError

    report, lines = plan_check.run(params, args.replications)
    print("\n".join(lines))
    if report["passed"] is False:
        raise StageError(f"the plan's power is below its min_power ({report['min_power']})")


def _verify(args: argparse.Namespace, params: Params) -> None:
    from avgate.commands import verify

    print("\n".join(verify.run(args.tag)))


def _promote(args: argparse.Namespace, params: Params) -> None:
    from avgate.gating.promote import Promotion

    Promotion(args.line, args.set_param or [], jobs=args.jobs, tag=args.tag).run()


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="avgate", description=__doc__.splitlines()[0])
    root.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    commands = root.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Callable, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    demo = add("demo-data", _demo_data, "write the built-in audio-visual demo dataset")
    demo.add_argument("--out", default="data/raw/demo", help="output folder (default: %(default)s)")
    encoder = add("demo-encoder", _demo_encoder, "write the demo's stand-in WavLM (random weights)")
    encoder.add_argument(
        "--out", default="data/pretrained/demo-wavlm", help="output folder (default: %(default)s)"
    )
    add("ingest", _ingest, "probe and decode every media file; write manifest and segments")
    add("split", _split, "grouped train/val/test split with a leakage report")
    add("embed", _embed, "embed every split with one encoder").add_argument(
        "--encoder", required=True, help="a name listed in embed.encoders"
    )
    add("audit", _audit, "near-duplicates across splits and group predictability")
    add("eventness", _eventness, "score how eventful each second is; quality on validation")
    add("budget", _budget, "give each second a visual resolution under budget.policy")
    add("train", _train, "train and evaluate every seed; write metrics/, plots/, models/")
    add("summary", _summary, "the headline of the last run in a few short lines")
    add("profiles", _profiles, "wall time and peak memory of the last run of each stage")
    add("gate", _gate, "the workspace against the pinned baseline at one stage of gates.yaml")
    add("probe", _probe, "evidence of the go/no-go checks the training stage does not write")
    add("go", _go, "the go/no-go checks of gates.yaml on this workspace: one verdict")
    ledger = add("ledger", _ledger_verify, "check the test-split ledger's hash chain")
    ledger.add_argument(
        "action", choices=["verify"], help="verify: detect any edit and any look that is missing"
    )
    ledger.add_argument("--path", default="gates/ledger.jsonl", help="default: %(default)s")
    promote = add("promote", _promote, "run the gates.yaml protocol over DVC experiments")
    promote.add_argument("--line", required=True, help="candidate line named in the ledger")
    promote.add_argument(
        "-S", "--set-param", action="append", metavar="KEY=VALUES",
        help="a candidate override as in `dvc exp run -S`; a,b sweeps (repeatable)",
    )  # fmt: skip
    promote.add_argument("-j", "--jobs", type=int, default=1, help="queue workers (default 1)")
    promote.add_argument("--tag", default="", help="tag of the promoted model (model/<line>)")
    plan = add("plan", _plan_check, "each test stage's power from validation, before any look")
    plan.add_argument("action", choices=["check"], help="check: power at min_delta, and needs")
    plan.add_argument("--replications", type=int, default=200, help="default: %(default)s")
    add(
        "verify", _verify, "re-derive a promotion from what its tag pins, without a new look"
    ).add_argument("tag", help="a tag `avgate promote` made")
    add("report", _report, "Markdown report of the workspace against a git revision").add_argument(
        "--rev", default="HEAD", help="revision to compare with (default: %(default)s)"
    )
    return root


def main(argv: Sequence[str] | None = None) -> int:
    pin_environment()
    args = parser().parse_args(argv)
    plugins.load()
    try:
        with params_held(args.params):
            params = Params.load(args.params)
            args.handler(args, params)
    except Exception as error:
        if not is_user_error(error):
            raise
        print(f"avgate {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
