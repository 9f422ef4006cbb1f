"""make bench-fid: Inception features per second, facegan against pytorch-fid's own network, on
the same PNG faces on this machine, interleaved runs; one JSON line.

Both sides use the seeded test network of `make check-fid` (same architecture and cost as the
real weights) and batches of 50 (pytorch-fid's default) against facegan's 16. Only the forward
passes are timed: facegan's `fid_check features` reports its own, PyTorch's is timed here.

Usage: bench_fid.py CHECK_DIR FID_CHECK_BIN [N] [RUNS]
CHECK_DIR is `make check-fid`'s folder (its test network and PNG faces).
"""

import json
import os
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
import check_fid as cf  # noqa: E402


def main():
    work, binary = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 256
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    weights = os.path.join(work, "inception-test.pth")
    if not os.path.exists(weights):
        sys.exit(f"{weights}: run make check-fid first (it makes the test network and the faces)")
    sha = subprocess.run(["sha256sum", weights], capture_output=True, text=True, check=True).stdout.split()[0]
    paths = sorted(os.path.join(work, "a", p) for p in os.listdir(os.path.join(work, "a")))[:n]
    listing = os.path.join(work, "bench.txt")
    with open(listing, "w") as f:
        f.write("\n".join(paths) + "\n")

    cf.pfi.fid_inception_v3 = cf.build_inception_without_download
    model = cf.pfi.InceptionV3([cf.pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    inner = cf.build_inception_without_download.built
    inner.load_state_dict(torch.load(weights, weights_only=False))
    model.eval()
    batches = [cf.load_png_batch(paths[i:i + 50]) for i in range(0, len(paths), 50)]

    ours, theirs = [], []
    for _ in range(runs):
        run = subprocess.run([binary, "features", weights, sha, listing, os.path.join(work, "bench.f32")],
                             capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(run.stderr)
        ours.append(n / json.loads(run.stdout.strip().splitlines()[-1])["seconds"])
        t = time.time()
        with torch.no_grad():
            for b in batches:
                model(b)
        theirs.append(n / (time.time() - t))
    print(json.dumps({
        "images": n,
        "runs": runs,
        "facegan_img_per_s": [round(v, 2) for v in ours],
        "pytorch_fid_img_per_s": [round(v, 2) for v in theirs],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "ratio_median": round(statistics.median(o / t for o, t in zip(ours, theirs)), 3),
    }))


if __name__ == "__main__":
    main()
