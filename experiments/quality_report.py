#!/usr/bin/env python3
"""Scores the runs of a quality protocol and draws docs/results.md's chart and grids.

Usage:
  make quality-report
  $(tools/venv.sh matplotlib pillow) experiments/quality_report.py [PROTOCOL] [--bin FACEGAN]
      [--unfinished] [--points FILE]

PROTOCOL is experiments/quality-runs.sh's job file (default experiments/quality-protocol.txt):
lines of RUN SHARD PRESET SEED IMAGES IMG_PER_S [LABEL]. For each run this
- checks that its latest checkpoint has reached IMAGES (a run short of it is listed, not scored,
  unless --unfinished: then it is scored where it stands and its row says so);
- runs `facegan eval --run RUN` on it unless RUN/eval/report.json already scores that
  checkpoint (2,000 samples per side at 96x80 and larger, as docs/results.md; the default at
  48x40);
- prints one row: images, quiet minutes (images / IMG_PER_S), SWD and its ratio to the
  train-vs-holdout floor, the finest level and its ratio, held-out balanced D accuracy.
Then it draws the quality-over-time chart (experiments/quality_chart.py; SWD against quiet
minutes) of the 48x40 runs that reached IMAGES (with --unfinished, the others too) into
OUT/quality-over-time.png, one series per run named LABEL (default: the preset, or the config
file's name; `-` leaves the run off the chart), plus the series of each --points FILE. Into OUT
(--out, default docs/results) it copies the sample grids of the charted runs (the run's fixed
noise, so a cell is the same latent in each): those labelled faces48 nearest 15, 30 and 60 quiet
minutes, the others nearest 60, each also zoomed 4x (experiments/zoom.py); and the eval grids of
the 96x80 runs.

Runs do not survive a fresh checkout (runs/ is ignored), so each scored run's record is kept in
the repository: RECORDS/NAME/ (--records, default experiments/runs) holds its quality.csv (the
live curve) and eval report.json. A protocol run whose directory is gone but whose record is
there is reported and charted from the record, so the chart can be redrawn after its runs are
deleted. A --points FILE (experiments/chart-points.txt) adds series by hand, in
quality_chart.py's `points:` form, for runs that have scores but no record.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def read_protocol(path):
    runs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split()
            run, shard, preset, seed, images, speed = fields[:6]
            # One quiet speed, or (a growing recipe) the image counts of 15, 30, 60, 180 minutes.
            counts = [int(c) for c in speed.split(",")] if "," in speed else None
            runs.append(
                dict(run=run, shard=shard, preset=preset, seed=int(seed),
                     images=int(images), speed=None if counts else float(speed),
                     counts=counts, label=fields[6] if len(fields) > 6 else None)
            )
    return runs


KEPT_MINUTES = (15, 30, 60, 180)


def images_at(r, minutes):
    """Images the run shows in MINUTES quiet minutes."""
    if r["speed"] is not None:
        return r["speed"] * 60 * minutes
    return _interpolate(minutes, (0,) + KEPT_MINUTES, [0] + r["counts"])


def quiet_minutes(r, images):
    """Quiet minutes the run takes to show IMAGES (a growing recipe: interpolated between the
    counts its job line gives)."""
    if r["speed"] is not None:
        return images / r["speed"] / 60
    return _interpolate(images, [0] + r["counts"], (0,) + KEPT_MINUTES)


def _interpolate(x, xs, ys):
    """Piecewise-linear y(x) through (xs, ys), extended past the last two points."""
    for i in range(1, len(xs)):
        if x <= xs[i] or i == len(xs) - 1:
            return ys[i - 1] + (ys[i] - ys[i - 1]) * (x - xs[i - 1]) / (xs[i] - xs[i - 1])


def latest_checkpoint(run):
    """The newest finished checkpoint folder (it has DONE) and its state, or (None, None)."""
    done = sorted(d for d in glob.glob(os.path.join(run, "checkpoints", "ckpt_*"))
                  if os.path.exists(os.path.join(d, "DONE")))
    if not done:
        return None, None
    with open(os.path.join(done[-1], "state.json")) as f:
        return done[-1], json.load(f)


def evaluate(bin_path, r, ckpt):
    """facegan eval on the run's latest checkpoint, unless its report already scores it."""
    report = os.path.join(r["run"], "eval", "report.json")
    if os.path.exists(report):
        with open(report) as f:
            rep = json.load(f)
        if os.path.normpath(rep["checkpoint"]["dir"]) == os.path.normpath(ckpt):
            return rep
    cmd = [bin_path, "eval", "--run", r["run"], "--data", r["shard"]]
    if "96x80" in r["shard"] or "64x64" in r["shard"]:
        cmd += ["--n", "2000"]
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(report) as f:
        return json.load(f)


def record_dir(r, records):
    """Where a run's record is kept: RECORDS/NAME/ (committed with the experiments)."""
    return os.path.join(records, os.path.basename(r["run"]))


def archive(r, rep, records):
    """Keeps a scored run's curve and eval report in its record directory."""
    dest = record_dir(r, records)
    os.makedirs(dest, exist_ok=True)
    src = os.path.join(r["run"], "quality.csv")
    if os.path.exists(src):
        shutil.copyfile(src, os.path.join(dest, "quality.csv"))
    with open(os.path.join(dest, "report.json"), "w") as f:
        json.dump(rep, f, indent=1)


def archived(r, records):
    """The kept record (directory, eval report) of a run, or (None, None)."""
    dest = record_dir(r, records)
    report = os.path.join(dest, "report.json")
    if not os.path.exists(report):
        return None, None
    with open(report) as f:
        return dest, json.load(f)


def row(r, rep, note=""):
    """One table row; NOTE (say, an unfinished run's count) goes in the last column."""
    fake, floor = rep["swd_fake_vs_holdout"], rep["swd_train_vs_holdout"]
    images = rep["checkpoint"]["images_seen"]
    acc = rep["d_accuracy_holdout"]
    finest, finest_floor = fake["per_level"][0], floor["per_level"][0]  # level 0: full size
    return (f"| {os.path.basename(r['run'])} | {images:,} | {quiet_minutes(r, images):.1f} | "
            f"**{fake['average']:.2f}** | {fake['average'] / floor['average']:.2f} | "
            f"{finest:.2f} | {finest / finest_floor:.2f} | {acc['balanced']:.3f} | {note} |")


def chart_points(path):
    """Extra chart series (quality_chart.py's LABEL@IMG_PER_S=points:... form), one per line of
    PATH: the probes of runs that have scores but no kept record."""
    with open(path) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def label(r):
    """A run's name on the chart: its LABEL, else its preset or its config file's stem."""
    if r.get("label"):
        return r["label"]
    p = r["preset"]
    return os.path.splitext(os.path.basename(p))[0] if p.endswith(".toml") else p


def zoom(py, src, stem):
    """The grid as is and its top-left cells 4x (zoom.py), as STEM.png and STEM-zoom4.png."""
    subprocess.run([py, os.path.join(HERE, "zoom.py"), src, stem], check=True,
                   stdout=subprocess.DEVNULL)


def sample(r, epoch):
    return os.path.join(r["run"], "samples", f"epoch_{epoch:04d}.png")


def grids(py, r, results, minutes_list=(15, 30, 60)):
    """A run's sample grids (its fixed noise) nearest the given quiet minutes."""
    name = os.path.basename(r["run"])
    with open(os.path.join(r["run"], "metrics.csv")) as f:
        per_epoch = int(f.readlines()[1].split(",")[2])  # images_seen after epoch 1
    for minutes in minutes_list:
        epoch = round(images_at(r, minutes) / per_epoch)
        # A run stopped by --max-images mid-epoch has no sample for its last, partial epoch.
        while epoch > 0 and not os.path.exists(sample(r, epoch)):
            epoch -= 1
        src = sample(r, epoch)
        if os.path.exists(src):
            zoom(py, src, os.path.join(results, f"{name}-{minutes}min"))
            print(f"{name}: {minutes} min = epoch {epoch} ({epoch * per_epoch:,} images)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("protocol", nargs="?", default=os.path.join(HERE, "quality-protocol.txt"))
    ap.add_argument("--bin", default=os.environ.get("FACEGAN_BIN", "target/release/facegan"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "results"),
                    help="where the chart and grids go (default docs/results)")
    ap.add_argument("--records", default=os.path.join(HERE, "runs"),
                    help="where each scored run's record is kept (default experiments/runs)")
    ap.add_argument("--points", action="append", default=[], metavar="FILE",
                    help="add the chart series of FILE (e.g. experiments/chart-points.txt)")
    ap.add_argument("--kept-images", metavar="RUN",
                    help="print the images RUN's kept record reached (0 without one) and exit; "
                         "quality-runs.sh asks this to skip runs scored in another checkout")
    ap.add_argument("--unfinished", action="store_true",
                    help="also score runs short of their IMAGES (at their latest checkpoint) "
                         "and keep their records, e.g. to chart runs that are still training")
    args = ap.parse_args()
    # Paths given are relative to where the command runs; the runs' own paths, to the root.
    args.protocol, args.out, args.records = (os.path.abspath(p) for p in
                                             (args.protocol, args.out, args.records))
    args.points = [os.path.abspath(p) for p in args.points]
    os.chdir(ROOT)
    if args.kept_images:
        _, rep = archived({"run": args.kept_images}, args.records)
        print(rep["checkpoint"]["images_seen"] if rep else 0)
        return
    py = sys.executable
    runs = read_protocol(args.protocol)
    print("| run | images | quiet minutes | SWD avg | x floor | finest level | x finest floor "
          "| held-out D accuracy | note |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    scored = []
    curves = {}  # run -> the directory its quality.csv is read from
    for r in runs:
        name = os.path.basename(r["run"])
        ckpt, state = latest_checkpoint(r["run"])
        seen = state["images_seen"] if state else 0
        kept, kept_rep = archived(r, args.records)
        kept_seen = kept_rep["checkpoint"]["images_seen"] if kept_rep else -1
        curve_dir = None  # where the chart reads this run's quality.csv, if it is drawn
        if kept_rep is not None and kept_seen >= seen and seen < r["images"]:
            # The run directory is gone (a fresh checkout) or behind its record: use the record.
            finished = kept_seen >= r["images"]
            note = "" if finished else f", unfinished: {kept_seen:,} of {r['images']:,}"
            print(row(r, kept_rep, f"kept record{note}"))
            if finished or args.unfinished:  # unfinished records and runs alike need the flag
                curve_dir = kept
        elif ckpt is None or (seen < r["images"] and not args.unfinished):
            print(f"| {name} | {seen:,} | | | | | | | not scored: short of {r['images']:,} |")
        else:
            rep = evaluate(args.bin, r, ckpt)
            archive(r, rep, args.records)
            curve_dir = r["run"]
            if seen < r["images"]:
                print(row(r, rep, f"unfinished: {seen:,} of {r['images']:,}"))
            else:
                print(row(r, rep))
                scored.append(r)
        if curve_dir and os.path.exists(os.path.join(curve_dir, "quality.csv")):
            curves[r["run"]] = curve_dir
    charted = [r for r in runs if "48x40" in r["shard"] and label(r) != "-"]
    series = [f"{label(r)} s{r['seed']}@{r['speed']}={curves[r['run']]}" for r in charted
              if r["run"] in curves]
    for path in args.points:
        series += chart_points(path)
    if series:
        out = os.path.join(args.out, "quality-over-time.png")
        subprocess.run([py, os.path.join(HERE, "quality_chart.py"), out, *series], check=True)
    for r in scored:
        if r in charted and label(r) == "faces48":
            grids(py, r, args.out)
        elif r in charted:  # the baselines: their grids at the hour, to compare
            grids(py, r, args.out, (60,))
        elif "96x80" in r["shard"]:
            zoom(py, os.path.join(r["run"], "eval", "grid.png"),
                 os.path.join(args.out, os.path.basename(r["run"])))


if __name__ == "__main__":
    main()
