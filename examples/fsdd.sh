#!/usr/bin/env bash
# Free Spoken Digit Dataset: examples/fsdd.sh PATH METHOD
#   PATH    a folder with recordings/{digit}_{speaker}_{index}.wav
#   METHOD  group  (speaker-independent: no speaker in two splits)
#           random (leaky on purpose: the same voices in train and test)
set -euo pipefail
if [ $# -ne 2 ] || [ ! -d "$1/recordings" ] || { [ "$2" != group ] && [ "$2" != random ]; }; then
  echo "usage: $0 PATH group|random   (PATH holds recordings/{digit}_{speaker}_{index}.wav)" >&2
  exit 2
fi
leak=false
[ "$2" = random ] && leak=true
exec "$(dirname "$0")/run_dataset.sh" "$1" fsdd "fsdd-$2" \
  -S data.format=fsdd -S task.kind=clip \
  -S budget.policy=none -S '~embed.encoders.frames' -S '~embed.encoders.frames_low' \
  -S '~embed.encoders.frames_high' -S embed.logmel.segments=4 \
  -S evaluate.primary_metric=accuracy -S "split.method=$2" -S "split.allow_leakage=$leak"
