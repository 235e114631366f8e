#!/usr/bin/env bash
# Listen, then look: the eventness research plan on the built-in demo, as pre-registered.
#   Claim: a cheap audio "eventness" score choosing which seconds get high-resolution visual
#   features (budget.policy anchored_topk) beats giving every second the same resolution
#   (uniform) at an equal visual budget, by at least +0.02 segment accuracy, paired p < 0.05 over
#   seeds 0-9 on the test split.
#   1. The plan is written to gates.yaml and committed before anything is trained: selection on
#      validation seeds 0-2 (a method must not lose to uniform: min_mean_delta 0), a quick test
#      on seeds 0-2 (delta >= +0.018, p <= 0.2, the fallback rate may not rise) and the full
#      test on seeds 0-9 (delta >= +0.02, p < 0.05).
#   2. The baseline, uniform, is trained on every seed the plan uses, committed and tagged.
#   3. `avgate promote` sweeps the pre-registered eventness methods (METHODS, at most two;
#      default audio_head,energy) under anchored_topk on validation, picks one, and runs the
#      quick and full test stages, each a recorded look at the test split.
#   4. The last line says PROMOTED or STOPPED, and why: STOPPED when every method loses on
#      validation (no test look is made) or a test stage fails (its criteria are named).
# Like promote-demo.sh it works on a branch of its own, returns to the current branch at the end
# and takes the looks into the current branch's gates/ledger.jsonl. FULL_SEEDS (default
# [0,1,2,3,4,5,6,7,8,9]) and MIN_GROUPS (default 8) shrink the plan for a quick try.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/avgate ] && export PATH="$PWD/.venv/bin:$PATH"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "listen-then-look: commit or stash your changes first (the example makes commits)" >&2
  exit 1
fi
methods=${METHODS:-audio_head,energy}
if [ "$(tr ',' '\n' <<< "$methods" | wc -l)" -gt 2 ]; then
  echo "listen-then-look: at most two pre-registered methods, got METHODS=$methods" >&2
  exit 1
fi
full_seeds=${FULL_SEEDS:-[0,1,2,3,4,5,6,7,8,9]}
start=$(git rev-parse --abbrev-ref HEAD)
stamp=$(date -u +%Y%m%d%H%M%S)
branch="listen-then-look-$stamp"
baseline="uniform-$stamp"
log="/tmp/listen-then-look.$$"
git switch -q -c "$branch"

echo "== plan: gates.yaml, committed before any training"
python - "$baseline" "$full_seeds" "${MIN_GROUPS:-8}" <<'PY'
import sys

import yaml

baseline, full_seeds, min_groups = sys.argv[1], yaml.safe_load(sys.argv[2]), int(sys.argv[3])
plan = {
    "primary_metric": "segment_accuracy",
    "baseline": baseline,
    "alpha_correction": "bonferroni",
    "min_groups": min_groups,
    "selection": {"split": "val", "seeds": [0, 1, 2], "rule": "max_mean_delta",
                  "tie_break": "lower_ece", "min_mean_delta": 0.0},
    "stages": [
        {"name": "quick_test", "split": "test", "seeds": [0, 1, 2], "statistic": "paired_t",
         "alternative": "greater", "alpha": 0.2, "looks": 1, "min_delta": 0.018,
         "non_inferiority": {"fallback_used_frac": 0.0}},
        {"name": "full_test", "split": "test", "seeds": full_seeds, "statistic": "paired_t",
         "alternative": "greater", "alpha": 0.05, "looks": 1, "min_delta": 0.02},
    ],
}
with open("gates.yaml", "w") as out:
    out.write("# Listen, then look: anchored visual budget against uniform (examples/listen-then-look.sh)\n")
    yaml.safe_dump(plan, out, sort_keys=False)
PY
git commit -q -m "Plan: anchored visual budget against uniform at equal budget" -- gates.yaml
all_seeds=$(python -c "import yaml; s = yaml.safe_load(open('gates.yaml'))['stages']; \
print('[' + ','.join(map(str, sorted({x for st in s for x in st['seeds']}))) + ']')")

echo "== baseline: budget.policy=uniform on seeds $all_seeds"
dvc exp run -q -S budget.policy=uniform -S "train.seeds=$all_seeds" -S gate.stage=selection \
  -S gate.candidate=
git add -A -- params.yaml dvc.lock metrics plots reports
git commit -q -m "Baseline: uniform visual budget on every seed of the plan"
git tag -a "$baseline" -m "uniform visual budget (listen-then-look baseline)"
python - <<'PY'
import json
budget = json.load(open("metrics/budget.json"))
planned = budget["planned"]
print(f"budget: uniform {planned['uniform']:.6g} and anchored_topk {planned['anchored_topk']:.6g}"
      f" pixels planned ({planned['gap']:+.2%}): equal within 1%")
PY

echo "== candidates: anchored_topk with eventness.method in {$methods}"
status=0
avgate promote --line "anchored-$stamp" --tag "anchored-$stamp" -S budget.policy=anchored_topk \
  -S "eventness.method=$methods" | tee "$log" || status=$?

echo "== decisions"
grep -E "^promote \[ *[0-9]+ s\] " "$log" | sed -E 's/^promote \[ *[0-9]+ s\] //' \
  | grep -E "^  [^ ]+ \(|: (passed|failed)$|^  (pass|FAIL) |^selected|^STOPPED" || true
if grep -q "PROMOTED" "$log"; then
  verdict="PROMOTED: $(grep -o 'PROMOTED .*' "$log" | head -1 | sed 's/^PROMOTED //')"
elif grep -q "STOPPED" "$log"; then
  verdict="STOPPED: every pre-registered method lost to uniform on validation ($(grep -o 'STOPPED .*' "$log" | sed 's/.*: every/every/'))"
elif grep -q "REJECTED" "$log"; then
  verdict="STOPPED: $(grep -o 'REJECTED .*' "$log" | sed 's/^REJECTED //')"
else
  verdict="STOPPED: avgate promote ended without a decision (exit $status); see above"
fi
rm -f "$log"
git switch -q "$start"
dvc checkout -q || true
git show refs/avgate/ledger:gates/ledger.jsonl > gates/ledger.jsonl 2>/dev/null || true
if [ -n "$(git status --porcelain -- gates/ledger.jsonl)" ]; then
  git commit -q -m "Ledger: the test looks of listen-then-look ($stamp)" -- gates/ledger.jsonl
fi
echo "== back on $start; the example left branch $branch and tag $baseline"
echo "$verdict"
