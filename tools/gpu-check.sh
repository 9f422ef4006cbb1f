#!/usr/bin/env bash
# GPU checks in one prepared run, for any Linux machine with an NVIDIA GPU and a CUDA 13 driver,
# with no Rust and no network there. Build beforehand (here):
#   make build-cuda && gzip -c target/cuda/release/facegan > dist/facegan-cuda.gz
# Then run on the GPU machine, from the repository root:
#   OUT=/some/dir FACES=/path/to/jpegs [KERNEL_CACHE_TGZ=kernel-cache.tar.gz] bash tools/gpu-check.sh
# It writes to $OUT: nvidia-smi.txt, torch-*.json, facegan-bench.json, train.log, metrics.csv,
# grid.png, report.json, summary.json and kernel-cache.tar.gz (bring it back so the next run
# on a fresh machine starts warm).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
OUT="${OUT:?set OUT to the results folder}"
mkdir -p "$OUT"
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
export CUDA_PATH="${CUDA_PATH:-/usr/local/cuda}"
export FACEGAN_KERNEL_CACHE="${FACEGAN_KERNEL_CACHE:-$root/data/kernel-cache}"
log="$OUT/gpu-check.log"
exec > >(tee -a "$log") 2>&1

bin="${FACEGAN_BIN:-$root/target/cuda/release/facegan}"
if [ ! -x "$bin" ] && [ -f dist/facegan-cuda.gz ]; then
  mkdir -p target/cuda/release && gunzip -c dist/facegan-cuda.gz > "$bin" && chmod +x "$bin"
fi
[ -x "$bin" ] || { echo "no CUDA binary at $bin"; exit 1; }
if [ -n "${KERNEL_CACHE_TGZ:-}" ] && [ -f "$KERNEL_CACHE_TGZ" ]; then
  mkdir -p "$FACEGAN_KERNEL_CACHE" && tar -xzf "$KERNEL_CACHE_TGZ" -C "$FACEGAN_KERNEL_CACHE"
  echo "kernel cache restored from $KERNEL_CACHE_TGZ"
fi
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
t() { date +%s.%N; }
since() { python3 -c "print(round($(t) - $1, 2))"; }

echo "== torch twin (eager TF32, then bf16 + channels-last)"
python3 tools/torch_dcgan.py --device cuda --warmup 5 --steps 50 > "$OUT/torch-eager.json"
python3 tools/torch_dcgan.py --device cuda --warmup 5 --steps 50 --amp --channels-last > "$OUT/torch-amp.json"

echo "== cold start: warmup in a fresh process (cache as restored), then again (warm)"
for pass in first second; do
  s=$(t)
  timeout 900 "$bin" warmup --device cuda --preset seed > "$OUT/warmup-$pass.json"
  echo "warmup $pass: wall $(since "$s") s"
done

echo "== facegan bench"
s=$(t)
timeout 900 "$bin" bench-train --preset seed --batch 64 --warmup 5 --steps 50 --device cuda > "$OUT/facegan-bench.json"
echo "bench wall $(since "$s") s"

if [ -n "${FACES:-}" ]; then
  echo "== preprocess + train 3 epochs + eval on $FACES"
  "$bin" preprocess --input "$FACES" --output data/gpu.shard
  s=$(t)
  timeout 1200 "$bin" train --data data/gpu.shard --run runs/gpu --preset seed --epochs "${EPOCHS:-3}" --device cuda --new
  echo "train wall $(since "$s") s"
  cp runs/gpu/metrics.csv runs/gpu/train.log "$OUT/" 2>/dev/null
  timeout 600 "$bin" eval --run runs/gpu --device cuda --n 10000
  cp runs/gpu/eval/grid.png runs/gpu/eval/report.json "$OUT/" 2>/dev/null
fi

tar -czf "$OUT/kernel-cache.tar.gz" -C "$FACEGAN_KERNEL_CACHE" . 2>/dev/null || true
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
def load(name):
    try:
        return json.loads(open(os.path.join(out, name)).read().strip().splitlines()[-1])
    except Exception as e:
        return {"error": str(e)}
f, te, ta = load("facegan-bench.json"), load("torch-eager.json"), load("torch-amp.json")
summary = {"facegan": f, "torch_eager": te, "torch_amp": ta}
if "img_per_s" in f and "img_per_s" in te:
    summary["ratio_vs_torch_eager"] = round(f["img_per_s"] / te["img_per_s"], 3)
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
print(json.dumps(summary))
PY
