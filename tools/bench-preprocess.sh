#!/usr/bin/env bash
# make bench-preprocess: images/s on the same 178x218 input, side by side in one run:
#   (a) facegan preprocess, (b) the decode-only floor (same decoder, same files), (c) Pillow.
# Input: $BENCH_INPUT (any folder of images), else 4,000 synthetic 178x218 faces.
# Prints one JSON line per implementation, then the ratios.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin="$root/target/release/facegan"
work="$root/data/bench"
mkdir -p "$work"
input="${BENCH_INPUT:-$work/synth-178x218}"
if [ -z "${BENCH_INPUT:-}" ]; then
  "$bin" synth --out "$input" --count "${BENCH_COUNT:-4000}" --seed 1 >&2
fi
py="$(tools/venv.sh pillow numpy)"
# Warm the page cache so every contender reads from memory.
cat "$input"/* > /dev/null 2>&1 || true

"$bin" preprocess --input "$input" --output "$work/bench.shard" >&2
a=$(python3 -c "import json;r=json.load(open('$work/bench.shard.report.json'));print(json.dumps({'impl':'facegan-preprocess','files':r['read'],'seconds':r['seconds'],'img_per_s':r['images_per_s']}))")
b=$("$bin" bench-decode --input "$input")
c=$("$py" tools/pillow_preprocess.py "$input" "$work/bench-pillow.npy")
echo "$a"; echo "$b"; echo "$c"
python3 - "$a" "$b" "$c" <<'PY'
import json, sys, os
a, b, c = (json.loads(x) for x in sys.argv[1:])
print(json.dumps({"cpus": os.cpu_count(), "files": a["files"],
                  "preprocess_vs_decode_only": round(a["img_per_s"] / b["img_per_s"], 3),
                  "preprocess_vs_pillow": round(a["img_per_s"] / c["img_per_s"], 3),
                  "targets": {"preprocess_vs_decode_only": ">= 0.8", "preprocess_vs_pillow": ">= 3"}}))
PY
