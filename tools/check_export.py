#!/usr/bin/env python3
"""Checks a `facegan export` file in PyTorch against facegan itself, on one run.

Usage: check_export.py FACEGAN RUN_DIR WORK_DIR [--n N] [--seed S] [--checkpoint C]

Exports RUN_DIR's checkpoint (the latest by default) with the binary FACEGAN into WORK_DIR, has
FACEGAN draw N faces for seed S (`facegan sample --device cpu`, one PNG per face) and save the
latents that drew them (`--save-latents`), rebuilds the generator with tools/facegan_torch.py,
puts those latents through it, and compares pixels: with BatchNorm's running statistics (the
default) and with batch statistics (`--batch-stats`).

facegan's faces come as 8-bit PNGs, so for each mode it reports:
- `max_abs_diff`: the largest |PyTorch's float - facegan's pixel / 255|, in [0, 1]. The same
  network gives at most 0.5/255 (facegan's rounding) plus the float difference.
- `beyond_rounding`: `max_abs_diff` - 0.5/255, at least 0: a lower bound on the largest float
  difference between PyTorch's output and facegan's.
- `values_differing` of `values`: how many values differ once PyTorch's output is rounded as
  facegan rounds (a float difference d moves a share of about 255*d across a rounding boundary),
  and `max_abs_diff_rounded`, the largest such difference (1/255 when only those moved).
Prints one JSON line; `"ok": true` when, in both modes, `beyond_rounding` is under 1e-4 and the
rounded values differ by at most one step on under 0.1% of the values. Exits 1 otherwise (with
`"ok": false` and an `error` when a step fails: facegan, a file, the latents).
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facegan_torch import load_generator, read_latents, read_metadata, to_pixels

# Float difference allowed beyond facegan's 8-bit rounding, and the share of values allowed to
# round the other way because of it.
FLOAT_TOLERANCE = 1e-4
MAX_DIFFERING_SHARE = 1e-3

# The BatchNorm modes compared, and whether each normalises with batch statistics.
MODES = {"running_stats": False, "batch_stats": True}


def facegan(binary: str, *args: str | int | Path) -> None:
    """Runs a facegan command, its output on stderr (stdout carries the JSON line)."""
    subprocess.run([binary, *map(str, args)], check=True, stdout=sys.stderr)


def facegan_faces(
    args: argparse.Namespace, out: Path, batch_stats: bool
) -> tuple[torch.Tensor, np.ndarray]:
    """`facegan sample`'s latents, `[n, latent]` float32, and its faces, `[n, H, W, 3]` uint8."""
    latents = out / "z.safetensors"
    facegan(
        args.facegan, "sample", "--run", args.run, "--checkpoint", args.checkpoint,
        "--n", args.n, "--seed", args.seed, "--device", "cpu", "--out", f"{out}/",
        "--save-latents", latents, *(["--batch-stats"] if batch_stats else []),
    )
    faces = [Image.open(out / f"face_{i:05}.png").convert("RGB") for i in range(args.n)]
    return read_latents(latents), np.stack([np.asarray(face) for face in faces])


def compare(ours: torch.Tensor, theirs: np.ndarray) -> dict:
    """PyTorch's `[n, 3, H, W]` floats against facegan's `[n, H, W, 3]` 8-bit faces."""
    floats = ours.permute(0, 2, 3, 1).numpy().astype(np.float64)
    max_abs_diff = float(np.abs(floats - theirs / 255.0).max())
    step_diff = np.abs(to_pixels(ours).numpy().astype(np.int16) - theirs.astype(np.int16))
    result = {
        "max_abs_diff": max_abs_diff,
        "beyond_rounding": max(0.0, max_abs_diff - 0.5 / 255.0),
        "values_differing": int((step_diff > 0).sum()),
        "values": int(step_diff.size),
        "max_abs_diff_rounded": float(step_diff.max() / 255.0),
    }
    result["ok"] = bool(
        result["beyond_rounding"] <= FLOAT_TOLERANCE
        and step_diff.max() <= 1
        and result["values_differing"] <= MAX_DIFFERING_SHARE * result["values"]
    )
    return result


def check(args: argparse.Namespace) -> dict:
    """Exports, draws with facegan and with PyTorch in both modes, compares; the report."""
    args.work.mkdir(parents=True, exist_ok=True)
    export = args.work / "generator.safetensors"
    facegan(args.facegan, "export", "--run", args.run, "--checkpoint", args.checkpoint,
            "--out", export)
    metadata = read_metadata(export)

    report = {
        "run": args.run, "checkpoint": args.checkpoint, "preset": metadata["preset"],
        "epoch": int(metadata["epoch"]), "weights": metadata["weights"],
        "faces": args.n, "seed": args.seed,
    }
    for mode, batch_stats in MODES.items():
        z, theirs = facegan_faces(args, args.work / mode, batch_stats)
        if list(z.shape) != [args.n, int(metadata["latent"])]:
            raise ValueError(f"{args.work / mode}/z.safetensors: latents {list(z.shape)}, "
                             f"expected [{args.n}, {metadata['latent']}]")
        generator = load_generator(export)
        if batch_stats:
            generator.use_batch_statistics()
        with torch.no_grad():
            report[mode] = compare(generator.generate(z), theirs)
    report["max_abs_diff"] = max(report[mode]["max_abs_diff"] for mode in MODES)
    report["beyond_rounding"] = max(report[mode]["beyond_rounding"] for mode in MODES)
    report["ok"] = all(report[mode]["ok"] for mode in MODES)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("facegan", help="the facegan binary")
    parser.add_argument("run", help="a run directory with a checkpoint")
    parser.add_argument("work", type=Path, help="where the export and facegan's faces go")
    parser.add_argument("--n", type=int, default=64, help="faces to compare (default: 64)")
    parser.add_argument("--seed", type=int, default=7, help="latent seed (default: 7)")
    parser.add_argument("--checkpoint", default="latest", help="latest, best or an epoch")
    args = parser.parse_args()
    try:
        report = check(args)
    except (subprocess.CalledProcessError, OSError, ValueError) as error:
        report = {"run": args.run, "checkpoint": args.checkpoint, "ok": False,
                  "error": str(error)}
    print(json.dumps(report))
    sys.exit(0 if report["ok"] else 1)

if __name__ == "__main__":
    main()
