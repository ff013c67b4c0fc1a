"""Seed and prompt travel on a tiny diffusers model: endpoints equal ordinary generations."""

import numpy as np
import pytest

from studio.core.jobs import Cancelled, Job, TaskContext
from studio.core.model_cache import ModelCache
from studio.core.recipe import Recipe
from studio.engine.image import generate as image
from studio.engine.image import travel
from tests.engine.conftest import cpu_device


def context(cancel_after=None):
    calls = []

    def report(progress):
        calls.append(progress)

    def cancelled():
        return cancel_after is not None and len(calls) >= cancel_after

    return TaskContext(report, cancelled, ModelCache(), cpu_device()), calls


def base(model):
    return Recipe("image", prompt="red", model=str(model), seed=3,
                  params={"steps": 2, "guidance": 3.0, "width": 32, "height": 32, "scheduler": "ddim"})


def pixels(img):
    return np.asarray(img, dtype=np.int16)


def test_seed_travel_starts_at_seed_a_and_ends_at_seed_b(tiny_sd_folder):
    ctx, _ = context()
    recipe = base(tiny_sd_folder)
    frames = travel.seed_travel_task(Job("image.seed_travel", recipe, args={"seed_b": 11, "frames": 3}), ctx).artifacts[0]
    assert frames.modality == "animation" and len(frames.payload) == 3
    bundle = image.load_for_recipe(recipe, ctx)
    first = image.generate_artifacts(bundle, recipe, None, None)[0].payload
    last = image.generate_artifacts(bundle, Recipe(**{**recipe.__dict__, "seed": 11}), None, None)[0].payload
    assert np.array_equal(pixels(frames.payload[0]), pixels(first))
    assert np.abs(pixels(frames.payload[-1]) - pixels(last)).max() <= 1
    assert not np.array_equal(pixels(frames.payload[1]), pixels(first))


def test_prompt_travel_first_frame_is_the_first_prompt(tiny_sd_folder):
    ctx, calls = context()
    recipe = base(tiny_sd_folder)
    result = travel.prompt_travel_task(Job("image.prompt_travel", recipe, args={"prompt_b": "blue", "frames": 3}), ctx)
    frames = result.artifacts[0].payload
    bundle = image.load_for_recipe(recipe, ctx)
    plain = image.generate_artifacts(bundle, recipe, None, None)[0].payload
    assert np.abs(pixels(frames[0]) - pixels(plain)).max() <= 1
    assert not np.array_equal(pixels(frames[0]), pixels(frames[2]))
    assert result.artifacts[0].recipe.params["prompt_b"] == "blue"
    assert [p.step for p in calls][-1] == 6  # 3 frames x 2 steps, counted across the whole job


def test_travel_cancels(tiny_sd_folder):
    ctx, _ = context(cancel_after=1)
    with pytest.raises(Cancelled):
        travel.seed_travel_task(Job("image.seed_travel", base(tiny_sd_folder), args={"seed_b": 2, "frames": 4}), ctx)
