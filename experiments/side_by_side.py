#!/usr/bin/env python3
"""Lays images out in a row, each under its label, for docs/results.md's comparisons (a run
from scratch beside a fine-tuned one, say), optionally enlarged.

Usage: $(tools/venv.sh pillow) experiments/side_by_side.py OUT.png [--scale N] LABEL=IMAGE...
Each IMAGE is drawn at N times its size (nearest neighbour, default 2) with LABEL above it, left
to right in the order given, on a white background.
"""
import argparse

from PIL import Image, ImageDraw, ImageFont


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("panels", nargs="+", metavar="LABEL=IMAGE")
    ap.add_argument("--scale", type=int, default=2)
    args = ap.parse_args()
    panels = []
    for spec in args.panels:
        label, _, path = spec.partition("=")
        if not path:
            ap.error(f"{spec}: expected LABEL=IMAGE")
        im = Image.open(path).convert("RGB")
        panels.append((label, im.resize((im.width * args.scale, im.height * args.scale),
                                        Image.NEAREST)))
    font = ImageFont.load_default()
    label_h, gap = 16, 12
    width = sum(im.width for _, im in panels) + gap * (len(panels) - 1)
    height = label_h + max(im.height for _, im in panels)
    out = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(out)
    x = 0
    for label, im in panels:
        draw.text((x + 2, 2), label, fill="black", font=font)
        out.paste(im, (x, label_h))
        x += im.width + gap
    out.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
