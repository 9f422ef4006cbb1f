#!/usr/bin/env python3
"""Prints a results table (markdown) of evaluated runs, one row each.

Usage: python3 experiments/results.py RUN [RUN ...] > table.md
Each RUN is a run directory that `facegan eval` has scored (RUN/eval/report.json). Also copies
each run's generated grid (eval/grid.png: generated faces only) to docs/results/<name>.png,
where <name> is the run directory's name. DEVICE (environment) names the machine for the
table (default "2-core CPU"). Standard library only.
"""
import json
import os
import shutil
import sys

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "results")


def row(run):
    rep = json.load(open(os.path.join(run, "eval", "report.json")))
    cfg = rep["config"]
    ck = rep["checkpoint"]
    metrics = os.path.join(run, "metrics.csv")
    seconds = 0.0
    device = os.environ.get("DEVICE", "2-core CPU")
    with open(metrics) as f:
        lines = f.read().strip().splitlines()
    head = lines[0].split(",")
    for line in lines[1:]:
        rec = dict(zip(head, line.split(",")))
        if int(rec["epoch"]) <= ck["epoch"]:
            seconds += float(rec["seconds"])
    fake = rep["swd_fake_vs_holdout"]
    floor = rep["swd_train_vs_holdout"]
    acc = rep["d_accuracy_holdout"]
    name = os.path.basename(os.path.normpath(run))
    os.makedirs(RESULTS, exist_ok=True)
    shutil.copyfile(os.path.join(run, "eval", "grid.png"), os.path.join(RESULTS, f"{name}.png"))
    levels = " / ".join(f"{v:.1f}" for v in fake["per_level"])
    return (
        f"| {name} | {cfg['preset']} | {cfg['seed']} | {ck['images_seen']:,} | "
        f"{seconds / 60:.1f} min, {device} | **{fake['average']:.1f}** | {levels} | "
        f"{floor['average']:.1f} | {acc['real']:.2f} / {acc['fake']:.2f} / **{acc['balanced']:.2f}** | "
        f"{rep['source']} | ![](results/{name}.png) |"
    )


def main():
    print("| run | preset | seed | images shown | training time, device | SWD x1e3 avg | SWD per level "
          "(finest first) | SWD floor (train vs holdout) | held-out D acc real / fake / balanced | "
          "sampled by | generated (EMA if any) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for run in sys.argv[1:]:
        print(row(run))


if __name__ == "__main__":
    main()
