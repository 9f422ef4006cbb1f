#!/usr/bin/env python3
"""Draws docs/results.md's quality-over-time chart: SWD against quiet-machine minutes.

Usage:
  $(tools/venv.sh matplotlib) experiments/quality_chart.py OUT.png SERIES [SERIES ...]

Each SERIES is LABEL@IMG_PER_S=SOURCE, where IMG_PER_S is the preset's quiet-machine speed from
`facegan bench-train --preset P` (it turns images shown into minutes, so runs trained side by side
on a shared CPU compare fairly) or, for a growing recipe, its image counts at 15, 30, 60 and 180
quiet minutes (`87000,173900,315100,867800`, as in the job list), and SOURCE is either a run
directory (its quality.csv: the trainer's live SWD curve, full-size probes only) or `points:IMAGES:SWD,IMAGES:SWD,...` for runs scored only by
`facegan eval` at a few checkpoints. The train-vs-holdout floor is drawn from the newest probe
of the first run directory given (the build that scored it last). Series whose LABELs start with
the same word share a colour, and each further one of them gets its own line style (use it for
seeds: `faces48 s0`, `faces48 s1`). CHART_TITLE and CHART_YMAX (environment) replace the title
and the y-axis top (230).
"""
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quality_report import quiet_minutes  # noqa: E402


def load(source):
    if source.startswith("points:"):
        pts = [p.split(":") for p in source[len("points:"):].split(",")]
        return [(int(i), float(s)) for i, s in pts], None
    with open(os.path.join(source, "quality.csv")) as f:
        rows = list(csv.DictReader(f))
    # A growing run's probes below its full size score other images: not on this curve.
    rows = [r for r in rows if not r.get("size")]
    pts = [(int(r["images_seen"]), float(r["swd"])) for r in rows]
    return pts, float(rows[-1]["floor"]) if rows else None


def main():
    out, specs = sys.argv[1], sys.argv[2:]
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=100)
    colours = {}
    styles = ["-", "--", ":", "-."]
    per_colour = {}
    floor = None
    for spec in specs:
        head, source = spec.split("=", 1)
        label, speed = head.rsplit("@", 1)
        pts, f = load(source)
        floor = floor if floor is not None else f
        group = label.split()[0]
        colour = colours.setdefault(group, f"C{len(colours)}")
        nth = per_colour.get(group, 0)  # how many series of this colour came before
        per_colour[group] = nth + 1
        style = styles[nth % len(styles)]
        if "," in speed:
            run = dict(speed=None, counts=[int(c) for c in speed.split(",")])
        else:
            run = dict(speed=float(speed), counts=None)
        xs = [quiet_minutes(run, i) for i, _ in pts]
        ys = [s for _, s in pts]
        ax.plot(xs, ys, style, marker="o" if len(pts) < 8 else None, color=colour,
                markersize=4, label=label, linewidth=1.6)
    if floor is not None:
        ax.axhline(floor, color="grey", linestyle=":", label=f"floor (train vs holdout) {floor:.1f}")
        ax.axhline(2.5 * floor, color="grey", linestyle="--", linewidth=0.8,
                   label=f"2.5x floor = {2.5 * floor:.1f}")
    ax.set_xlabel("minutes on a quiet 2-core CPU (images shown / bench-train img/s)")
    ax.set_ylabel("SWD x1e3 vs holdout (lower is better)")
    ax.set_ylim(0, float(os.environ.get("CHART_YMAX", "230")))
    ax.set_title(os.environ.get("CHART_TITLE", "facegan on celeba-8k at 48x40: quality over training time"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
