#!/usr/bin/env bash
# The promotion protocol of gates.yaml on the built-in demo, both ways, in this clone:
#   1. a deliberately weak baseline (16 hidden units, 6 epochs) is trained on every seed the
#      plan uses, committed and tagged;
#   2. `avgate promote` with the default head (128 units, 100 epochs), clearly better:
#      promoted, tagged, the baseline pin moved to it;
#   3. `avgate promote` with a candidate equal to the new baseline: rejected, with the stage
#      and the criteria that stopped it.
# It works on a branch of its own and comes back to the current branch at the end; the branch
# and its tags stay for inspection (the last lines say how to delete them). Its test looks are
# real looks at the demo's test split: every look is committed to refs/avgate/ledger as it is
# made, and at the end the current branch's gates/ledger.jsonl takes them in (one commit), so
# that `avgate ledger verify` finds no look missing there.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/avgate ] && export PATH="$PWD/.venv/bin:$PATH"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "promote-demo: commit or stash your changes first (the demo makes commits)" >&2
  exit 1
fi
start=$(git rev-parse --abbrev-ref HEAD)
stamp=$(date -u +%Y%m%d%H%M%S)
branch="promote-demo-$stamp"
baseline="demo-baseline-$stamp"
all_seeds=$(python -c "import yaml; s = yaml.safe_load(open('gates.yaml'))['stages']; \
print('[' + ','.join(map(str, sorted({x for st in s for x in st['seeds']}))) + ']')")
git switch -q -c "$branch"

echo "== baseline: weak head (train.hidden=16, train.max_epochs=6) on seeds $all_seeds"
sed -i "s/^baseline:.*/baseline: $baseline/" gates.yaml
dvc exp run -q -S "train.seeds=$all_seeds" -S train.hidden=16 -S train.max_epochs=6 \
  -S gate.stage=selection -S gate.candidate=
git add -A -- params.yaml dvc.lock metrics plots reports gates.yaml
git commit -q -m "Demo baseline: a weak head on every seed of the plan"
git tag -a "$baseline" -m "demo baseline (weak head)"

echo "== case 1: the default head against the weak baseline"
avgate promote --line "wide-$stamp" -S train.hidden=128 -S train.max_epochs=100 --tag "demo-model-wide-$stamp" \
  | tee /tmp/promote-demo-1.$$
echo "== case 2: a candidate equal to the promoted model"
avgate promote --line "same-$stamp" -S train.hidden=128 --tag "demo-model-same-$stamp" \
  | tee /tmp/promote-demo-2.$$

echo "== decisions"
grep -h -E "promote \[ *[0-9]+ s\] (PROMOTED|REJECTED)" /tmp/promote-demo-1.$$ /tmp/promote-demo-2.$$
rm -f /tmp/promote-demo-1.$$ /tmp/promote-demo-2.$$
git switch -q "$start"
dvc checkout -q || true
git show refs/avgate/ledger:gates/ledger.jsonl > gates/ledger.jsonl
git commit -q -m "Ledger: the test looks of the promote demo ($stamp)" -- gates/ledger.jsonl
avgate ledger verify
echo "== back on $start; the demo left branch $branch and tags $baseline, demo-model-wide-$stamp"
echo "   remove them with: git branch -D $branch && git tag -d $baseline demo-model-wide-$stamp"
