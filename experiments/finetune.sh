#!/usr/bin/env bash
# Fine-tuning against training from scratch on 1,000 faces, in two settings (docs/results.md,
# "Fine-tuning on 1,000 faces"), as one resumable script:
#   - data efficiency: celeba-8k split by file name into a source part (the first 5,000), a small
#     set (the next 1,000) and an evaluation set (the last 2,000) that neither trains on;
#   - a domain shift: 1,000 faces drawn by `facegan synth` as the small set (photos to cartoons),
#     scored against 2,000 other synthetic faces.
# The source run is faces48 trained on the source part; every small-set run trains faces48 for
# the same number of images, from scratch or `--init-from` the source (G, its EMA and D; fresh
# optimizers). The source trains for SOURCE_IMAGES (default 15 quiet minutes of faces48 on a
# 2-core CPU: 126.3 img/s x 900 s = 113,700) on both cores; then the four small-set runs train for
# IMAGES each (default 10 quiet minutes, 75,800), two single-thread jobs at a time. Stop it
# at any time: rerunning it resumes every run from its last checkpoint, and a finished run trains
# nothing. Each small-set run is then scored by `facegan eval` at the checkpoints it kept (its
# held-out set with `--n 2000`, which scores 1,000 per side: the small set's size; with the
# memorisation check), `facegan compare` and
# experiments/finetune_chart.py draw their quality curves, and experiments/side_by_side.py puts
# each pair's samples (the same latents) side by side.
#
#   experiments/finetune.sh [CELEBA_8K_DIR]      (default ../shared/datasets/celeba-8k)
#   IMAGES=37900 experiments/finetune.sh          (5 quiet minutes per small-set run)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin="${FACEGAN_BIN:-target/release/facegan}"
celeba="$(cd "${1:-../shared/datasets/celeba-8k}" && pwd)"
images="${IMAGES:-75800}"
source_images="${SOURCE_IMAGES:-113700}"
# The small-set runs' kept checkpoints, scored and drawn below: a third, two thirds and all.
kept=("$((images / 300 * 100))" "$((images * 2 / 300 * 100))" "$images")
data=data/finetune
runs=runs/finetune
[ -x "$bin" ] || { echo "finetune: no binary at $bin (make build, or set FACEGAN_BIN)" >&2; exit 1; }
mkdir -p "$data" "$runs"

# A folder of links to TRAIN_LIST and EVAL_LIST (files of absolute paths) with a CelebA-style
# list_eval_partition.txt (0 = train, 1 = held out), so preprocess splits it by name.
link_split() { # DIR TRAIN_LIST EVAL_LIST
  local dir=$1 f
  [ -f "$dir/list_eval_partition.txt" ] && return 0
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  while read -r f; do ln -s "$f" "$dir.tmp/"; echo "$(basename "$f") 0"; done <"$2" >"$dir.tmp/parts"
  while read -r f; do ln -s "$f" "$dir.tmp/"; echo "$(basename "$f") 1"; done <"$3" >>"$dir.tmp/parts"
  mv "$dir.tmp/parts" "$dir.tmp/list_eval_partition.txt"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

shard() { # FOLDER SHARD
  [ -f "$2" ] || "$bin" preprocess --input "$1" --output "$2" --size 48x40
}

# The splits: by sorted file name, so the same folder always gives the same parts.
find "$celeba" -maxdepth 1 -name '*.jpg' | sort >"$data/celeba.txt"
[ "$(wc -l <"$data/celeba.txt")" -ge 8000 ] || { echo "finetune: $celeba has fewer than 8,000 JPEGs" >&2; exit 1; }
sed -n '1,5000p' "$data/celeba.txt" >"$data/source.txt"
sed -n '5001,6000p' "$data/celeba.txt" >"$data/small.txt"
sed -n '6001,8000p' "$data/celeba.txt" >"$data/eval.txt"
link_split "$data/photos-source" "$data/source.txt" "$data/eval.txt"
link_split "$data/photos-small" "$data/small.txt" "$data/eval.txt"
if [ ! -f "$data/synth.txt" ]; then
  "$bin" synth --out "$data/synth-all" --count 3000 --seed 11
  find "$(cd "$data/synth-all" && pwd)" -name '*.jpg' | sort >"$data/synth.txt.tmp"
  mv "$data/synth.txt.tmp" "$data/synth.txt"
fi
sed -n '1,1000p' "$data/synth.txt" >"$data/synth-small.txt"
sed -n '1001,3000p' "$data/synth.txt" >"$data/synth-eval.txt"
link_split "$data/synth-small" "$data/synth-small.txt" "$data/synth-eval.txt"
shard "$data/photos-source" "$data/photos-source.shard"
shard "$data/photos-small" "$data/photos-small.shard"
shard "$data/synth-small" "$data/synth-small.shard"

# One run (faces48, seed 0) to COUNT images on THREADS rayon threads, keeping the checkpoints at
# a third, two thirds and all of the budget for the grids.
train() { # RUN SHARD COUNT THREADS [ARGS...]
  local run=$1 shard=$2 count=$3 threads=$4; shift 4
  echo "$(date +%T) $run: faces48 to $count images $*"
  echo "== $(date '+%F %T') $bin" >>"$run.log"
  RAYON_NUM_THREADS=$threads nice -n 10 "$bin" train --data "$shard" --run "$run" --preset faces48 \
    --epochs 100000 --seed 0 --max-images "$count" \
    --keep-at "$((count / 300 * 100)),$((count * 2 / 300 * 100)),$count" "$@" >>"$run.log" 2>&1 \
    || { echo "$(date +%T) $run: failed (see $run.log)" >&2; return 1; }
  echo "$(date +%T) $run: done"
}

from="$runs/source:images:$source_images"
train "$runs/source" "$data/photos-source.shard" "$source_images" 2
(train "$runs/photos-tuned" "$data/photos-small.shard" "$images" 1 --init-from "$from" &&
  train "$runs/synth-tuned" "$data/synth-small.shard" "$images" 1 --init-from "$from") &
lane=$!
train "$runs/photos-scratch" "$data/photos-small.shard" "$images" 1
train "$runs/synth-scratch" "$data/synth-small.shard" "$images" 1
wait "$lane"

# Scores: each small-set run at the checkpoints it kept (a third, two thirds and all of the
# budget), against its evaluation set (1,000 faces per side), with the memorisation check; the
# report of each count goes to RUN/eval-COUNT. Two runs are scored at a time.
score() { # RUN
  local run=$1 at
  for at in "${kept[@]}"; do
    [ -f "$run/eval-$at/report.json" ] && continue
    RAYON_NUM_THREADS=1 "$bin" eval --run "$run" --checkpoint "images:$at" --n 2000 \
      --out "$run/eval-$at" >>"$run.log" 2>&1 \
      || { echo "$(date +%T) $run: eval at $at images failed (see $run.log)" >&2; return 1; }
  done
}
(score "$runs/photos-scratch" && score "$runs/synth-scratch") &
lane=$!
score "$runs/photos-tuned"
score "$runs/synth-tuned"
wait "$lane"
"$bin" compare "$runs/photos-scratch" "$runs/photos-tuned" --out "$runs/compare-photos"
"$bin" compare "$runs/synth-scratch" "$runs/synth-tuned" --out "$runs/compare-synth"

# The pictures of docs/results.md: each pair's curves (the live probes and the scores at the
# kept checkpoints, with their spread), and the same 36 latents (seed 7) from scratch and
# fine-tuned, at a third of the budget and at its end, side by side.
py="$(tools/venv.sh matplotlib pillow)"
for set in photos synth; do
  "$py" experiments/finetune_chart.py "$runs/compare-$set/curves.png" \
    "from scratch=$runs/$set-scratch" "fine-tuned=$runs/$set-tuned"
  for at in "${kept[0]}" "${kept[2]}"; do
    for r in scratch tuned; do
      "$bin" sample --run "$runs/$set-$r" --checkpoint "images:$at" --n 36 --seed 7 \
        --out "$runs/$set-$r/sample-$at.png" >/dev/null
    done
    "$py" experiments/side_by_side.py "$runs/compare-$set/grids-$at.png" \
      "from scratch, $at images=$runs/$set-scratch/sample-$at.png" \
      "fine-tuned, $at images=$runs/$set-tuned/sample-$at.png"
  done
done
echo "finetune: scored; the reports are $runs/*/eval-*/report.html, the curves and grids $runs/compare-*"
