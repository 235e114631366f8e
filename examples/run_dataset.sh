#!/usr/bin/env bash
# Shared steps of the dataset examples: put a dataset folder under DVC as data/raw/NAME, run the
# pipeline on it as a DVC experiment, print the validation metrics and the leakage verdict (the
# test split stays sealed until a gate look).
# Usage: examples/run_dataset.sh SOURCE NAME EXPERIMENT [-S key=value ...]
set -euo pipefail
source_dir=$1 name=$2 experiment=$3
shift 3
cd "$(dirname "$0")/.."
make --silent .venv/.installed
export PATH="$PWD/.venv/bin:$PATH"

if [ ! -e "data/raw/$name" ]; then
  echo "copying $source_dir to data/raw/$name"
  mkdir -p data/raw
  cp -R "$source_dir" "data/raw/$name"
fi
dvc add --quiet "data/raw/$name"   # versions the folder: data/raw/$name.dvc goes to git
git add "data/raw/$name.dvc" data/raw/.gitignore
if ! git diff --cached --quiet -- "data/raw/$name.dvc" data/raw/.gitignore; then
  # dvc exp run needs the .dvc file committed: it drops data tracked by an uncommitted one
  git commit --quiet -m "Track data/raw/$name with DVC" -- "data/raw/$name.dvc" data/raw/.gitignore
fi

dvc exp remove --quiet "$experiment" 2>/dev/null || true   # a re-run replaces the experiment
# the plan judges the metric the experiment scores: the gate refuses a gates.yaml whose
# primary_metric differs from evaluate.primary_metric (a clip task scores accuracy)
for arg in "$@"; do
  case $arg in evaluate.primary_metric=*) primary=${arg#*=} ;; esac
done
if [ -n "${primary:-}" ] && ! grep -q "^primary_metric: $primary\b" gates.yaml; then
  sed -i "s/^primary_metric: .*/primary_metric: $primary/" gates.yaml
  git commit --quiet -m "gates.yaml judges $primary, the metric of $name" -- gates.yaml
fi
dvc exp run --name "$experiment" -S "data.name=$name" "$@"

python - <<'PY'
import json
summary = json.load(open("metrics/scores.json"))
leakage = json.load(open("metrics/leakage.json"))
primary = summary["primary_metric"]
val = summary["val"][primary]
print(f"val {primary}: {val['mean']:.4f} ± {val['std']:.4f} "
      f"(mean ± sample std over {summary['n_seeds']} seeds); "
      f"majority baseline {summary['majority_baseline']['val'][primary]:.4f}; test sealed")
print(f"split: {leakage['split']['method']}; leakage verdict: {leakage['verdict']}")
print(f"group overlap between splits: {leakage['group_overlap']}")
PY
