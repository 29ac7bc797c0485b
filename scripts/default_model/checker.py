"""Deterministic checker for the default model's images (no neural network).

check(image) -> (background, shape_colour, shape) for an HxWx3 uint8 RGB image:
  1. Classify every pixel to the nearest palette colour (squared RGB distance; ties go to
     the earlier colour in shapes.COLOURS).
  2. background = the most common class among the border pixels (the outermost ring).
  3. shape colour = the most common class over the whole image other than the background.
     No such pixel at all -> ("<background>", "none", "none").
  4. Shape mask = pixels of the shape colour. Its bounding box spans the rows and columns
     holding at least MIN_LINE_PIXELS mask pixels (so a few stray pixels don't stretch it).
  5. triangle if area(top half of the box) < TRIANGLE_RATIO * area(bottom half of the box):
     an upward triangle has 1/4 of its area in the top half, 3/4 in the bottom half (ratio
     1/3); a circle or a square is symmetric (ratio 1).
  6. otherwise square if the four corner patches (CORNER_FRACTION of the box's width and
     height each) are filled above SQUARE_CORNER_FILL on average (a square's are full, a
     circle's are mostly empty: ~20 %), else circle.
Ported to Rust line by line: keep it simple.

Usage: python checker.py --self-test [--count N]   (accuracy on the generator's images)
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shapes import COLOURS, PALETTE, Sampler, caption_grid  # noqa: E402

MIN_LINE_PIXELS = 3       # a row/column needs this many shape pixels to count for the box
TRIANGLE_RATIO = 0.6      # top/bottom area ratio below this -> triangle (ideal 1/3 vs 1)
CORNER_FRACTION = 0.2     # corner patch side, as a fraction of the box's width/height
SQUARE_CORNER_FILL = 0.5  # mean corner fill above this -> square (ideal 1.0 vs ~0.2)


def classify_pixels(image):
    """HxW array of palette indices (into COLOURS) of the nearest palette colour."""
    pixels = image.astype(np.int64)                                     # H x W x 3
    palette = np.array([PALETTE[c] for c in COLOURS], np.int64)          # K x 3
    dist = ((pixels[:, :, None, :] - palette[None, None, :, :]) ** 2).sum(axis=3)
    return dist.argmin(axis=2)                                           # first min wins


def border_pixels(classes):
    """The outermost ring of pixels, each pixel once."""
    return np.concatenate([classes[0, :], classes[-1, :],
                           classes[1:-1, 0], classes[1:-1, -1]])


def most_common(values, exclude=None):
    """Most common palette index in values (ties -> the lower index), or None."""
    counts = np.bincount(values.ravel(), minlength=len(COLOURS))
    if exclude is not None:
        counts[exclude] = 0
    if counts.max() == 0:
        return None
    return int(counts.argmax())


def classify_shape(mask):
    """'circle', 'square' or 'triangle' from a boolean HxW mask of the shape's pixels."""
    rows = np.nonzero(mask.sum(axis=1) >= MIN_LINE_PIXELS)[0]
    cols = np.nonzero(mask.sum(axis=0) >= MIN_LINE_PIXELS)[0]
    if len(rows) == 0 or len(cols) == 0:
        return "none"
    top, bottom = rows[0], rows[-1] + 1       # box rows [top, bottom)
    left, right = cols[0], cols[-1] + 1       # box cols [left, right)
    box = mask[top:bottom, left:right]
    height, width = box.shape

    # Triangle: much less area in the top half than in the bottom half.
    half = height // 2
    top_area = box[:half, :].sum()
    bottom_area = box[height - half:, :].sum()  # same number of rows as the top half
    if top_area < TRIANGLE_RATIO * bottom_area:
        return "triangle"

    # Square vs circle: are the corners of the bounding box filled?
    ch = max(1, int(round(CORNER_FRACTION * height)))
    cw = max(1, int(round(CORNER_FRACTION * width)))
    corners = [box[:ch, :cw], box[:ch, width - cw:], box[height - ch:, :cw],
               box[height - ch:, width - cw:]]
    fill = sum(c.mean() for c in corners) / 4.0
    return "square" if fill > SQUARE_CORNER_FILL else "circle"


def check(image):
    """(background, shape_colour, shape) names for an HxWx3 uint8 image."""
    classes = classify_pixels(image)
    bg = most_common(border_pixels(classes))
    fg = most_common(classes, exclude=bg)
    if fg is None:
        return COLOURS[bg], "none", "none"
    return COLOURS[bg], COLOURS[fg], classify_shape(classes == fg)


def self_test(count, seed):
    grid = caption_grid()
    sampler = Sampler(seed)
    right = {"background": 0, "shape_colour": 0, "shape": 0, "all": 0}
    for _ in range(count):
        image, index = sampler.sample_one()
        _, colour, shape, background = grid[index]
        got = check(image)
        ok = (got[0] == background, got[1] == colour, got[2] == shape)
        for key, good in zip(("background", "shape_colour", "shape"), ok):
            right[key] += good
        right["all"] += all(ok)
        if not all(ok):
            print(f"wrong: {grid[index][0]!r} -> {got}")
    for key, n in right.items():
        print(f"{key:13s} {n}/{count} = {100.0 * n / count:.1f} %")
    return right["all"] == count


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--seed", type=int, default=12345)
    args = ap.parse_args()
    if args.self_test:
        sys.exit(0 if self_test(args.count, args.seed) else 1)
    ap.print_help()
