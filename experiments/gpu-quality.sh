#!/usr/bin/env bash
# The GPU counterpart of the quality runs (docs/results.md), for one GPU machine: on the face
# folder FACES (celeba-8k) at the seed's 96x80, in parallel on one GPU, each under a wall-time
# cap:
#   seed-sim   the `seed` preset (the tutorial's simultaneous step), 11 epochs, then eval;
#   seed-alt   the same with step = "alternating", 11 epochs, then eval;
#   seed-sim1  the `seed` preset with --seed 1, 3 epochs (the seed-to-seed spread of D(x), D(G(z)));
#   faces96    the `faces96` preset for MINUTES_FACES minutes, then eval;
#   twin       the PyTorch twin on the same pixels (the shard's train split), simultaneous step,
#              3 epochs, seeds 0 and 1: per-epoch D(x), D(G(z)).
# Run it only with a warm kernel cache (tools/gpu-check.sh with KERNEL_CACHE_TGZ first, on the
# same binary): four processes compiling their kernels at once spent 4.6 minutes on two steps
# each (docs/gpu.md). Everything small it writes goes to $OUT/quality.tar.gz.
#   OUT=... FACES=... [FACEGAN_BIN=...] [BUDGET_S=300] [MINUTES_FACES=3] bash experiments/gpu-quality.sh
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
OUT="${OUT:?set OUT}"
FACES="${FACES:?set FACES to a folder of face JPEGs}"
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
export FACEGAN_KERNEL_CACHE="${FACEGAN_KERNEL_CACHE:-$root/data/kernel-cache}"
bin="${FACEGAN_BIN:-$root/target/cuda/release/facegan}"
budget="${BUDGET_S:-300}"
start=$(date +%s)
left() { echo $((budget - ($(date +%s) - start))); }
res="$OUT/quality"
mkdir -p "$res" data/gpuq
exec > >(tee -a "$res/gpu-quality.log") 2>&1

"$bin" preprocess --input "$FACES" --output data/gpuq/c8k-96x80.shard --size 96x80 || exit 1
"$bin" inspect data/gpuq/c8k-96x80.shard --export-train data/gpuq/train.npy || exit 1
printf 'preset = "seed"\nstep = "alternating"\n' > data/gpuq/seed-alt.toml

# Training gets the budget less about 90 s for evals and packing.
train_min=$(python3 -c "print(max(0.5, ($(left) - 90) / 60))")
faces_min="${MINUTES_FACES:-$train_min}"
echo "== training caps: ${train_min} min (faces96 ${faces_min} min); $(left)s left"
run() { # NAME ARGS...: train, then eval, logging to $res/NAME.log
  local name=$1
  shift
  (RAYON_NUM_THREADS=3 "$bin" train --data data/gpuq/c8k-96x80.shard --run "runs/gpuq/$name" \
    --device cuda --new "$@" &&
    RAYON_NUM_THREADS=3 "$bin" eval --run "runs/gpuq/$name" --device cuda --n 2000) \
    > "$res/$name.log" 2>&1
  echo "== $name: exit $?"
}
run seed-sim --preset seed --epochs 11 --minutes "$train_min" &
run seed-alt --config data/gpuq/seed-alt.toml --epochs 11 --minutes "$train_min" &
run seed-sim1 --preset seed --seed 1 --epochs 3 --minutes "$train_min" &
run faces96 --preset faces96 --minutes "$faces_min" &
(for s in 0 1; do
  python3 tools/torch_dcgan.py --device cuda --train-npy data/gpuq/train.npy --epochs 3 --seed "$s" \
    > "$res/twin-seed$s.json" 2> "$res/twin-seed$s.log"
done; echo "== twin done") &
wait
for r in runs/gpuq/*/; do
  n=$(basename "$r")
  for f in metrics.csv quality.csv train.log config.toml; do cp "$r/$f" "$res/$n-$f" 2>/dev/null; done
  for f in report.json grid.png nn.png; do cp "$r/eval/$f" "$res/$n-$f" 2>/dev/null; done
done
tar -czf "$OUT/quality.tar.gz" -C "$OUT" quality && rm -rf "$res"
echo "== gpu-quality done, $(left)s of the budget left"
