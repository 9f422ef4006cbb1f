#!/usr/bin/env python3
"""Copies a sample grid into docs and writes a 4x nearest-neighbour zoom of its top-left cells,
so checkerboard artefacts are visible on the page.

Usage: $(tools/venv.sh pillow) experiments/zoom.py GRID.png OUT_STEM [CELLS=4]
Writes OUT_STEM.png (the grid as is) and OUT_STEM-zoom4.png (the top-left CELLS x CELLS cells,
4x larger). Grids are 8x8 cells of the run's image size with 2-pixel gaps.
"""
import shutil
import sys

from PIL import Image


def main():
    src, stem = sys.argv[1], sys.argv[2]
    cells = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    shutil.copyfile(src, f"{stem}.png")
    im = Image.open(src)
    w, h = im.size
    cw, ch = w * cells // 8, h * cells // 8
    crop = im.crop((0, 0, cw, ch))
    crop.resize((cw * 4, ch * 4), Image.NEAREST).save(f"{stem}-zoom4.png")
    print(f"wrote {stem}.png and {stem}-zoom4.png")


if __name__ == "__main__":
    main()
