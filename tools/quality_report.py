#!/usr/bin/env python3
"""Scores the runs of a quality protocol and draws docs/results.md's chart and grids.

Usage:
  make quality-report
  $(tools/venv.sh matplotlib pillow) tools/quality_report.py [PROTOCOL] [--bin FACEGAN]

PROTOCOL is tools/quality-runs.sh's job file (default tools/quality-protocol.txt): lines of
RUN SHARD PRESET SEED IMAGES IMG_PER_S. For each run this
- checks that its latest checkpoint has reached IMAGES (a run short of it is listed, not scored);
- runs `facegan eval --run RUN` on it unless RUN/eval/report.json already scores that
  checkpoint (2,000 samples per side at 96x80 and larger, as docs/results.md; the default at
  48x40);
- prints one row: images, quiet minutes (images / IMG_PER_S), SWD and its ratio to the
  train-vs-holdout floor, the finest level and its ratio, held-out balanced D accuracy.
Then it draws the quality-over-time chart of the 48x40 runs (tools/quality_chart.py; SWD against
quiet minutes) into OUT/quality-over-time.png, and copies into OUT (--out, default docs/results) each
faces48 run's sample grids nearest 15, 30 and 60 quiet minutes (the run's fixed noise, so a
cell is the same latent in each), each also zoomed 4x (tools/zoom.py), and the eval grids of
the 96x80 runs.
"""
import argparse
import glob
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_protocol(path):
    runs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            run, shard, preset, seed, images, speed = line.split()[:6]
            runs.append(
                dict(run=run, shard=shard, preset=preset, seed=int(seed),
                     images=int(images), speed=float(speed))
            )
    return runs


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


def row(r, rep):
    fake, floor = rep["swd_fake_vs_holdout"], rep["swd_train_vs_holdout"]
    images = rep["checkpoint"]["images_seen"]
    acc = rep["d_accuracy_holdout"]
    finest, finest_floor = fake["per_level"][0], floor["per_level"][0]  # level 0: full size
    return (f"| {os.path.basename(r['run'])} | {images:,} | {images / r['speed'] / 60:.1f} | "
            f"**{fake['average']:.2f}** | {fake['average'] / floor['average']:.2f} | "
            f"{finest:.2f} | {finest / finest_floor:.2f} | {acc['balanced']:.3f} |")


def zoom(py, src, stem):
    """The grid as is and its top-left cells 4x (tools/zoom.py), as STEM.png, STEM-zoom4.png."""
    subprocess.run([py, os.path.join(ROOT, "tools", "zoom.py"), src, stem], check=True,
                   stdout=subprocess.DEVNULL)


def grids(py, r, results):
    """faces48's sample grids (the run's fixed noise) nearest 15, 30 and 60 quiet minutes."""
    name = os.path.basename(r["run"])
    with open(os.path.join(r["run"], "metrics.csv")) as f:
        per_epoch = int(f.readlines()[1].split(",")[2])  # images_seen after epoch 1
    for minutes in (15, 30, 60):
        epoch = round(r["speed"] * 60 * minutes / per_epoch)
        src = os.path.join(r["run"], "samples", f"epoch_{epoch:04d}.png")
        if os.path.exists(src):
            zoom(py, src, os.path.join(results, f"{name}-{minutes}min"))
            print(f"{name}: {minutes} min = epoch {epoch} ({epoch * per_epoch:,} images)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("protocol", nargs="?",
                    default=os.path.join(ROOT, "tools", "quality-protocol.txt"))
    ap.add_argument("--bin", default=os.environ.get("FACEGAN_BIN", "target/release/facegan"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "results"),
                    help="where the chart and grids go (default docs/results)")
    args = ap.parse_args()
    os.chdir(ROOT)
    py = sys.executable
    runs = read_protocol(args.protocol)
    print("| run | images | quiet minutes | SWD avg | x floor | finest level | x finest floor "
          "| held-out D accuracy |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    scored = []
    for r in runs:
        ckpt, state = latest_checkpoint(r["run"])
        seen = state["images_seen"] if state else 0
        if seen < r["images"]:
            print(f"| {os.path.basename(r['run'])} | at {seen:,} of {r['images']:,}: not scored "
                  "| | | | | | |")
            continue
        rep = evaluate(args.bin, r, ckpt)
        print(row(r, rep))
        scored.append(r)
    series = [f"{r['preset']} s{r['seed']}@{r['speed']}={r['run']}" for r in runs
              if "48x40" in r["shard"] and os.path.exists(os.path.join(r["run"], "quality.csv"))]
    if series:
        out = os.path.join(args.out, "quality-over-time.png")
        subprocess.run([py, os.path.join(ROOT, "tools", "quality_chart.py"), out, *series],
                       check=True)
    for r in scored:
        if r["preset"] == "faces48":
            grids(py, r, args.out)
        elif "96x80" in r["shard"]:
            zoom(py, os.path.join(r["run"], "eval", "grid.png"),
                 os.path.join(args.out, os.path.basename(r["run"])))


if __name__ == "__main__":
    main()
