#!/usr/bin/env bash
# The long CPU runs behind docs/results.md's quality-over-time chart and its 96x80 comparison,
# as one resumable queue. Each job trains a preset from scratch (or resumes it) to the number of
# images the preset shows in N minutes on a quiet 2-core CPU (its `facegan bench-train` speed),
# with one rayon thread per job and JOBS jobs at once (two single-thread jobs get more images
# per second out of two cores than one two-thread job). Stop it at any time (Ctrl-C, kill, a
# session's end): every run resumes from its last checkpoint when the script is run again, and a
# finished run is skipped. Then `facegan eval` each run and draw the chart (see the end).
#
#   make quality-runs [JOBS=2] [JOBFILE=...]  (builds, then runs this script)
#   tools/quality-runs.sh [JOBFILE]          (default: the issue-17 protocol below)
#   JOBS=2 FACEGAN_BIN=target/release/facegan tools/quality-runs.sh
#
# A JOBFILE line is: RUN_DIR SHARD PRESET SEED IMAGES, where PRESET may be a config file (*.toml).
# Each job trains with `--max-images IMAGES` (at any batch size; rerun once finished, it trains
# nothing). Shards: `facegan preprocess --input celeba-8k --output data/exp/c8k-48x40.shard
# --size 48x40` (and --size 96x80).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin="${FACEGAN_BIN:-target/release/facegan}"
jobs="${JOBS:-2}"
jobfile="${1:-}"

# Quiet-machine speeds (img/s, `facegan bench-train --preset P --steps 16`, everything else
# paused, this project's 2-core CPU; the median of 3 runs of the session-9 build, whose
# DiffAugment and minibatch stddev are 1.2-1.3x faster than before): faces48 126.3, celeba48
# 104.5, seed48 154.7, faces96 48.4, seed 43.0. The 48x40 counts are 60 minutes at these
# speeds. The 96x80 counts are older, from the build the two runs started with: the seed's is
# 180 minutes at 46 img/s (today's 43.0 gives 464,400, within the machine's +-10%), and faces96's
# 428,800 is 180 minutes at its old 39.7 img/s, 2.5 hours at today's speed: fewer images than
# it now trains in 3 hours, so a comparison at that count does not favour it.
# faces48-s0/s1 are session 6's runs (345,600 images, the old speed's hour), extended. Seed 0
# of each baseline comes before seed 1, so a first chart can be drawn halfway.
default_jobs() {
  cat <<'EOF'
runs/exp/seed96-s0    data/exp/c8k-96x80.shard seed     0 496832
runs/exp/faces96-s0   data/exp/c8k-96x80.shard faces96  0 428800
runs/exp/faces48-s0      data/exp/c8k-48x40.shard faces48  0 454700
runs/exp/faces48-s1      data/exp/c8k-48x40.shard faces48  1 454700
runs/quality/seed48-s0   data/exp/c8k-48x40.shard seed48   0 556900
runs/quality/celeba48-s0 data/exp/c8k-48x40.shard celeba48 0 376200
runs/quality/seed48-s1   data/exp/c8k-48x40.shard seed48   1 556900
runs/quality/celeba48-s1 data/exp/c8k-48x40.shard celeba48 1 376200
EOF
}

[ -x "$bin" ] || { echo "quality-runs: no binary at $bin (make build, or set FACEGAN_BIN)" >&2; exit 1; }
list="$(if [ -n "$jobfile" ]; then grep -v '^\s*#' "$jobfile"; else default_jobs; fi)"

one() { # RUN SHARD PRESET SEED IMAGES
  local run=$1 shard=$2 preset=$3 seed=$4 images=$5
  [ -f "$shard" ] || { echo "quality-runs: $run: no shard $shard" >&2; return 1; }
  local what=(--preset "$preset")
  if [[ $preset == *.toml ]]; then what=(--config "$preset"); fi
  mkdir -p "$(dirname "$run")"
  echo "$(date +%T) $run: $preset seed $seed to $images images"
  echo "== $(date '+%F %T') $bin" >>"$run.log" # appended: a resumed job keeps its earlier log
  RAYON_NUM_THREADS=1 nice -n 10 "$bin" train --data "$shard" --run "$run" "${what[@]}" \
    --seed "$seed" --epochs 200 --max-images "$images" >>"$run.log" 2>&1 \
    && echo "$(date +%T) $run: done" || echo "$(date +%T) $run: exit $? (see $run.log)"
}
export -f one
export bin
echo "$list" | grep -v '^\s*$' | xargs -P "$jobs" -L 1 bash -c 'one "$@"' _

cat <<'EOF'
Next: facegan eval --run RUN --n 2000 (96x80) or --run RUN (48x40) for each run, then
  $(tools/venv.sh matplotlib) tools/quality_chart.py docs/results/quality-over-time.png \
    faces48@126.3=runs/exp/faces48-s0 faces48@126.3=runs/exp/faces48-s1 \
    celeba48@104.5=runs/quality/celeba48-s0 celeba48@104.5=runs/quality/celeba48-s1 \
    seed48@154.7=runs/quality/seed48-s0 seed48@154.7=runs/quality/seed48-s1
EOF
