#!/usr/bin/env python3
"""Draws the fine-tuning comparison's quality curves (docs/results.md, "Fine-tuning on 1,000
faces"): SWD against images shown in each run, the trainer's live probes as a line with a band of
± their spread, and `facegan eval`'s scores at the kept checkpoints as points with error bars.

Usage: $(tools/venv.sh matplotlib) experiments/finetune_chart.py OUT.png LABEL=RUN...
Each RUN is a run directory with quality.csv and eval-COUNT/report.json folders (as
experiments/finetune.sh writes them). The floor (training faces against the held-out ones, as
eval scores it) is drawn from the first run's last report.
"""
import csv
import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402


def probes(run):
    with open(os.path.join(run, "quality.csv")) as f:
        rows = list(csv.DictReader(f))
    return ([int(r["images_seen"]) for r in rows], [float(r["swd"]) for r in rows],
            [float(r["swd_std"] or 0) for r in rows])


def reports(run):
    out = []
    for path in glob.glob(os.path.join(run, "eval-*", "report.json")):
        with open(path) as f:
            out.append(json.load(f))
    return sorted(out, key=lambda r: r["checkpoint"]["images_seen"])


def main():
    out, specs = sys.argv[1], sys.argv[2:]
    if not specs:
        sys.exit(__doc__)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    floor = None
    for i, spec in enumerate(specs):
        label, _, run = spec.partition("=")
        colour = f"C{i}"
        x, y, s = probes(run)
        ax.plot(x, y, ".-", color=colour, lw=1.2, ms=4, label=f"{label}: live probes")
        ax.fill_between(x, [a - b for a, b in zip(y, s)], [a + b for a, b in zip(y, s)],
                        color=colour, alpha=0.15, lw=0)
        reps = reports(run)
        if reps:
            ax.errorbar([r["checkpoint"]["images_seen"] for r in reps],
                        [r["swd_fake_vs_holdout"]["average"] for r in reps],
                        yerr=[r["swd_fake_vs_holdout"]["spread"]["average"] for r in reps],
                        fmt="o", color=colour, capsize=3, label=f"{label}: facegan eval")
            if floor is None:
                floor = reps[-1]["swd_train_vs_holdout"]["average"]
    if floor is not None:
        ax.axhline(floor, color="grey", ls="--", lw=1, label=f"floor {floor:.2f}")
    ax.set_xlabel("images shown in this run")
    ax.set_ylabel("SWD ×10³ against the held-out set (lower is better)")
    ax.set_yscale("log")  # from ~150 at the first step down to a few times the floor
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
