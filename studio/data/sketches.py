"""Sketches made from pictures: the inputs of the sketch -> picture model (emoji-sketch), one per emoji.

A sketch is the picture's outline (where the glyph meets the white background) and its strong inner edges, drawn as
1-2 px lines on white; like a hand drawing, the lines wobble, some are missing, and half the time they are drawn in
the colour of the picture under them (a coloured line asks the model for that colour). numpy only, so training and
the engine can both use it.
"""

from __future__ import annotations

import numpy as np

BACKGROUND_LEVEL = 245  # a pixel whose channels are all above this is the white background


def _luminance(image: np.ndarray) -> np.ndarray:
    return image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _edges(gray: np.ndarray) -> np.ndarray:
    """Gradient magnitude (Sobel) of a 2-D array."""
    padded = np.pad(gray, 1, mode="edge")
    gx = (padded[:-2, 2:] + 2 * padded[1:-1, 2:] + padded[2:, 2:]) - (padded[:-2, :-2] + 2 * padded[1:-1, :-2] + padded[2:, :-2])
    gy = (padded[2:, :-2] + 2 * padded[2:, 1:-1] + padded[2:, 2:]) - (padded[:-2, :-2] + 2 * padded[:-2, 1:-1] + padded[:-2, 2:])
    return np.hypot(gx, gy)


def _dilate(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1)
    out = mask.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            out |= padded[1 + dy : 1 + dy + mask.shape[0], 1 + dx : 1 + dx + mask.shape[1]]
    return out


def _smooth_noise(rng: np.random.Generator, size: int, cells: int = 4) -> np.ndarray:
    """A smooth random field in [-1, 1]: coarse noise, bilinearly upsampled."""
    coarse = rng.uniform(-1, 1, (cells + 1, cells + 1))
    axis = np.linspace(0, cells, size)
    i0 = np.clip(axis.astype(int), 0, cells - 1)
    f = axis - i0
    rows = coarse[i0] * (1 - f)[:, None] + coarse[i0 + 1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]


def _wobble(mask: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Lines moved by a smooth random displacement of up to `amount` px, as a hand would draw them."""
    size = mask.shape[0]
    ys, xs = np.mgrid[0:size, 0:size]
    dy = np.rint(ys + amount * _smooth_noise(rng, size)).astype(int).clip(0, size - 1)
    dx = np.rint(xs + amount * _smooth_noise(rng, size)).astype(int).clip(0, size - 1)
    return mask[dy, dx]


def line_mask(image: np.ndarray, rng: np.random.Generator, threshold: float | None = None) -> np.ndarray:
    """Where the sketch has lines: the outline, plus inner edges stronger than `threshold` (random when None)."""
    ink = (image[..., :3] < BACKGROUND_LEVEL).any(axis=-1)
    outline = _dilate(~ink) & ink
    strength = _edges(_luminance(image))
    threshold = threshold if threshold is not None else rng.uniform(150, 400)
    return outline | (strength > threshold)


def make_sketch(image: np.ndarray, rng: np.random.Generator, hand_drawn: bool = True) -> np.ndarray:
    """A sketch (uint8 RGB, white background) of one uint8 RGB picture."""
    lines = line_mask(image, rng)
    if hand_drawn:
        if rng.random() < 0.5:
            lines = _dilate(lines)  # a thicker pen
        lines = _wobble(lines, rng, rng.uniform(0.0, 1.5))
        gaps = _smooth_noise(rng, lines.shape[0], cells=6) > rng.uniform(0.6, 1.0)  # some strokes left out
        lines &= ~gaps
    sketch = np.full_like(image[..., :3], 255)
    if rng.random() < 0.5:  # coloured pens: the colour of the picture under the line, darkened a little
        sketch[lines] = (image[..., :3][lines].astype(np.float32) * 0.85).astype(np.uint8)
    else:
        sketch[lines] = 0
    return sketch


def sketches(images: np.ndarray, seed: int, hand_drawn: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([make_sketch(image, rng, hand_drawn) for image in images])
