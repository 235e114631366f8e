#!/usr/bin/env bash
# The tail recipe on a real imbalanced task: is a spoken "seven" (one clip in ten of the Free
# Spoken Digit Dataset) told apart from the nine other digits? examples/tail-sweep.sh PATH
#   PATH  a folder with recordings/{digit}_{speaker}_{index}.wav
#   TAIL_DIGIT (default 7) names the rare class's digit.
# 1. Writes data/raw/fsdd-tail: the recordings and a manifest (label digit<TAIL_DIGIT> | other,
#    group = speaker), so that the split keeps each voice on one side.
# 2. Trains the plain recipe as the experiment tail-base (examples/run_dataset.sh): checkpoints
#    selected by validation tail F1 (train.selection_metric), which is also the primary metric.
# 3. Runs the sweep train.sampler x train.label_smoothing, one experiment each.
# 4. Prints `dvc exp show` with tail recall and tail F1 (validation, mean over seeds) per
#    experiment, best tail F1 first: the recipe moves tail recall, tail F1 selects.
# Like run_dataset.sh it commits data/raw/fsdd-tail.dvc (and gates.yaml's primary metric).
set -euo pipefail
if [ $# -ne 1 ] || [ ! -d "$1/recordings" ]; then
  echo "usage: $0 PATH   (PATH holds recordings/{digit}_{speaker}_{index}.wav)" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/fsdd-tail"
cp -R "$1/recordings" "$work/fsdd-tail/recordings"
python3 - "$work/fsdd-tail" "${TAIL_DIGIT:-7}" <<'PY'
import csv
import sys
from pathlib import Path

root, tail, found = Path(sys.argv[1]), sys.argv[2], False
with open(root / "manifest.csv", "w", newline="") as out:
    rows = csv.writer(out)
    rows.writerow(["path", "label", "group"])
    for wav in sorted((root / "recordings").glob("*.wav")):
        digit, speaker, _ = wav.stem.split("_")
        label = f"digit{tail}" if digit == tail else "other"
        rows.writerow([f"recordings/{wav.name}", label, speaker])
        found = found or label != "other"
if not found:
    sys.exit(f"tail-sweep: no recording of digit {tail} in {root}/recordings (TAIL_DIGIT)")
PY
recipe=(-S data.format=csv -S task.kind=clip -S budget.policy=none
        -S '~embed.encoders.frames' -S '~embed.encoders.frames_low'
        -S '~embed.encoders.frames_high' -S embed.logmel.segments=1
        -S evaluate.primary_metric=tail_f1 -S train.selection_metric=tail_f1)
"$here/run_dataset.sh" "$work/fsdd-tail" fsdd-tail tail-base "${recipe[@]}"

cd "$here/.."
export PATH="$PWD/.venv/bin:$PATH"
for sampler in shuffle balanced; do
  for smoothing in 0.0 0.3; do
    [ "$sampler$smoothing" = shuffle0.0 ] && continue   # that is tail-base
    echo "== train.sampler=$sampler train.label_smoothing=$smoothing"
    git checkout -- params.yaml   # each run starts from the committed params, as tail-base did
    name="tail-$sampler-${smoothing/./}"
    dvc exp remove --quiet "$name" 2>/dev/null || true   # a re-run replaces it
    dvc exp run --quiet --name "$name" -S data.name=fsdd-tail \
      "${recipe[@]}" -S "train.sampler=$sampler" -S "train.label_smoothing=$smoothing"
  done
done

echo "== the sweep, best validation tail F1 first (mean over train.seeds)"
dvc exp show --no-pager --md --sort-by metrics/eval.json:tail_f1 --sort-order desc \
  --drop '.*' --keep 'Experiment|tail_recall|tail_f1|train\.sampler|train\.label_smoothing'
