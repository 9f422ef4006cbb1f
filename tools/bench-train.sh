#!/usr/bin/env bash
# make bench-train [DEVICE=cpu|cuda]: training throughput of the seed preset at batch 64,
# facegan then the PyTorch twin (tools/torch_dcgan.py) on the same device in the same run,
# then the ratio. torch is installed from PyPI into .venv on first use.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
device="${DEVICE:-cpu}"
bin="${FACEGAN_BIN:-$root/target/release/facegan}"
steps="${STEPS:-10}"
warmup="${WARMUP:-2}"
py="${TORCH_PYTHON:-$(tools/venv.sh torch numpy)}"
f=$("$bin" bench-train --preset seed --batch 64 --warmup "$warmup" --steps "$steps" --device "$device" ${PROFILE:+--profile})
t=$("$py" tools/torch_dcgan.py --device "$device" --batch 64 --warmup "$warmup" --steps "$steps")
echo "$f"; echo "$t"
python3 - "$f" "$t" <<'PY'
import json, sys, os
f, t = (json.loads(x) for x in sys.argv[1:])
print(json.dumps({"device": f["backend"], "cpus": os.cpu_count(),
                  "facegan_img_per_s": round(f["img_per_s"], 2), "torch_img_per_s": t["img_per_s"],
                  "ratio_facegan_over_torch": round(f["img_per_s"] / t["img_per_s"], 3)}))
PY
