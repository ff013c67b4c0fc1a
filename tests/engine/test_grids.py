"""The X/Y plot's labels: readable prompts (wrapped onto up to three lines, bigger cells), short labels unchanged."""

import numpy as np
from PIL import Image, ImageDraw

from studio.engine.image.grids import LABEL_LINES, MIN_PLOT_CELL, _font, _wrap, labelled_grid

PROMPTS = ["prompt: a red heart with a golden crown", "prompt: a smiling cat face in the rain",
           "prompt: a blue star over a green hill at night"]


def _ink_rows(sheet, top_rows: int) -> int:
    """How many separate runs of text rows there are in the top band (one per line of text)."""
    band = np.asarray(sheet.convert("L"))[:top_rows] < 128
    inked = band.any(axis=1)
    return int(np.sum(inked[1:] & ~inked[:-1]) + inked[0])


def test_long_prompt_labels_are_whole_on_up_to_three_lines():
    images = [Image.new("RGB", (64, 64), c) for c in ("red", "green", "blue")]
    sheet = labelled_grid(images, 3, PROMPTS, ["seed: 1"])
    cell = (sheet.width - 8) // 3
    assert cell > MIN_PLOT_CELL, "long labels make bigger cells"
    draw = ImageDraw.Draw(sheet)
    font = _font(max(12, min(28, cell // 9)))
    for label in PROMPTS:
        lines = _wrap(draw, label, font, cell - 8)
        assert len(lines) <= LABEL_LINES and "…" not in "".join(lines)
        assert " ".join(lines) == label, "nothing of the prompt is cut"
    pixels = np.asarray(sheet)
    top = int(np.nonzero(((pixels[..., 0] > 200) & (pixels[..., 1] < 50)).any(axis=1))[0][0])  # the first red row
    assert 2 <= _ink_rows(sheet, top) <= LABEL_LINES


def test_short_labels_keep_one_line_and_the_small_cells():
    images = [Image.new("RGB", (32, 32), "red")] * 2
    sheet = labelled_grid(images, 2, ["steps: 1", "steps: 2"], ["scheduler: ddim"])
    assert sheet.height < MIN_PLOT_CELL + 60


def test_a_word_longer_than_the_cell_is_broken_not_dropped():
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = _wrap(draw, "x" * 60, _font(14), 100)
    assert "".join(lines).replace("…", "").startswith("x" * 20) and len(lines) <= LABEL_LINES
