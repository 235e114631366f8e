"""`reports/gate.md`: the gate's decision as a Markdown table fit for a pull-request comment.

>>> result = {"stage": "quick_test", "split": "test", "candidate": "wide-head",
...           "decision": "fail", "primary_metric": "acc", "direction": "maximize",
...           "baseline": {"revision": "v1", "commit": "a" * 40}, "candidate_revision": "b" * 40,
...           "candidate_params_sha256": "e" * 64,
...           "spec": {"path": "gates.yaml", "sha256": "c" * 64}, "ids_sha256": "d" * 64,
...           "criteria": [{"name": "min_delta", "passed": False, "value": 0.01,
...                         "threshold": 0.018, "detail": "mean delta 0.01 < 0.018"}],
...           "per_seed": [{"seed": 0, "baseline": 0.8, "candidate": 0.81, "delta": 0.01}],
...           "statistics": {"test": {"test": "exact sign-flip permutation",
...                                   "alternative": "greater", "n": 1, "p_value": 0.5,
...                                   "min_p_value": 0.5, "pairing": "paired by seed"}},
...           "interval": None, "ledger": None}
>>> print(markdown(result).splitlines()[0])
## Gate `quick_test` on test: **REJECTED** (candidate `wide-head` against `v1`)
"""

from __future__ import annotations

DECISIONS = {"pass": "PASSED", "fail": "REJECTED"}


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _bucket_lines(result: dict) -> list[str]:
    """Where the candidate gains and loses, worst bucket first (`avgate.gating.buckets`)."""
    found = result.get("buckets")
    if not found:
        return []
    if "rows" not in found:
        return ["", f"Buckets: not computed; {found['reason']}."]
    lines = [
        "",
        f"Where the candidate gains and loses on {result['split']} ({found['measure']}; "
        f"{found['fallback_used_frac']:.1%} of the candidate's clips fell back to uniform), "
        "worst first:",
        "",
        "| dimension | bucket | seconds | baseline | candidate | delta |",
        "|---|---|---|---|---|---|",
    ]
    for row in found["rows"]:
        lines.append(
            f"| {row['dimension']} | {row['bucket']} | {row['seconds']} | {row['baseline']:.4f} "
            f"| {row['candidate']:.4f} | {row['delta']:+.4f} |"
        )
    return lines


def markdown(result: dict) -> str:
    """The report of one gate stage from the dict written to `metrics/gate.json`."""
    baseline = result["baseline"]
    lines = [
        f"## Gate `{result['stage']}` on {result['split']}: "
        f"**{DECISIONS[result['decision']]}** (candidate `{result['candidate']}` against "
        f"`{baseline['revision']}`)",
        "",
        "| criterion | value | threshold | result | detail |",
        "|---|---|---|---|---|",
    ]
    for c in result["criteria"]:
        mark = "pass" if c["passed"] else "**fail**"
        lines.append(
            f"| {c['name']} | {_number(c['value'])} | {_number(c['threshold'])} | {mark} "
            f"| {c['detail']} |"
        )
    lines += [
        "",
        f"Per seed, {result['primary_metric']} ({result['direction']}; delta > 0 is "
        "better for the candidate):",
        "",
        "| seed | baseline | candidate | delta |",
        "|---|---|---|---|",
    ]
    for row in result["per_seed"]:
        lines.append(
            f"| {row['seed']} | {row['baseline']:.4f} | {row['candidate']:.4f} "
            f"| {row['delta']:+.4f} |"
        )
    test = result["statistics"]["test"]
    lines += [
        "",
        f"- Test: {test['test']}, {test['alternative']}, {test['pairing']}; n = {test['n']} "
        f"seeds, p = {test['p_value']:.4g} (smallest p this test can reach with n seeds: "
        f"{test['min_p_value']:.4g}).",
    ]
    interval = result.get("interval")
    if interval:
        lines.append(
            f"- {interval['confidence']:.0%} interval of the mean delta ({interval['method']}): "
            f"[{interval['low']:+.4f}, {interval['high']:+.4f}]."
        )
    statistics = result["statistics"]
    if statistics.get("claim"):
        groups = statistics.get("n_groups")
        counted = f"{groups} {result['split']} groups; " if groups else ""
        lines.append(f"- {counted}the claim holds for {statistics['claim']}.")
    if statistics.get("alpha_correction"):
        correction = statistics["alpha_correction"]
        lines.append(
            f"- Repeated looks: {correction['detail']} = {correction['alpha_per_look']:.4g} per "
            "look, for the test and the interval alike."
        )
    needed = result.get("seeds_needed")
    if needed:
        lines.append(
            f"- Seeds a {needed['test']} ({needed['alternative']}) would need for "
            f"{needed['power']:.0%} power at delta {needed['delta']:+.4g}, alpha "
            f"{needed['alpha']:.4g}, given the observed paired sd {needed['paired_sd']:.4g}: "
            f"{needed['n']}."
        )
    lines += [
        f"- Baseline `{baseline['revision']}` = {baseline['commit'][:12]}; candidate at "
        f"{result['candidate_revision'][:12]} with params.yaml sha256 "
        f"{result['candidate_params_sha256'][:12]}; test ids sha256 {result['ids_sha256'][:12]}.",
        f"- Pre-registered spec `{result['spec']['path']}` sha256 {result['spec']['sha256'][:12]}.",
    ]
    lines += _bucket_lines(result)
    opened = result.get("test_split_opened")
    if opened:
        lines.append(
            f"- **The test split was opened** for exploratory work before this plan's first look "
            f"(ledger entry #{opened['index']} at {opened['timestamp']}): test scores were seen "
            "outside the plan."
        )
    ledger = result.get("ledger")
    if ledger:
        lines.append(
            f"- Ledger `{ledger['path']}` entry #{ledger['index']} ({ledger['hash'][:12]}, "
            f"committed to `{ledger['ref']}`); look {ledger['look']} of {ledger['looks']} "
            "allowed at this stage under this spec and test split."
        )
    return "\n".join(lines) + "\n"
