#!/usr/bin/env bash
# ESC-50: examples/esc50.sh PATH
#   PATH  a folder with meta/esc50.csv and audio/*.wav (the ESC-50 repository layout)
# Uses the dataset's own folds (fold 1 test, fold 2 validation, the rest train); ESC-50 keeps
# the clips cut from one source recording in one fold.
set -euo pipefail
if [ $# -ne 1 ] || [ ! -f "$1/meta/esc50.csv" ] || [ ! -d "$1/audio" ]; then
  echo "usage: $0 PATH   (PATH holds meta/esc50.csv and audio/)" >&2
  exit 2
fi
exec "$(dirname "$0")/run_dataset.sh" "$1" esc50 esc50-folds \
  -S data.format=esc50 -S task.kind=clip \
  -S budget.policy=none -S '~embed.encoders.frames' -S '~embed.encoders.frames_low' \
  -S '~embed.encoders.frames_high' \
  -S evaluate.primary_metric=accuracy -S split.method=predefined -S split.test_fold=1
