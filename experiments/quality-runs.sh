#!/usr/bin/env bash
# The long CPU runs behind docs/results.md (the quality-over-time chart, the hour-long ablations
# and the 96x80 comparison), as one resumable queue. Each job trains a preset or config from
# scratch (or resumes it) to the number of images the preset shows in N minutes on a quiet 2-core
# CPU, with one rayon thread per job and JOBS jobs at once (two single-thread jobs get more
# images per second out of two cores than one two-thread job). Stop it at any time (Ctrl-C,
# kill, a reboot): every run resumes from its last checkpoint when the script is run again, and
# a finished run trains nothing. Then `make quality-report` scores the runs and draws the chart
# and grids.
#
#   make quality-runs [JOBS=2] [THREADS=1] [JOBFILE=...]  (builds, then runs this script)
#   experiments/quality-runs.sh [JOBFILE]    (default: experiments/quality-protocol.txt)
#   JOBS=2 FACEGAN_BIN=target/release/facegan experiments/quality-runs.sh
#   JOBS=1 THREADS=2 experiments/quality-runs.sh   (one job left, say a 3-hour 96x80 run: give
#                                                  it both cores instead of leaving one idle)
#
# A JOBFILE line is: RUN_DIR SHARD PRESET SEED IMAGES [IMG_PER_S [LABEL]], where PRESET may be a
# config file (*.toml; its `epochs` should cover IMAGES); `#` starts a comment line. Each job
# trains with `--max-images IMAGES` (at any batch size) and keeps the checkpoints at 15, 30, 60
# and 180 quiet minutes (`--keep-at`, from IMG_PER_S). A recipe whose speed changes during the
# run (a growing one) gives those four image counts instead of one speed, comma-separated
# (A,B,C,D). LABEL is for the report.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin="${FACEGAN_BIN:-target/release/facegan}"
jobs="${JOBS:-2}"
threads="${THREADS:-1}" # rayon threads per job
jobfile="${1:-experiments/quality-protocol.txt}"

[ -x "$bin" ] || { echo "quality-runs: no binary at $bin (make build, or set FACEGAN_BIN)" >&2; exit 1; }
[ -f "$jobfile" ] || { echo "quality-runs: no job file $jobfile" >&2; exit 1; }

one() { # RUN SHARD PRESET SEED IMAGES [IMG_PER_S [LABEL]]
  local run=$1 shard=$2 preset=$3 seed=$4 images=$5
  # A run scored in another checkout has its record in experiments/runs/ (quality_report.py
  # keeps it and says where), but no directory here: if the record reached IMAGES, training it
  # again would only repeat it. A run with only an unfinished record trains again.
  local seen
  if [ ! -d "$run" ]; then
    seen=$(python3 experiments/quality_report.py --kept-images "$run") || seen=0
    if [ "${seen:-0}" -ge "$images" ]; then echo "$run: its kept record reached $images images, skipped"; return 0; fi
  fi
  [ -f "$shard" ] || { echo "quality-runs: $run: no shard $shard" >&2; return 1; }
  # A preset runs for 200 epochs, so --max-images ends it; a config file's own `epochs` set
  # the run's length (a learning-rate decay follows them; --max-images only pauses).
  local what=(--preset "$preset" --epochs 200)
  if [[ $preset == *.toml ]]; then what=(--config "$preset"); fi
  # The checkpoints the results pages show are kept for good: those at 15, 30, 60 and 180
  # quiet minutes (IMG_PER_S x 60 x minutes, rounded to the hundred) within the budget.
  local keep=() speed=${6:-} m k rc
  if [[ $speed == *,* ]]; then
    for k in ${speed//,/ }; do [ "$k" -le "$images" ] && keep+=("$k"); done
  elif [ -n "$speed" ]; then
    for m in 15 30 60 180; do
      k=$(python3 -c "print(round($speed * 60 * $m / 100) * 100)")
      [ "$k" -le "$images" ] && keep+=("$k")
    done
  fi
  [ ${#keep[@]} -gt 0 ] && what+=(--keep-at "$(IFS=,; echo "${keep[*]}")")
  mkdir -p "$(dirname "$run")"
  echo "$(date +%T) $run: $preset seed $seed to $images images"
  echo "== $(date '+%F %T') $bin" >>"$run.log" # appended: a resumed job keeps its earlier log
  RAYON_NUM_THREADS=$threads nice -n 10 "$bin" train --data "$shard" --run "$run" "${what[@]}" \
    --seed "$seed" --max-images "$images" >>"$run.log" 2>&1 && rc=0 || rc=$?
  if [ "$rc" = 0 ]; then echo "$(date +%T) $run: done"; else echo "$(date +%T) $run: exit $rc (see $run.log)"; fi
}
export -f one
export bin threads
grep -v -e '^\s*#' -e '^\s*$' "$jobfile" | xargs -P "$jobs" -L 1 bash -c 'one "$@"' _
echo "Next: make quality-report (facegan eval of each finished run, the chart and the grids)"
