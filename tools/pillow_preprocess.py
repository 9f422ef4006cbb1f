#!/usr/bin/env python3
"""Pillow baseline for `make bench-preprocess`: decode every JPEG/PNG under a folder, resize to
HxW with Pillow's bicubic (antialiased) filter, and write the pixels into a numpy memmap.
Single process, like a typical tutorial data script. Prints one JSON line.

Usage: pillow_preprocess.py INPUT_DIR OUTPUT.npy [--size 96x80]
"""
import argparse
import json
import os
import time

import numpy as np
from PIL import Image


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--size", default="96x80")
    a = ap.parse_args()
    h, w = (int(v) for v in a.size.lower().split("x"))
    files = sorted(
        os.path.join(root, f)
        for root, _, names in os.walk(a.input)
        for f in names
        if f.lower().endswith((".jpg", ".jpeg", ".png"))
    )
    t = time.perf_counter()
    out = np.lib.format.open_memmap(a.output, mode="w+", dtype=np.uint8, shape=(len(files), h, w, 3))
    kept = 0
    for path in files:
        try:
            with Image.open(path) as im:
                out[kept] = np.asarray(im.convert("RGB").resize((w, h), Image.BICUBIC))
            kept += 1
        except Exception:
            pass
    out.flush()
    s = time.perf_counter() - t
    print(json.dumps({"impl": "pillow+numpy-memmap", "files": len(files), "kept": kept, "seconds": s,
                      "img_per_s": len(files) / s}))


if __name__ == "__main__":
    main()
