#!/usr/bin/env bash
# make demo: from nothing to a trained generator and its report page on a CPU, in minutes.
# synth faces -> preprocess -> train the `demo` preset -> eval. Rerunning reuses what is built:
# the synthetic set and shard are kept, training resumes (and is done once finished).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin="$root/target/release/facegan"
count="${DEMO_COUNT:-2000}"
faces=data/demo/faces
shard=data/demo/faces.shard
run=runs/demo
t0=$(date +%s)

"$bin" synth --out "$faces" --count "$count" --seed 42
if [ ! -f "$shard" ] || [ -n "$(find "$faces" -newer "$shard" -print -quit)" ]; then
  "$bin" preprocess --input "$faces" --output "$shard" --size 48x40
else
  echo "reusing $shard"
fi
"$bin" train --data "$shard" --run "$run" --preset demo --device cpu ${DEMO_EPOCHS:+--epochs "$DEMO_EPOCHS"}
"$bin" eval --run "$run" --device cpu --n 2000 | tee "$run/eval.txt"
echo
echo "demo done in $(( $(date +%s) - t0 )) s"
echo "report:  $root/$run/eval/report.html"
echo "grid:    $root/$run/eval/grid.png   samples per epoch: $root/$run/samples/"
