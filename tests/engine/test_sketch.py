"""Sketch -> picture (emoji-sketch): sketches made from pictures, a pix2pix step that resumes exactly, and a model
folder that the Image panel's Translate mode runs through the generic loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.data import emoji as data_emoji
from studio.data.sketches import line_mask, make_sketch
from tests.tiny_gan import six_emoji

needs_font = pytest.mark.skipif(not data_emoji.FONT_PATH.exists(), reason="needs fonts-noto-color-emoji")
TINY_CHANNELS = (8, 16, 16, 16, 16)


def _disc(size: int = 64) -> np.ndarray:
    """A red disc on white."""
    ys, xs = np.mgrid[0:size, 0:size]
    image = np.full((size, size, 3), 255, np.uint8)
    image[(ys - 32) ** 2 + (xs - 32) ** 2 < 20**2] = (220, 30, 30)
    return image


def test_a_sketch_is_lines_on_white_along_the_outline():
    rng = np.random.default_rng(0)
    lines = line_mask(_disc(), rng, threshold=1e9)  # the outline alone
    ys, xs = np.nonzero(lines)
    radius = np.hypot(ys - 32, xs - 32)
    assert len(ys) > 60 and radius.min() > 17 and radius.max() < 21  # a ring where the disc meets the paper
    sketch = make_sketch(_disc(), rng, hand_drawn=False)
    assert (sketch[0, 0] == 255).all() and (sketch[32, 32] == 255).all()  # paper outside and inside
    assert (sketch < 255).any()


@pytest.fixture(scope="module")
def tiny_run_factory(tmp_path_factory):
    from studio.engine.image.sketch_model import SketchConfig
    from studio.training import sketch

    data = six_emoji()

    def make(run_dir):
        torch.manual_seed(0)
        return sketch.SketchRun(run_dir, SketchConfig(channels=TINY_CHANNELS), data, log=lambda message: None)

    return make


@needs_font
def test_a_pix2pix_step_resumes_exactly(tmp_path, tiny_run_factory, monkeypatch):
    from studio.training import sketch

    monkeypatch.setattr(sketch, "BATCH", 4)
    run = tiny_run_factory(tmp_path / "run")

    def step(r, seed):
        torch.manual_seed(seed)  # dropout masks
        return sketch.train_step(r, np.random.default_rng(seed))

    assert all(np.isfinite(v) for v in step(run, 0).values())
    run.save()
    resumed = tiny_run_factory(tmp_path / "run")
    assert resumed.load()
    for seed in (1, 2):
        assert step(run, seed) == step(resumed, seed)


@needs_font
def test_translate_mode_runs_the_sketch_model_through_the_generic_loader(tmp_path, tiny_run_factory, monkeypatch):
    from PIL import Image

    from studio.core import catalog
    from studio.core.recipe import Recipe
    from studio.engine.image.translate import load_sketch_model, translate_artifacts
    from studio.training import sketch

    run = tiny_run_factory(tmp_path / "run")
    monkeypatch.setattr(sketch, "save_samples", lambda r, path: Image.new("RGB", (8, 8)).save(path) or path)
    folder = sketch.export(run, tmp_path / "emoji-sketch")
    source = catalog.resolve(str(folder))
    assert source.kind == "sketch"
    bundle = load_sketch_model(source, "cpu")
    drawing = tmp_path / "heart.png"
    Image.fromarray(make_sketch(_disc(), np.random.default_rng(1), hand_drawn=False)).save(drawing)

    def draw(seed):
        recipe = Recipe("image", prompt="", model="builtin:emoji-ldm", seed=seed,
                        params={"mode": "translate", "init_image": str(drawing), "steps": 20})
        (artifact,) = translate_artifacts(bundle, recipe)
        assert artifact.recipe.model == str(folder) and "steps" not in artifact.recipe.params
        return np.asarray(artifact.payload)

    first = draw(1)
    assert first.shape == (64, 64, 3)
    assert np.array_equal(first, draw(1)) and not np.array_equal(first, draw(2))  # the seed sets the dropout
