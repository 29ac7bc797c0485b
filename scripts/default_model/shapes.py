"""Deterministic procedural training data for sdrt's embedded default model.

Each image is 64x64 RGB: one shape (circle, square or triangle) in one palette colour on a
background of another palette colour, at a random position and size. Its caption is exactly
"a {shape colour} {shape} on a {background colour} background".

numpy only. The palette, the 90-caption grid and a seeded sampler are the public API:
    PALETTE, SHAPES, caption_grid(), caption(), render(), Sampler(seed).sample(n)
"""
import numpy as np

IMAGE_SIZE = 64
MIN_SHAPE_SIZE = 24   # px, side of the shape's bounding box (inclusive)
MAX_SHAPE_SIZE = 44
MARGIN = 2            # px kept free between the shape and the image border

# Pure saturated colours: easy to tell apart for the checker (nearest palette colour).
PALETTE = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
}
COLOURS = list(PALETTE)
SHAPES = ["circle", "square", "triangle"]


def caption(shape_colour, shape, background):
    return f"a {shape_colour} {shape} on a {background} background"


def caption_grid():
    """Every (shape colour, shape, background) with background != shape colour, in a fixed
    order: 6 x 3 x 5 = 90 entries of (caption, shape_colour, shape, background)."""
    grid = []
    for colour in COLOURS:
        for shape in SHAPES:
            for background in COLOURS:
                if background != colour:
                    grid.append((caption(colour, shape, background), colour, shape, background))
    return grid


def shape_mask(shape, size, x0, y0, image_size=IMAGE_SIZE):
    """Boolean HxW mask of a shape whose bounding box is [x0, x0+size) x [y0, y0+size).
    The triangle points up: apex at the top centre, base along the bottom edge."""
    ys, xs = np.mgrid[0:image_size, 0:image_size].astype(np.float64)
    # pixel centres, relative to the box, in units of the box side: 0..1
    u = (xs + 0.5 - x0) / size
    v = (ys + 0.5 - y0) / size
    inside_box = (u >= 0) & (u < 1) & (v >= 0) & (v < 1)
    if shape == "square":
        return inside_box
    if shape == "circle":
        return (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    if shape == "triangle":
        # at height v (0 top .. 1 bottom) the triangle spans half-width v/2 around the centre
        return inside_box & (np.abs(u - 0.5) <= v / 2)
    raise ValueError(shape)


def render(shape_colour, shape, background, size, x0, y0):
    """HxWx3 uint8 image."""
    img = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    img[:] = PALETTE[background]
    img[shape_mask(shape, size, x0, y0)] = PALETTE[shape_colour]
    return img


class Sampler:
    """Seeded stream of (image, caption index) pairs; captions uniform over caption_grid()."""

    def __init__(self, seed):
        self.rng = np.random.RandomState(seed)
        self.grid = caption_grid()

    def sample_one(self, index=None):
        rng = self.rng
        if index is None:
            index = int(rng.randint(len(self.grid)))
        _, colour, shape, background = self.grid[index]
        size = int(rng.randint(MIN_SHAPE_SIZE, MAX_SHAPE_SIZE + 1))
        hi = IMAGE_SIZE - MARGIN - size
        x0 = int(rng.randint(MARGIN, hi + 1))
        y0 = int(rng.randint(MARGIN, hi + 1))
        return render(colour, shape, background, size, x0, y0), index

    def sample(self, n):
        """(n x 64 x 64 x 3 uint8 images, n caption indices into caption_grid())."""
        images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
        indices = np.empty(n, np.int64)
        for i in range(n):
            images[i], indices[i] = self.sample_one()
        return images, indices


if __name__ == "__main__":
    grid = caption_grid()
    print(len(grid), "captions, e.g.", grid[0][0], "|", grid[-1][0])
