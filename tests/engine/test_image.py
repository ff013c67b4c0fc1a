"""Image generation on a tiny random SD model (2 steps, 32x32, CPU): determinism, seeds,
variations, previews, cancel, modes, schedulers, grids and the worker task."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from studio.core.interpolate import slerp
from studio.core.jobs import Cancelled, Job, Progress, TaskContext, UserError
from studio.core.recipe import Recipe
from studio.engine.image.generate import (
    generate,
    generate_artifacts,
    generate_images,
    generate_task,
    initial_noise,
    snap_size,
)
from studio.engine.image.grids import MIN_PLOT_CELL, image_grid, xy_plot
from studio.engine.image.preview import _is_sd_vae, preview_factors
from studio.engine.image.schedulers import available_schedulers, make_scheduler, model_default_scheduler
from tests.engine.conftest import cpu_device


def recipe(seed=1, **params) -> Recipe:
    base = {"steps": 2, "width": 32, "height": 32, "guidance": 5.0, "scheduler": "ddim"}
    return Recipe("image", prompt="a red apple", negative_prompt="blurry", seed=seed, params={**base, **params})


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_same_recipe_gives_identical_pixels_and_the_output_recipe_remakes_it(tiny_bundle):
    first = generate_artifacts(tiny_bundle, recipe(seed=7))[0]
    second = generate_images(tiny_bundle, recipe(seed=7))[0]
    assert first.payload.size == (32, 32)
    assert np.array_equal(pixels(first.payload), pixels(second))
    again = generate_images(tiny_bundle, first.recipe)[0]
    assert np.array_equal(pixels(first.payload), pixels(again))


def test_output_recipe_is_complete(tiny_bundle):
    out = generate_artifacts(tiny_bundle, recipe(seed=3, width=36))[0].recipe
    assert out.seed == 3 and out.model_hash == tiny_bundle.model_hash and len(out.model_hash) == 10
    assert (out.device, out.dtype) == ("cpu", "float32")
    assert out.params["width"] == 40  # snapped to the model's multiple of 8
    for key in ("steps", "guidance", "scheduler", "mode", "height", "batch_count"):
        assert key in out.params
    assert Recipe.from_json(out.to_json()) == out


def test_different_seed_gives_different_pixels(tiny_bundle):
    a = generate_images(tiny_bundle, recipe(seed=1))[0]
    b = generate_images(tiny_bundle, recipe(seed=2))[0]
    assert not np.array_equal(pixels(a), pixels(b))


def test_clip_skip_follows_a1111_counting(tiny_bundle):
    plain = pixels(generate_images(tiny_bundle, recipe())[0])
    assert np.array_equal(plain, pixels(generate_images(tiny_bundle, recipe(clip_skip=1))[0]))
    skipped = generate_artifacts(tiny_bundle, recipe(clip_skip=2))[0]
    assert not np.array_equal(plain, pixels(skipped.payload)) and skipped.recipe.params["clip_skip"] == 2


def test_guidance_can_start_late_and_the_recipe_says_so(tiny_bundle):
    guided = pixels(generate_images(tiny_bundle, recipe(steps=4))[0])
    assert np.array_equal(guided, pixels(generate_images(tiny_bundle, recipe(steps=4, guidance_start=0.0))[0]))
    # no step guided: the prompt's prediction alone, which is what guidance 1 (one branch) draws
    unguided = pixels(generate_images(tiny_bundle, recipe(steps=4, guidance=1.0))[0])
    never = pixels(generate_images(tiny_bundle, recipe(steps=4, guidance_start=1.0))[0])
    assert np.abs(never - unguided).max() <= 2 and not np.array_equal(never, guided)
    half = generate_artifacts(tiny_bundle, recipe(steps=4, guidance_start=0.5))[0]
    late = pixels(half.payload)
    assert not np.array_equal(late, guided) and not np.array_equal(late, never)
    assert half.recipe.params["guidance_start"] == 0.5
    assert np.array_equal(late, pixels(generate_images(tiny_bundle, half.recipe)[0]))  # and it remakes the picture


def test_the_first_guided_step_is_the_share_of_the_steps_run():
    from studio.engine.image.guidance import first_guided_step

    assert [first_guided_step(s, 20) for s in (0.0, 0.3, 0.5, 1.0)] == [0, 6, 10, 20]
    assert first_guided_step(0.3, 15) == 4  # img2img at strength 0.75 runs 15 of 20 steps


def test_variety_off_draws_as_before_and_on_varies_the_picture_and_its_recipe_remakes_it(tiny_bundle):
    plain = pixels(generate_images(tiny_bundle, recipe(steps=4, seed=3))[0])
    off = generate_artifacts(tiny_bundle, recipe(steps=4, seed=3, variety=0.0))[0]
    assert np.array_equal(plain, pixels(off.payload)) and "variety" not in off.recipe.params
    varied = generate_artifacts(tiny_bundle, recipe(steps=4, seed=3, variety=0.5))[0]
    assert not np.array_equal(plain, pixels(varied.payload))
    assert varied.recipe.params["variety"] == 0.5
    assert np.array_equal(pixels(varied.payload), pixels(generate_images(tiny_bundle, varied.recipe)[0]))
    other_seed = pixels(generate_images(tiny_bundle, recipe(steps=4, seed=4, variety=0.5))[0])
    assert not np.array_equal(other_seed, pixels(varied.payload))


def test_variety_is_left_out_of_few_step_lcm_sampling(tiny_bundle):
    from diffusers import LCMScheduler

    from studio.engine.image.generate import varies

    pipe = tiny_bundle.pipe
    assert varies(tiny_bundle, pipe)
    original = pipe.scheduler
    try:
        pipe.scheduler = LCMScheduler.from_config(original.config)
        assert not varies(tiny_bundle, pipe)
    finally:
        pipe.scheduler = original


def test_variety_anneals_the_prompt_from_noise_to_clean_by_the_middle_steps():
    import torch

    from studio.engine.image.guidance import ConditionAnnealing, annealed_embedding, annealing_weight

    assert [annealing_weight(r) for r in (1.0, 0.9, 0.75, 0.6, 0.2)] == [0.0, 0.0, 0.5, 1.0, 1.0]
    clean = torch.randn(2, 7, 16) * 3 + 1
    noisy = annealed_embedding(clean, 0.3, 0.75, [torch.Generator().manual_seed(s) for s in (1, 2)])
    assert not torch.allclose(noisy, clean)
    assert torch.allclose(noisy.mean((1, 2)), clean.mean((1, 2)), atol=1e-5)  # the scale the denoiser knows
    assert torch.allclose(noisy.std((1, 2)), clean.std((1, 2)), atol=1e-4)
    assert annealed_embedding(clean, 0.3, 0.5, []) is clean

    class Pipe:
        _num_timesteps = 10

    negative = torch.zeros_like(clean)
    annealing = ConditionAnnealing(0.3, [1, 2], 10)
    first = annealing.first_embeds(clean, negative)
    assert not torch.allclose(first, clean)
    guided = {"prompt_embeds": torch.cat([negative, first])}
    early = annealing(Pipe(), 1, 0, guided)["prompt_embeds"]  # for step 2: 0.8 of the way still to go
    assert torch.equal(early[:2], negative) and not torch.allclose(early[2:], clean)
    late = annealing(Pipe(), 4, 0, guided)["prompt_embeds"]  # for step 5: half the way left, the clean prompt
    assert torch.equal(late, torch.cat([negative, clean]))
    assert "prompt_embeds" not in annealing(Pipe(), 9, 0, guided)  # no step after the last
    replay = ConditionAnnealing(0.3, [1, 2], 10)
    assert torch.equal(replay.first_embeds(clean, negative), first)  # seeded: a recipe remakes its picture
    assert replay.tensor_inputs == ["latents", "prompt_embeds"]
    # SDXL: the pooled embedding is annealed too, with noise of its own (the prompt's draws stay as they were)
    pooled, negative_pooled = torch.randn(2, 32), torch.zeros(2, 32)
    xl = ConditionAnnealing(0.3, [1, 2], 10)
    assert torch.equal(xl.first_embeds(clean, negative), first)
    assert not torch.allclose(xl.first_pooled(pooled, negative_pooled), pooled)
    assert xl.tensor_inputs == ["latents", "prompt_embeds", "add_text_embeds"]
    both = {**guided, "add_text_embeds": torch.cat([negative_pooled, pooled])}
    early = xl(Pipe(), 1, 0, both)["add_text_embeds"]
    assert torch.equal(early[:2], negative_pooled) and not torch.allclose(early[2:], pooled)
    assert torch.equal(xl(Pipe(), 4, 0, both)["add_text_embeds"], torch.cat([negative_pooled, pooled]))


def test_random_seed_is_recorded(tiny_bundle):
    art = generate_artifacts(tiny_bundle, recipe(seed=-1))[0]
    assert art.recipe.seed >= 0
    assert np.array_equal(pixels(art.payload), pixels(generate_images(tiny_bundle, art.recipe)[0]))


def test_variation_strength_zero_is_the_base_seed_and_strength_moves_away(tiny_bundle):
    base = generate_images(tiny_bundle, recipe(seed=5))[0]
    zero = generate_images(tiny_bundle, recipe(seed=5, variation_seed=99, variation_strength=0.0))[0]
    half = generate_artifacts(tiny_bundle, recipe(seed=5, variation_seed=99, variation_strength=0.5))[0]
    full = generate_images(tiny_bundle, recipe(seed=99))[0]
    assert np.array_equal(pixels(base), pixels(zero))
    assert not np.array_equal(pixels(base), pixels(half.payload))
    assert not np.array_equal(pixels(full), pixels(half.payload))
    assert half.recipe.params["variation_seed"] == 99
    assert np.array_equal(pixels(half.payload), pixels(generate_images(tiny_bundle, half.recipe)[0]))


def test_slerp_keeps_the_noise_on_the_sphere():
    a, b = initial_noise(1, (1, 4, 16, 16)), initial_noise(2, (1, 4, 16, 16))
    assert slerp(a, b, 0.0, blend_lengths=False).equal(a) and slerp(a, b, 1.0, blend_lengths=False).equal(b)
    mid = slerp(a, b, 0.5, blend_lengths=False)
    assert abs(mid.norm() / a.norm() - 1) < 0.05  # a straight-line mix would lose ~30 % of the norm
    assert initial_noise(1, (1, 4, 16, 16), 2, 0.0).equal(a)


def test_batch_uses_consecutive_seeds_and_each_image_regenerates_alone(tiny_bundle):
    events: list[Progress] = []
    arts = generate_artifacts(tiny_bundle, recipe(seed=10, batch_count=2), events.append)
    assert [a.recipe.seed for a in arts] == [10, 11]
    assert [(e.step, e.total) for e in events] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    alone = generate_images(tiny_bundle, recipe(seed=11))[0]
    assert np.array_equal(pixels(arts[1].payload), pixels(alone))


@pytest.mark.parametrize("scheduler", ["ddim", "euler", "dpmpp_2m"])  # noisy latents, sigma-scaled, x0 estimate
def test_a_preview_arrives_once_per_step(tiny_bundle, scheduler):
    events: list[Progress] = []
    art = generate_artifacts(tiny_bundle, recipe(steps=3, scheduler=scheduler), events.append)[0]
    assert [(e.step, e.total) for e in events] == [(1, 3), (2, 3), (3, 3)]
    for event in events:
        # one pixel per latent pixel (the window scales it smoothly to the picture's size: it is tagged so)
        factor = tiny_bundle.pipe.vae_scale_factor
        assert isinstance(event.preview, Image.Image) and event.preview.info.get("smooth") is True
        assert art.payload.size == (32, 32) and event.preview.size == (32 // factor, 32 // factor)
    assert art.info["steps_run"] == 3 and art.info["it_per_s"] > 0
    assert "fallbacks" in art.info


def test_preview_factors_are_fitted_for_an_unknown_vae(tiny_bundle):
    import torch
    import torch.nn.functional as F

    weight, bias = preview_factors(tiny_bundle)
    assert tuple(weight.shape) == (4, 3) and tuple(bias.shape) == (3,)
    assert not _is_sd_vae(tiny_bundle.pipe.vae)
    # on a picture it never saw, the linear map predicts the decoded colours better than their mean does
    vae = tiny_bundle.pipe.vae
    ramp = torch.linspace(-1, 1, 32)
    picture = torch.stack([ramp.expand(32, 32), ramp.expand(32, 32).T, -ramp.expand(32, 32)])[None]
    with torch.inference_mode():
        latents = vae.encode(picture).latent_dist.mode() * vae.config.scaling_factor
        decoded = F.avg_pool2d(vae.decode(latents / vae.config.scaling_factor).sample, 2)
    target = decoded.permute(0, 2, 3, 1).reshape(-1, 3)
    predicted = latents.permute(0, 2, 3, 1).reshape(-1, 4) @ weight + bias
    assert ((predicted - target) ** 2).mean() < ((target.mean(0) - target) ** 2).mean()


def test_cancel_stops_within_one_step(tiny_bundle):
    unet_calls = []
    hook = tiny_bundle.pipe.unet.register_forward_hook(lambda *args: unet_calls.append(1))
    events: list[Progress] = []
    try:
        started = time.perf_counter()
        with pytest.raises(Cancelled):
            generate_artifacts(tiny_bundle, recipe(steps=8, scheduler="euler"), events.append, lambda: len(events) >= 2)
        elapsed = time.perf_counter() - started
    finally:
        hook.remove()
    assert len(events) == 2 and len(unet_calls) == 2  # no step ran after the one where cancel was seen
    assert elapsed < 5
    # the interrupt flag does not leak into the next generation
    assert generate_artifacts(tiny_bundle, recipe(steps=3, scheduler="euler"))[0].info["steps_run"] == 3


def test_cancel_between_batch_images(tiny_bundle):
    events: list[Progress] = []
    with pytest.raises(Cancelled):
        generate_artifacts(tiny_bundle, recipe(batch_count=3), events.append, lambda: len(events) >= 2)
    assert len(events) == 2


def test_cancel_mid_batch_keeps_the_images_already_finished(tiny_bundle):
    events: list[Progress] = []
    steps = 3
    with pytest.raises(Cancelled) as stopped:  # cancel during the second image
        generate_artifacts(tiny_bundle, recipe(batch_count=3, steps=steps, scheduler="euler"), events.append,
                           lambda: len(events) > steps + 1)
    kept = stopped.value.partial
    assert len(kept) == 1 and kept[0].recipe.seed == recipe().seed
    alone = generate_artifacts(tiny_bundle, recipe(steps=steps, scheduler="euler"))[0]
    assert np.array_equal(np.asarray(kept[0].payload), np.asarray(alone.payload))  # complete, and its recipe remakes it


@pytest.fixture()
def init_and_mask(tmp_path):
    gradient = np.linspace(0, 255, 32 * 32 * 3).reshape(32, 32, 3).astype(np.uint8)
    init = tmp_path / "init.png"
    Image.fromarray(gradient).save(init)
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    mask_path = tmp_path / "mask.png"
    mask.save(mask_path)
    return init, mask_path


def test_img2img_runs_the_strength_share_of_steps(tiny_bundle, init_and_mask):
    init, _mask = init_and_mask
    art = generate_artifacts(tiny_bundle, recipe(init_image=str(init), strength=0.5, steps=4))[0]
    assert art.recipe.params["mode"] == "img2img" and art.payload.size == (32, 32)
    assert art.info["steps_run"] == 2
    assert np.array_equal(pixels(art.payload), pixels(generate_images(tiny_bundle, art.recipe)[0]))
    assert tiny_bundle.pipeline_for("img2img").unet is tiny_bundle.pipe.unet  # same weights, no reload


def test_inpaint_runs_and_is_repeatable(tiny_bundle, init_and_mask):
    init, mask = init_and_mask
    art = generate_artifacts(tiny_bundle, recipe(init_image=str(init), mask_image=str(mask)))[0]
    assert art.recipe.params["mode"] == "inpaint" and art.payload.size == (32, 32)
    out, original = pixels(art.payload), pixels(Image.open(init).convert("RGB"))
    outside = np.ones((32, 32), bool)
    outside[8:24, 8:24] = False
    assert np.array_equal(out[outside], original[outside])  # unmasked pixels are kept exactly
    assert not np.array_equal(out[~outside], original[~outside])  # the masked square was repainted
    assert np.array_equal(pixels(art.payload), pixels(generate_images(tiny_bundle, art.recipe)[0]))


def test_missing_init_image_or_no_step_left_is_a_user_error(tiny_bundle, init_and_mask):
    with pytest.raises(UserError, match="starting image"):
        generate_artifacts(tiny_bundle, recipe(mode="img2img"))
    with pytest.raises(UserError, match="no step"):
        generate_artifacts(tiny_bundle, recipe(init_image=str(init_and_mask[0]), strength=0.1, steps=2))


def test_schedulers_fit_and_switching_changes_the_result(tiny_bundle):
    names = available_schedulers(tiny_bundle.pipe)
    for name in ("ddim", "euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "unipc", "pndm", "heun"):
        assert name in names
    assert "lcm" not in names  # not a consistency-distilled model
    karras = make_scheduler("dpmpp_2m_karras", tiny_bundle.base_scheduler_config)
    assert karras.config.use_karras_sigmas and not make_scheduler("dpmpp_2m", karras.config).config.use_karras_sigmas
    results = {
        name: pixels(generate_images(tiny_bundle, recipe(scheduler=name))[0]) for name in ("ddim", "euler", "heun")
    }
    assert not np.array_equal(results["ddim"], results["euler"])
    assert not np.array_equal(results["euler"], results["heun"])
    with pytest.raises(UserError, match="does not fit"):
        generate_artifacts(tiny_bundle, recipe(scheduler="lcm"))


def test_the_model_own_scheduler_is_the_default(tiny_bundle):
    names = available_schedulers(tiny_bundle.pipe)
    assert generate_artifacts(tiny_bundle, recipe(scheduler=None))[0].recipe.params["scheduler"] == "ddim"
    dpm = {"_class_name": "DPMSolverMultistepScheduler", "use_karras_sigmas": True}
    assert model_default_scheduler(dpm, names) == "dpmpp_2m_karras"
    assert model_default_scheduler({**dpm, "use_karras_sigmas": False}, names) == "dpmpp_2m"
    assert model_default_scheduler({"_class_name": "DDPMScheduler"}, names) == "euler_a"


def test_size_snaps_to_the_model_multiple(tiny_bundle):
    assert tiny_bundle.size_multiple == 8
    assert snap_size(36, 8) == 40 and snap_size(3, 8) == 8 and snap_size(512, 64) == 512 and snap_size(520, 64) == 512


def test_xy_plot_grid_has_one_labelled_cell_per_pair(tiny_bundle):
    events: list[Progress] = []
    grid = xy_plot(tiny_bundle, recipe(), "steps", [1, 2], "scheduler", ["ddim", "euler", "unipc"], events.append)
    cell = MIN_PLOT_CELL  # 32 px images are enlarged 4x
    assert grid.height > 3 * cell + 2 * 2 and grid.height < 3 * cell + 2 * 2 + 80
    assert grid.width > 2 * cell + 2 and grid.width < 2 * cell + 2 + 16 * 32 + 1
    assert events[-1].step == events[-1].total
    assert image_grid([Image.new("RGB", (8, 8))] * 5, cols=2).size == (16, 24)
    with pytest.raises(UserError, match="cannot vary"):
        xy_plot(tiny_bundle, recipe(), "stepz", [1], "seed", [1])


def test_a_plot_over_width_keeps_each_pictures_shape():
    from studio.engine.image.grids import labelled_grid

    square, wide = Image.new("RGB", (64, 64), "red"), Image.new("RGB", (128, 64), "blue")
    sheet = labelled_grid([square, wide], 2, ["64", "128"], ["row"])
    pixels_of = np.asarray(sheet)
    blue = (pixels_of[..., 2] > 200) & (pixels_of[..., 0] < 50)
    red = (pixels_of[..., 0] > 200) & (pixels_of[..., 2] < 50)
    rows, cols = np.nonzero(blue)
    assert (cols.max() - cols.min() + 1) == 2 * (rows.max() - rows.min() + 1)  # still twice as wide as high
    rows, cols = np.nonzero(red)
    assert (cols.max() - cols.min() + 1) == (rows.max() - rows.min() + 1)  # still square, same scale
    assert red.sum() * 2 == blue.sum()


def test_nan_decode_is_redone_in_float32(tiny_sd_folder, tmp_path, monkeypatch):
    """The black-image bug: a half-precision VAE decode overflowing to NaN, redone in float32."""
    import torch

    from studio.core.catalog import resolve
    from studio.engine.image.pipelines import load_image_pipeline

    monkeypatch.setenv("LATENT_STUDIO_CACHE", str(tmp_path))
    bundle = load_image_pipeline(resolve(str(tiny_sd_folder)), cpu_device("bfloat16"))
    assert bundle.dtype == "bfloat16" and bundle.pipe.vae.dtype == torch.bfloat16
    vae = bundle.pipe.vae
    real_decode = vae.decode

    def overflowing_decode(z, *args, **kwargs):
        out = real_decode(z, *args, **kwargs)
        if z.dtype != torch.float32:
            out.sample.fill_(float("nan"))
        return out

    monkeypatch.setattr(vae, "decode", overflowing_decode)
    image = generate_images(bundle, recipe())[0]
    assert np.asarray(image).std() > 0  # not a flat black square
    assert any("float32" in f for f in bundle.fallbacks)
    assert vae.dtype == torch.bfloat16  # back in the pipeline's dtype for img2img encodes


class _Models:
    def __init__(self):
        self.keys = []

    def get(self, slot, key, loader):
        self.keys.append((slot, key))
        return loader()


def test_generate_task_loads_through_the_model_cache(tiny_sd_folder):
    models = _Models()
    events: list[Progress] = []
    ctx = TaskContext(report=events.append, cancelled=lambda: False, models=models, device=cpu_device())
    job = Job(
        "image.generate",
        recipe=Recipe(
            "image", prompt="x", model=str(tiny_sd_folder), seed=4, params={"steps": 2, "width": 32, "height": 32}
        ),
    )
    result = generate_task(job, ctx)
    assert models.keys == [("image", (str(tiny_sd_folder), "cpu", "float32", ""))]
    (art,) = result.artifacts
    assert art.modality == "image" and art.recipe.seed == 4 and art.recipe.model == str(tiny_sd_folder)
    assert any(e.preview is not None for e in events)


def test_headless_generate_drops_settings_its_mode_does_not_use(tiny_sd_folder):
    cli_like = Recipe(
        "image",
        prompt="x",
        model=str(tiny_sd_folder),
        seed=2,
        params={
            "steps": 2,
            "width": 32,
            "height": 32,
            "init_image": "",
            "mask_image": "",
            "strength": 0.75,
            "variation_seed": 0,
            "variation_strength": 0.0,
        },
    )
    (art,) = generate(cli_like, device=cpu_device())
    assert art.recipe.params["mode"] == "txt2img"
    assert not {"init_image", "mask_image", "strength", "variation_seed"} & set(art.recipe.params)


def test_default_model_missing_says_what_is_missing(monkeypatch, tmp_path):
    from studio import paths

    monkeypatch.setattr(paths, "models_dir", lambda: tmp_path)
    monkeypatch.setattr(paths, "builtin_model_dir", lambda name: tmp_path / name)
    ctx = TaskContext(report=lambda p: None, cancelled=lambda: False, models=_Models(), device=cpu_device())
    with pytest.raises(UserError, match="emoji-ldm"):
        generate_task(Job("image.generate", recipe=Recipe("image", prompt="x")), ctx)
