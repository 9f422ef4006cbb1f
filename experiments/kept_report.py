#!/usr/bin/env python3
"""Scores every checkpoint a protocol's runs kept and prints the table at 15, 30, 60 and 180
quiet minutes, with the grids real size and zoomed 4x.

Usage:
  $(tools/venv.sh pillow) experiments/kept_report.py [PROTOCOL] [--bin FACEGAN] [--only NAME,...]
      [--out docs/results] [--records experiments/runs] [--prefix PREFIX]

PROTOCOL is experiments/quality-runs.sh's job file (default experiments/holdout25.txt). For each
run in it (or only those named by --only) and each checkpoint it kept (`checkpoints/images_N`,
written by `train --keep-at`) this
- runs `facegan eval --run RUN --data SHARD --checkpoint images:N --n 1980 --out RUN/eval-N`,
  unless RUN/eval-N/report.json already scores that checkpoint. A growing run's checkpoint from
  before it reached its full size is refused by eval; its row is then the live probe nearest N
  from RUN/quality.csv, at the size it trained at, and says so;
- keeps the eval report as RECORDS/NAME/eval-N.json and the live curve as RECORDS/NAME/quality.csv
  (runs/ is not in the repository; the records are);
- copies the eval grid (eval's fixed latents: a cell is the same latent at every count) real size
  and zoomed 4x into OUT/PREFIXNAME-Mmin.png and OUT/PREFIXNAME-Mmin-zoom4.png
  (experiments/zoom.py), M the count's quiet minutes;
then prints one markdown row per kept count: quiet minutes (images), run, SWD ± spread
(x floor), finest level ± spread (x floor), held-out / train D accuracy.
"""
import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from quality_report import KEPT_MINUTES, quiet_minutes, read_protocol, zoom  # noqa: E402


def kept_counts(run):
    """The image counts of RUN's finished kept checkpoints, ascending."""
    folder = os.path.join(run, "checkpoints")
    if not os.path.isdir(folder):
        return []
    counts = []
    for name in os.listdir(folder):
        m = re.fullmatch(r"images_(\d+)", name)
        if m and os.path.exists(os.path.join(folder, name, "DONE")):
            counts.append(int(m.group(1)))
    return sorted(counts)


def evaluate(bin_path, r, count):
    """RUN/eval-COUNT's report, made by facegan eval if missing; None when eval refuses the
    checkpoint because the run was still growing there (its message is printed)."""
    dest = os.path.join(r["run"], f"eval-{count}")
    report = os.path.join(dest, "report.json")
    if not scores(report, os.path.join(r["run"], "checkpoints", f"images_{count:09}")):
        cmd = [bin_path, "eval", "--run", r["run"], "--data", r["shard"],
               "--checkpoint", f"images:{count}", "--n", "1980", "--out", dest]
        print("+", " ".join(cmd), file=sys.stderr)
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            if "still growing" in done.stderr:
                print(f"  {done.stderr.strip().splitlines()[-1]}", file=sys.stderr)
                return None
            sys.exit(f"kept_report: facegan eval failed on {r['run']} images:{count}:\n"
                     f"{done.stderr}")
    with open(report) as f:
        return json.load(f)


def scores(report, checkpoint):
    """Whether REPORT exists and scores CHECKPOINT (a run trained again from scratch keeps
    its old eval folders, which score checkpoints that are gone)."""
    if not os.path.exists(report):
        return False
    with open(report) as f:
        scored = json.load(f)["checkpoint"]["dir"]
    return os.path.normpath(scored) == os.path.normpath(checkpoint)


def nearest_probe(run, count):
    """The live probe in RUN/quality.csv nearest COUNT images, as a dict of its columns."""
    with open(os.path.join(run, "quality.csv")) as f:
        rows = list(csv.DictReader(f))
    return min(rows, key=lambda q: abs(int(q["images_seen"]) - count))


def minutes_label(r, count):
    """The kept minutes COUNT stands for (the protocol keeps at 15, 30, 60 and 180)."""
    m = quiet_minutes(r, count)
    return min(KEPT_MINUTES, key=lambda k: abs(k - m))


def eval_row(r, minutes, rep):
    fake, floor = rep["swd_fake_vs_holdout"], rep["swd_train_vs_holdout"]
    spread = fake.get("spread") or {"average": 0.0, "per_level": [0.0]}
    held, train = rep["d_accuracy_holdout"], rep.get("d_accuracy_train")
    images = rep["checkpoint"]["images_seen"]
    accuracy = f"{held['balanced']:.3f}" + (f" / {train['balanced']:.3f}" if train else "")
    return (f"| {minutes} ({images:,}) | {os.path.basename(r['run'])} | "
            f"{fake['average']:.2f} ± {spread['average']:.2f} "
            f"({fake['average'] / floor['average']:.2f}x) | "
            f"{fake['per_level'][0]:.2f} ± {spread['per_level'][0]:.2f} "
            f"({fake['per_level'][0] / floor['per_level'][0]:.2f}x) | {accuracy} |")


def probe_row(r, minutes, count, q):
    swd, floor = float(q["swd"]), float(q["floor"])
    finest, floor_finest = float(q["swd_finest"]), float(q["floor_finest"])
    return (f"| {minutes} ({count:,}) | {os.path.basename(r['run'])} | "
            f"{swd:.2f} ± {float(q['swd_std']):.2f} ({swd / floor:.2f}x) at {q['size']}, "
            f"live probe at {int(q['images_seen']):,} | "
            f"{finest:.2f} ± {float(q['swd_finest_std']):.2f} ({finest / floor_finest:.2f}x) "
            f"at {q['size']} | still growing |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("protocol", nargs="?", default=os.path.join(HERE, "holdout25.txt"))
    ap.add_argument("--bin", default=os.environ.get("FACEGAN_BIN", "target/release/facegan"))
    ap.add_argument("--only", help="comma-separated run names (the run folder's name)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "results"))
    ap.add_argument("--records", default=os.path.join(HERE, "runs"))
    ap.add_argument("--prefix", default="", help="put before each grid's file name")
    args = ap.parse_args()
    args.protocol, args.out, args.records = (os.path.abspath(p) for p in
                                             (args.protocol, args.out, args.records))
    os.makedirs(args.out, exist_ok=True)
    os.chdir(ROOT)
    only = set(args.only.split(",")) if args.only else None
    print("| quiet minutes (images) | run | SWD ± spread (x floor) | finest level ± spread "
          "(x floor) | held-out / train D accuracy |")
    print("|---|---|---|---|---|")
    for r in read_protocol(args.protocol):
        name = os.path.basename(r["run"])
        if only and name not in only:
            continue
        record = os.path.join(args.records, name)
        for count in kept_counts(r["run"]):
            minutes = minutes_label(r, count)
            rep = evaluate(args.bin, r, count)
            if rep is None:
                print(probe_row(r, minutes, count, nearest_probe(r["run"], count)))
                continue
            os.makedirs(record, exist_ok=True)  # the report as eval wrote it
            shutil.copyfile(os.path.join(r["run"], f"eval-{count}", "report.json"),
                            os.path.join(record, f"eval-{count}.json"))
            zoom(sys.executable, os.path.join(r["run"], f"eval-{count}", "grid.png"),
                 os.path.join(args.out, f"{args.prefix}{name}-{minutes}min"))
            print(eval_row(r, minutes, rep))
        if os.path.exists(os.path.join(r["run"], "quality.csv")):
            os.makedirs(record, exist_ok=True)
            shutil.copyfile(os.path.join(r["run"], "quality.csv"),
                            os.path.join(record, "quality.csv"))


if __name__ == "__main__":
    main()
