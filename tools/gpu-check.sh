#!/usr/bin/env bash
# GPU checks in one prepared run, for any Linux machine with an NVIDIA GPU and a CUDA 13 driver,
# with no Rust and no network there. Build beforehand (here):
#   make build-cuda && mkdir -p dist && gzip -c target/cuda/release/facegan > dist/facegan-cuda.gz
# Then run on the GPU machine, from the repository root:
#   OUT=/some/dir [FACES=/path/to/jpegs] [KERNEL_CACHE_TGZ=kernel-cache.tar.gz] [BUDGET_S=540] \
#     bash tools/gpu-check.sh
#
# The steps run in order of what they tell us, each only if the time left allows it, under a
# total budget (BUDGET_S seconds, default 540, for a machine that gives one command 600 s):
#   1. the torch twin (eager TF32, then bf16 + channels-last): the reference numbers;
#   2. `facegan warmup` twice, in fresh processes: the first start (kernels compiled through
#      NVRTC unless the cache has them, logged by CubeCL to cubecl-first.log) and a warm start
#      (the kernel cache just written);
#   3. `facegan bench-train`, seed preset, batch 64; then the 96x80 recipes: the presets faces96
#      and grow96 and the configs experiments/sweep-96x80/HALFG96.toml and GROW48.toml (each
#      growing one at each phase of its growth);
#   4. with FACES: preprocess, a short training run (EPOCHS, default 2), eval.
# Kernel cache: KERNEL_CACHE_TGZ names a tarball of an earlier run's cache to start from; there
# is no default, and without it the run starts cold (every kernel compiled, minutes). The
# project keeps its last H200 cache outside the repository, at
# ../shared/gpu/kernel-cache-h200.tar.gz beside the checkout. The cache is packed into
# $OUT/kernel-cache.tar.gz after every facegan step, so a run cut short still brings it back;
# copy it over the one in ../shared/gpu/ to start the next run warmer.
# Every step's wall time goes to $OUT/timings.jsonl as it ends; summary.json comes last.
#
# On a GPU machine that receives a copy of the working tree (only tracked files and the ignored
# paths carried with the call travel, 64 MiB at most): build here, then carry and run in one call:
#   make build-cuda && mkdir -p dist && gzip -c target/cuda/release/facegan > dist/facegan-cuda.gz
#   cp ../shared/gpu/kernel-cache-h200.tar.gz data/   # into the tree, so it can be carried
#   # optional: ~30 MB of JPEGs in data/gpu-faces/
# then the call, carrying dist, data/kernel-cache-h200.tar.gz and data/gpu-faces:
#   OUT=$OUT FACES=data/gpu-faces KERNEL_CACHE_TGZ=data/kernel-cache-h200.tar.gz bash tools/gpu-check.sh
# (add REF=.gpu/bench/torch_dcgan.py, carrying .gpu, to time the shared reference as well)
# with a command timeout of BUDGET_S + 30 s or more.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
OUT="${OUT:?set OUT to the results folder}"
mkdir -p "$OUT"
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
export CUDA_PATH="${CUDA_PATH:-/usr/local/cuda}"
export FACEGAN_KERNEL_CACHE="${FACEGAN_KERNEL_CACHE:-$root/data/kernel-cache}"
budget="${BUDGET_S:-540}"
start=$(date +%s)
log="$OUT/gpu-check.log"
exec > >(tee -a "$log") 2>&1

bin="${FACEGAN_BIN:-$root/target/cuda/release/facegan}"
if [ ! -x "$bin" ] && [ -f dist/facegan-cuda.gz ]; then
  mkdir -p "$(dirname "$bin")" && gunzip -c dist/facegan-cuda.gz > "$bin" && chmod +x "$bin"
fi
[ -x "$bin" ] || { echo "no CUDA binary at $bin"; exit 1; }
# The kernel cache to start from: only the one named (no default), else a cold start.
if [ -n "${KERNEL_CACHE_TGZ:-}" ]; then
  [ -f "$KERNEL_CACHE_TGZ" ] || { echo "no kernel cache at KERNEL_CACHE_TGZ=$KERNEL_CACHE_TGZ"; exit 1; }
  mkdir -p "$FACEGAN_KERNEL_CACHE" && tar -xzf "$KERNEL_CACHE_TGZ" -C "$FACEGAN_KERNEL_CACHE"
  echo "kernel cache restored from $KERNEL_CACHE_TGZ"
else
  echo "no KERNEL_CACHE_TGZ: starting cold (every kernel is compiled, minutes)"
fi
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true

left() { echo $((budget - ($(date +%s) - start))); }
save_cache() {
  [ -d "$FACEGAN_KERNEL_CACHE" ] &&
    tar -czf "$OUT/kernel-cache.tar.gz.tmp" -C "$FACEGAN_KERNEL_CACHE" . 2>/dev/null &&
    mv "$OUT/kernel-cache.tar.gz.tmp" "$OUT/kernel-cache.tar.gz"
}
# step NAME MIN_SECONDS COMMAND...: runs COMMAND under a timeout of the time left (less 20 s for
# packing up) if at least MIN_SECONDS are left, and records its wall time and exit status.
step() {
  local name=$1 need=$2
  shift 2
  local avail=$(($(left) - 20))
  if [ "$avail" -lt "$need" ]; then
    echo "== $name: skipped, ${avail}s left of the budget (needs ${need}s)"
    echo "{\"step\": \"$name\", \"skipped\": true, \"seconds_left\": $avail}" >> "$OUT/timings.jsonl"
    return 1
  fi
  echo "== $name (up to ${avail}s)"
  local s=$(date +%s.%N)
  timeout "$avail" "$@"
  local rc=$?
  local wall
  wall=$(python3 -c "import time; print(round(time.time() - $s, 2))")
  echo "== $name: exit $rc, ${wall}s"
  echo "{\"step\": \"$name\", \"exit\": $rc, \"wall_s\": $wall}" >> "$OUT/timings.jsonl"
  return $rc
}

step torch-eager 30 sh -c "python3 tools/torch_dcgan.py --device cuda --warmup 5 --steps 50 > '$OUT/torch-eager.json'"
step torch-amp 30 sh -c "python3 tools/torch_dcgan.py --device cuda --warmup 5 --steps 50 --amp --channels-last > '$OUT/torch-amp.json'"
# The independent reference (REF: a copy of the shared torch_dcgan.py, carried in an ignored
# folder), in its defaults: the tutorial's simultaneous step and Keras padding.
if [ -n "${REF:-}" ] && [ -f "$REF" ]; then
  step ref-eager 30 sh -c "python3 '$REF' --device cuda --warmup 5 --steps 50 > '$OUT/ref-eager.json'"
  step ref-amp 30 sh -c "python3 '$REF' --device cuda --warmup 5 --steps 50 --amp --channels-last > '$OUT/ref-amp.json'"
fi

# First start (cold without KERNEL_CACHE_TGZ), with CubeCL's log of every compilation, then a
# warm start from the cache it wrote.
step warmup-first 60 sh -c "CUBECL_DEBUG_LOG='$OUT/cubecl-first.log' '$bin' warmup --device cuda --preset seed > '$OUT/warmup-first.json'"
save_cache
step warmup-second 20 sh -c "'$bin' warmup --device cuda --preset seed > '$OUT/warmup-second.json'"
save_cache

step facegan-bench 30 sh -c "'$bin' bench-train --preset seed --batch 64 --warmup 5 --steps 50 --device cuda > '$OUT/facegan-bench.json'"
save_cache

# The 96x80 recipes: faces96, HALFG96 (its half-width G), and grow96 and GROW48 at each phase of
# their growth (each size, each fade-in).
step faces96-bench 40 sh -c "'$bin' bench-train --preset faces96 --warmup 3 --steps 20 --device cuda > '$OUT/faces96-bench.json'"
step halfg96-bench 40 sh -c "'$bin' bench-train --config experiments/sweep-96x80/HALFG96.toml --warmup 3 --steps 20 --device cuda > '$OUT/halfg96-bench.json'"
step grow96-bench 60 sh -c "'$bin' bench-train --preset grow96 --warmup 3 --steps 20 --device cuda > '$OUT/grow96-bench.json'"
step grow48-bench 50 sh -c "'$bin' bench-train --config experiments/sweep-96x80/GROW48.toml --warmup 3 --steps 20 --device cuda > '$OUT/grow48-bench.json'"
save_cache

if [ -n "${FACES:-}" ]; then
  step preprocess 20 "$bin" preprocess --input "$FACES" --output data/gpu.shard &&
    step train 60 "$bin" train --data data/gpu.shard --run runs/gpu --preset seed \
      --epochs "${EPOCHS:-2}" --device cuda --new
  cp runs/gpu/metrics.csv runs/gpu/train.log "$OUT/" 2>/dev/null
  cp runs/gpu/samples/epoch_*.png "$OUT/" 2>/dev/null
  save_cache
  step eval 40 "$bin" eval --run runs/gpu --device cuda --n 2000 &&
    cp runs/gpu/eval/grid.png runs/gpu/eval/report.json "$OUT/" 2>/dev/null
fi

python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
def load(name):
    try:
        return json.loads(open(os.path.join(out, name)).read().strip().splitlines()[-1])
    except Exception as e:
        return {"error": str(e)}
f, te, ta = load("facegan-bench.json"), load("torch-eager.json"), load("torch-amp.json")
summary = {"facegan": f, "torch_eager": te, "torch_amp": ta,
           "ref_eager": load("ref-eager.json"), "ref_amp": load("ref-amp.json"),
           "warmup_first": load("warmup-first.json"), "warmup_second": load("warmup-second.json"),
           "faces96": load("faces96-bench.json"), "halfg96": load("halfg96-bench.json"),
           "grow96": load("grow96-bench.json"),
           "grow48": load("grow48-bench.json")}
try:
    summary["steps"] = [json.loads(l) for l in open(os.path.join(out, "timings.jsonl"))]
except OSError:
    pass
if "img_per_s" in f and "img_per_s" in te:
    summary["ratio_vs_torch_eager"] = round(f["img_per_s"] / te["img_per_s"], 3)
if "img_per_s" in f and "img_per_s" in ta:
    summary["ratio_vs_torch_amp"] = round(f["img_per_s"] / ta["img_per_s"], 3)
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
print(json.dumps(summary))
PY
