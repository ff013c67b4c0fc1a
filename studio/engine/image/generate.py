"""Image generation with diffusers: text-to-image, image-to-image and inpainting.

One call = one recipe = `batch_count` images made one after the other (A1111's "batch
count"), image i with seed + i, so each output's recipe regenerates exactly that output.

What is ours rather than diffusers':
- the starting noise, drawn on the CPU from the seed (same noise on CPU, CUDA and MPS) and
  optionally slerped towards a variation seed's noise, as A1111's "variation seed" does;
- a preview after every step: a 4->3 linear map from latents to RGB (known factors for the
  SD VAEs; for any other VAE fitted once by least squares on colour patches it encodes), a tiny image for the UI, of the
  scheduler's clean-image estimate where it keeps one (DPM++, UniPC), else of the noisy latents;
- cancel within one step: the step callback sets diffusers' `_interrupt` flag, the pipeline
  skips the remaining steps and the decode, and we raise Cancelled;
- the VAE decode, so a half-precision decode that overflows (NaNs: the black-image bug) is
  redone in float32 and the user is told.

torch/diffusers are imported inside functions (start-up time).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from studio.core import catalog
from studio.core.jobs import Artifact, Cancelled, Job, Progress, Result, TaskContext, UserError
from studio.core.recipe import Recipe
from studio.engine.image.pipelines import ImageBundle, adapt_memory_to_size, load_image_pipeline
from studio.engine.image.schedulers import available_schedulers, model_default_scheduler, set_scheduler

DEFAULT_MODEL = "builtin:emoji-ldm"
MODES = ("txt2img", "img2img", "inpaint")
DEFAULTS = {"steps": 20, "guidance": 7.0, "batch_count": 1, "variation_strength": 0.0}
DEFAULT_STRENGTH = {"img2img": 0.75, "inpaint": 1.0}
MAX_SEED = 2**32 - 1

Report = Callable[[Progress], None] | None
IsCancelled = Callable[[], bool] | None


# --- settings ------------------------------------------------------------------------------


def snap_size(value: int, multiple: int) -> int:
    """The nearest multiple of `multiple`, at least one multiple."""
    return max(multiple, (int(value) + multiple // 2) // multiple * multiple)  # halves round up


def random_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


def _mode_of(params) -> str:
    mode = params.get("mode")
    if mode:
        if mode not in MODES:
            raise UserError(f"unknown image mode {mode!r}; choose one of {', '.join(MODES)}")
        return mode
    if params.get("mask_image"):
        return "inpaint"
    return "img2img" if params.get("init_image") else "txt2img"


def _load_picture(value, mode: str, size: tuple[int, int] | None = None):
    """An RGB (or, for masks, L) picture from a path or a PIL image, resized to `size`."""
    from PIL import Image

    if value is None or value == "":
        return None
    try:
        picture = value if isinstance(value, Image.Image) else Image.open(Path(value))
        picture = picture.convert(mode)
    except (OSError, ValueError) as exc:
        raise UserError(f"could not read the image {value}: {exc}") from exc
    if size and picture.size != size:
        picture = picture.resize(size, Image.Resampling.LANCZOS)
    return picture


def resolve_settings(bundle: ImageBundle, recipe: Recipe) -> dict[str, Any]:
    """Every generation setting with defaults filled in and the size snapped to the model's multiple."""
    p = recipe.params
    mode = _mode_of(p)
    multiple = bundle.size_multiple
    width, height = p.get("width"), p.get("height")
    if (width is None or height is None) and mode != "txt2img" and p.get("init_image"):
        width, height = _load_picture(p["init_image"], "RGB").size
    width = snap_size(width or bundle.native_size, multiple)
    height = snap_size(height or bundle.native_size, multiple)
    schedulers = available_schedulers(bundle.pipe)
    scheduler = p.get("scheduler") or model_default_scheduler(bundle.base_scheduler_config, schedulers)
    if scheduler not in schedulers:
        raise UserError(f"the scheduler {scheduler!r} does not fit this model; choose one of {', '.join(schedulers)}")
    steps = int(p.get("steps", DEFAULTS["steps"]))
    if steps < 1:
        raise UserError("steps must be at least 1")
    settings: dict[str, Any] = {
        "mode": mode,
        "steps": steps,
        "guidance": float(p.get("guidance", DEFAULTS["guidance"])),
        "width": width,
        "height": height,
        "scheduler": scheduler,
        "batch_count": max(1, int(p.get("batch_count", DEFAULTS["batch_count"]))),
        "variation_strength": min(1.0, max(0.0, float(p.get("variation_strength") or 0.0))),
        "variation_seed": p.get("variation_seed"),
    }
    if p.get("clip_skip") not in (None, ""):
        settings["clip_skip"] = max(1, int(p["clip_skip"]))
    if mode != "txt2img":
        settings["strength"] = min(1.0, max(0.0, float(p.get("strength", DEFAULT_STRENGTH[mode]))))
        if int(steps * settings["strength"]) < 1:
            raise UserError(f"strength {settings['strength']} x {steps} steps leaves no step to run; raise either")
        settings["init_image"] = p.get("init_image")
        if not settings["init_image"]:
            raise UserError(f"{mode} needs a starting image")
    if mode == "inpaint":
        settings["mask_image"] = p.get("mask_image")
        if not settings["mask_image"]:
            raise UserError("inpainting needs a mask (white = repaint)")
    return settings


# --- noise ---------------------------------------------------------------------------------


def seed_noise(seed: int, shape: Sequence[int]):
    """Standard normal noise from `seed`, drawn on the CPU so every device starts from the same noise."""
    import torch

    generator = torch.Generator("cpu").manual_seed(int(seed))
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32)


def slerp(t: float, a, b):
    """Spherical interpolation between two noise tensors; t=0 gives `a` exactly, t=1 gives `b`.

    Noise from a Gaussian lives near a sphere; a straight line between two samples passes
    inside it (too little variance, washed-out images), the arc stays on it.
    """
    import torch

    if t <= 0.0:
        return a.clone()
    if t >= 1.0:
        return b.clone()
    a64, b64 = a.double(), b.double()
    dot = torch.sum(a64 * b64) / (a64.norm() * b64.norm())
    dot = dot.clamp(-1.0, 1.0)
    if dot.abs() > 0.9995:  # nearly parallel: the arc is a line
        return ((1 - t) * a64 + t * b64).to(a.dtype)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    mixed = torch.sin((1 - t) * omega) / so * a64 + torch.sin(t * omega) / so * b64
    return mixed.to(a.dtype)


def initial_noise(seed: int, shape, variation_seed: int | None = None, variation_strength: float = 0.0):
    noise = seed_noise(seed, shape)
    if variation_strength > 0 and variation_seed is not None:
        noise = slerp(variation_strength, noise, seed_noise(variation_seed, shape))
    return noise


# --- previews ------------------------------------------------------------------------------

# Latent -> RGB in [-1, 1] for the Stable Diffusion VAEs, on the scaled latents the UNet sees
# (the values ComfyUI and others use for their cheap previews).
SD1_FACTORS = (
    [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]],
    [0.0, 0.0, 0.0],
)
SDXL_FACTORS = (
    [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]],
    [0.1084, -0.0175, -0.0011],
)


def _vae_input(vae, latents):
    """Scaled UNet latents -> what the VAE decoder takes (undo scaling, shift, per-channel stats)."""
    import torch

    config = vae.config
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    if mean is not None and std is not None:
        mean_t = torch.tensor(mean, device=latents.device, dtype=latents.dtype).view(1, -1, 1, 1)
        std_t = torch.tensor(std, device=latents.device, dtype=latents.dtype).view(1, -1, 1, 1)
        return latents * std_t / config.scaling_factor + mean_t
    shift = getattr(config, "shift_factor", None) or 0.0
    return latents / config.scaling_factor + shift


def _unet_space(vae, raw):
    """What the VAE encoder gives -> the scaled latents the UNet sees (inverse of _vae_input)."""
    import torch

    config = vae.config
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    if mean is not None and std is not None:
        mean_t = torch.tensor(mean, device=raw.device, dtype=raw.dtype).view(1, -1, 1, 1)
        std_t = torch.tensor(std, device=raw.device, dtype=raw.dtype).view(1, -1, 1, 1)
        return (raw - mean_t) * config.scaling_factor / std_t
    shift = getattr(config, "shift_factor", None) or 0.0
    return (raw - shift) * config.scaling_factor


def _is_sd_vae(vae) -> bool:
    config = vae.config
    return config.latent_channels == 4 and list(config.block_out_channels) == [128, 256, 512, 512]


def _colour_patches(count: int, side: int):
    """Synthetic pictures: a few flat colour rectangles on a flat background, in [-1, 1].

    Pictures are mostly regions of colour, and these go through the VAE's encoder into latents
    like the ones it makes for real pictures (random latents do not: the fit on them is 3-5x worse).
    """
    import torch

    generator = torch.Generator("cpu").manual_seed(0)
    backgrounds = torch.rand(count, 3, 1, 1, generator=generator) * 2 - 1
    backgrounds[0::3], backgrounds[1::3] = 1.0, -1.0  # white, black and coloured grounds (one bg alone fits 2-3x worse)
    images = backgrounds.expand(count, 3, side, side).clone()
    for image in images:
        for _ in range(3):
            h, w = (int(v) for v in torch.randint(side // 4, side // 2 + 1, (2,), generator=generator))
            top, left = (int(v) for v in torch.randint(0, side - side // 4, (2,), generator=generator))
            image[:, top : top + h, left : left + w] = torch.rand(3, 1, 1, generator=generator) * 2 - 1
    return images


def fit_preview_factors(vae, vae_scale_factor: int, device, samples: int = 12, latent_side: int = 16):
    """Least-squares fit of latent -> RGB (4x3 weight + bias), once per model: encode colour patches, decode, fit.

    Latents here are the scaled ones the UNet sees; the target is the decoded picture averaged
    over each latent pixel's footprint, in [-1, 1].
    """
    import torch
    import torch.nn.functional as F

    pictures = _colour_patches(samples, latent_side * vae_scale_factor).to(device=device, dtype=vae.dtype)
    with torch.inference_mode():
        raw = vae.encode(pictures).latent_dist.mode()
        latents = _unet_space(vae, raw)
        decoded = vae.decode(_vae_input(vae, latents)).sample
    channels = latents.shape[1]
    target = F.avg_pool2d(decoded.float().cpu(), vae_scale_factor)  # one RGB per latent pixel
    x = latents.float().cpu().permute(0, 2, 3, 1).reshape(-1, channels)
    x = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    y = target.permute(0, 2, 3, 1).reshape(-1, 3)
    solution = torch.linalg.lstsq(x, y).solution
    return solution[:channels].contiguous(), solution[channels].contiguous()


def preview_factors(bundle: ImageBundle):
    """The latent -> RGB map for this model, chosen or fitted once and cached on the bundle."""
    import torch

    if bundle.preview_factors is None:
        vae = bundle.pipe.vae
        if _is_sd_vae(vae):
            weight, bias = SDXL_FACTORS if abs(vae.config.scaling_factor - 0.13025) < 1e-4 else SD1_FACTORS
            bundle.preview_factors = (torch.tensor(weight), torch.tensor(bias))
        else:
            bundle.preview_factors = fit_preview_factors(
                vae, bundle.pipe.vae_scale_factor, bundle.pipe._execution_device
            )
    return bundle.preview_factors


def _noise_scale(scheduler) -> float:
    """Sigma-style schedulers (Euler, Heun, LMS) carry latents with std sqrt(sigma^2+1); undo that."""
    sigmas, index = getattr(scheduler, "sigmas", None), getattr(scheduler, "step_index", None)
    try:
        init = float(scheduler.init_noise_sigma)
    except (AttributeError, TypeError):
        return 1.0
    if sigmas is None or index is None or init < 1.5:
        return 1.0
    sigma = float(sigmas[min(int(index), len(sigmas) - 1)])
    return 1.0 / math.sqrt(sigma * sigma + 1.0)


def _predicted_clean_latents(scheduler):
    """The scheduler's own estimate of the finished latents, where it keeps one (DPM++ and UniPC do).

    Previewing that estimate shows the picture from the first steps; the noisy latents only
    show it near the end.
    """
    outputs = getattr(scheduler, "model_outputs", None)
    if not outputs or outputs[-1] is None:
        return None
    config = scheduler.config
    if getattr(config, "algorithm_type", "") in ("dpmsolver++", "sde-dpmsolver++") or getattr(
        config, "predict_x0", False
    ):
        return outputs[-1]
    return None


def latent_preview(latents, factors, scale: float = 1.0, upscale: int = 1):
    """A PIL image of the first latent in the batch: one pixel per latent pixel, then `upscale`d smoothly.

    The smooth upscale (to the final image's size) matters on screen: shown with the nearest-neighbour
    scaling that keeps finished pixel art crisp, a 16x16 preview was a mosaic of hard squares.
    """
    import torch
    from PIL import Image

    weight, bias = factors
    with torch.inference_mode():
        x = latents[0].detach().float().cpu().permute(1, 2, 0) * scale  # H, W, C
        rgb = ((x @ weight + bias + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    picture = Image.fromarray(rgb, "RGB")
    if upscale > 1:
        picture = picture.resize((picture.width * upscale, picture.height * upscale), Image.Resampling.BILINEAR)
    return picture


# --- decoding ------------------------------------------------------------------------------


def _decode_fp32(vae, x):
    import torch

    original = vae.dtype
    vae.to(dtype=torch.float32)
    try:
        return vae.decode(x.float()).sample
    finally:
        vae.to(dtype=original)  # img2img encodes with the VAE in the pipeline's dtype


def decode_latents(bundle: ImageBundle, pipe, latents) -> list:
    """Latents -> PIL images, redoing the decode in float32 if half precision gave NaNs."""
    import torch

    vae = pipe.vae
    with torch.inference_mode():
        x = _vae_input(vae, latents)
        upcast = bundle.decode_vae_in_fp32 or (
            vae.dtype == torch.float16
            and bundle.family.startswith("sdxl")
            and getattr(vae.config, "force_upcast", False)
        )
        if upcast:
            image = _decode_fp32(vae, x)
        else:
            image = vae.decode(x.to(vae.dtype)).sample
            if vae.dtype != torch.float32 and not torch.isfinite(image).all():
                bundle.decode_vae_in_fp32 = True
                bundle.fallbacks.append(
                    f"VAE decodes in float32: the {bundle.dtype} decode gave NaNs (a black image); from now on this "
                    "model's images are decoded in float32."
                )
                try:
                    image = _decode_fp32(vae, x)
                except (RuntimeError, ValueError) as exc:  # e.g. weights streamed by sequential offload
                    bundle.decode_vae_in_fp32 = False
                    bundle.fallbacks[-1] = (
                        f"The {bundle.dtype} VAE decode gave NaNs and float32 was not possible ({exc})."
                    )
        return pipe.image_processor.postprocess(image.float(), output_type="pil")


# --- one image -----------------------------------------------------------------------------


class _StepWatcher:
    """The `callback_on_step_end` hook: progress + preview each step, and the cancel switch."""

    def __init__(self, bundle, report, cancelled, image_index: int, image_count: int):
        self.bundle, self.report, self.cancelled = bundle, report, cancelled
        self.image_index, self.image_count = image_index, image_count
        self.steps_seen = 0
        self.interrupted = False
        self.started = time.perf_counter()
        self.last_step_at = self.started
        self.preview_seconds = 0.0

    def __call__(self, pipe, step: int, timestep, tensors: dict) -> dict:
        self.steps_seen += 1
        self.last_step_at = time.perf_counter()
        if self.report is not None:
            per_image = int(getattr(pipe, "_num_timesteps", 0) or self.steps_seen)
            began = time.perf_counter()
            clean = _predicted_clean_latents(pipe.scheduler)
            upscale = int(getattr(pipe, "vae_scale_factor", 8) or 8)
            if clean is not None:
                preview = latent_preview(clean, preview_factors(self.bundle), upscale=upscale)
            else:
                preview = latent_preview(tensors["latents"], preview_factors(self.bundle), _noise_scale(pipe.scheduler),
                                         upscale=upscale)
            self.preview_seconds += time.perf_counter() - began
            self.report(
                Progress(
                    self.image_index * per_image + self.steps_seen,
                    self.image_count * per_image,
                    preview=preview,
                    message=f"image {self.image_index + 1} of {self.image_count}" if self.image_count > 1 else "",
                )
            )
        if self.cancelled is not None and self.cancelled():
            # diffusers skips the remaining steps when _interrupt is set; with output_type="latent"
            # it also skips the decode, so the call returns at once.
            pipe._interrupt = True
            self.interrupted = True
        return {}


def _clip_skip_embeddings(pipe, text: str, skip: int):
    """CLIP embeddings taken `skip` layers before the last, through the final layer norm (as SD1 models expect)."""
    import torch

    tokens = pipe.tokenizer(
        text, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True, return_tensors="pt"
    )
    with torch.inference_mode():
        out = pipe.text_encoder(tokens.input_ids.to(pipe._execution_device), output_hidden_states=True)
        # transformers >= 5.6 flattened CLIPTextModel (no .text_model), which breaks diffusers' own clip_skip
        final_norm = getattr(pipe.text_encoder, "text_model", pipe.text_encoder).final_layer_norm
        return final_norm(out.hidden_states[-(skip + 1)])


def _apply_clip_skip(pipe, kwargs: dict, skip: int) -> None:
    if hasattr(pipe, "text_encoder_2"):
        kwargs["clip_skip"] = skip  # SDXL's own path takes raw hidden states and works
        return
    kwargs["prompt_embeds"] = _clip_skip_embeddings(pipe, kwargs.pop("prompt"), skip)
    kwargs["negative_prompt_embeds"] = _clip_skip_embeddings(pipe, kwargs.pop("negative_prompt") or "", skip)


def _pipeline_kwargs(bundle, recipe: Recipe, settings: dict, seed: int, variation_seed: int | None) -> dict:
    import torch
    from PIL import Image

    mode = settings["mode"]
    pipe = bundle.pipeline_for(mode)
    size = (settings["width"], settings["height"])
    kwargs: dict[str, Any] = {
        "prompt": recipe.prompt,
        "negative_prompt": recipe.negative_prompt or None,
        "num_inference_steps": settings["steps"],
        "guidance_scale": settings["guidance"],
        "width": size[0],
        "height": size[1],
        # ancestral samplers draw fresh noise every step: from a CPU generator too, so devices agree
        "generator": torch.Generator("cpu").manual_seed(seed),
        "output_type": "latent",
    }
    if settings.get("clip_skip", 1) > 1:
        _apply_clip_skip(pipe, kwargs, settings["clip_skip"] - 1)  # A1111's "Clip skip: 1" means no skip
    latent_shape = (
        1,
        pipe.vae.config.latent_channels,
        size[1] // pipe.vae_scale_factor,
        size[0] // pipe.vae_scale_factor,
    )
    noise = initial_noise(seed, latent_shape, variation_seed, settings["variation_strength"])
    dtype = pipe.unet.dtype
    if bundle.inpaint_only and mode == "txt2img":
        # a 9-channel inpainting model draws from nothing by repainting a blank canvas
        kwargs.update(image=Image.new("RGB", size, (127, 127, 127)), mask_image=Image.new("L", size, 255), strength=1.0)
        kwargs["latents"] = noise.to(dtype)
    elif mode == "txt2img":
        kwargs["latents"] = noise.to(dtype)
    else:
        kwargs["image"] = _load_picture(settings["init_image"], "RGB", size)
        kwargs["strength"] = settings["strength"]
        mask = settings.get("mask_image") if mode == "inpaint" else None
        if mode == "img2img" and bundle.inpaint_only:
            mask = Image.new("L", size, 255)
        if mask is not None:
            kwargs["mask_image"] = _load_picture(mask, "L", size)
            if settings["strength"] >= 1.0:
                kwargs["latents"] = noise.to(dtype)  # full-strength inpainting starts from our noise
    if mode == "img2img" and not bundle.inpaint_only:
        kwargs.pop("width")
        kwargs.pop("height")
    return kwargs


def _uses_our_noise(bundle, settings) -> bool:
    mode = settings["mode"]
    return mode == "txt2img" or (settings["strength"] >= 1.0 and (mode == "inpaint" or bundle.inpaint_only))


def generate_one(
    bundle: ImageBundle,
    recipe: Recipe,
    settings: dict,
    seed: int,
    variation_seed,
    index: int,
    count: int,
    report: Report = None,
    cancelled: IsCancelled = None,
):
    """One image: returns (PIL image, info dict). Raises Cancelled."""
    from PIL import Image

    adapt_memory_to_size(bundle, settings["width"], settings["height"])
    pipe = bundle.pipeline_for(settings["mode"])
    set_scheduler(pipe, settings["scheduler"], bundle.base_scheduler_config)
    kwargs = _pipeline_kwargs(bundle, recipe, settings, seed, variation_seed)
    watcher = _StepWatcher(bundle, report, cancelled, index, count)
    kwargs.update(callback_on_step_end=watcher, callback_on_step_end_tensor_inputs=["latents"])
    latents = pipe(**kwargs).images
    if watcher.interrupted or (cancelled is not None and cancelled()):
        raise Cancelled()
    denoise_seconds = watcher.last_step_at - watcher.started
    began = time.perf_counter()
    image = decode_latents(bundle, pipe, latents)[0]
    if settings["mode"] == "inpaint":
        # Like A1111: pixels outside the mask stay exactly as they were (the VAE round trip would blur them).
        image = Image.composite(image, kwargs["image"], kwargs["mask_image"])
    info = {
        "it_per_s": watcher.steps_seen / denoise_seconds if denoise_seconds > 0 else None,
        "steps_run": watcher.steps_seen,
        "denoise_seconds": denoise_seconds,
        "decode_seconds": time.perf_counter() - began,
        "preview_seconds": watcher.preview_seconds,
    }
    return image, info


def _output_recipe(bundle: ImageBundle, recipe: Recipe, settings: dict, seed: int, variation_seed) -> Recipe:
    params = dict(recipe.params)
    params.update({k: v for k, v in settings.items() if v is not None})
    params["batch_count"] = 1  # this recipe makes exactly this image
    unused = {"txt2img": ("strength", "init_image", "mask_image"), "img2img": ("mask_image",), "inpaint": ()}
    for key in unused[settings["mode"]]:
        params.pop(key, None)  # e.g. a CLI's default strength would read as "Denoising strength" in A1111
    if settings["variation_strength"] > 0 and _uses_our_noise(bundle, settings):
        params["variation_seed"] = variation_seed
    else:  # no variation took effect: say nothing (A1111 writes these keys only when used)
        params.pop("variation_seed", None)
        params.pop("variation_strength", None)
    return Recipe(
        modality="image",
        prompt=recipe.prompt,
        negative_prompt=recipe.negative_prompt,
        model=recipe.model or bundle.source.ref,
        model_hash=bundle.model_hash,
        seed=seed,
        params=params,
        device=bundle.device,
        dtype=bundle.dtype,
        parents=recipe.parents,
    )


def generate_artifacts(
    bundle: ImageBundle, recipe: Recipe, report: Report = None, cancelled: IsCancelled = None
) -> list[Artifact]:
    """All images of a recipe, one Artifact each with the complete recipe that remakes it."""
    settings = resolve_settings(bundle, recipe)
    base_seed = recipe.seed if recipe.seed is not None and int(recipe.seed) >= 0 else random_seed()
    variation_base = settings["variation_seed"]
    if settings["variation_strength"] > 0 and (variation_base is None or int(variation_base) < 0):
        variation_base = random_seed()
    notes = []
    if settings["variation_strength"] > 0 and not _uses_our_noise(bundle, settings):
        notes.append("Variation seeds apply to text-to-image and full-strength inpainting; ignored here.")
    artifacts = []
    count = settings["batch_count"]
    for index in range(count):
        if cancelled is not None and cancelled():
            raise Cancelled(partial=artifacts)
        seed = (int(base_seed) + index) % (MAX_SEED + 1)
        variation_seed = None if variation_base is None else (int(variation_base) + index) % (MAX_SEED + 1)
        try:
            image, info = generate_one(bundle, recipe, settings, seed, variation_seed, index, count, report, cancelled)
        except Cancelled as stop:
            raise Cancelled(partial=artifacts) from stop  # the finished images of the batch are kept
        info.update(fallbacks=list(bundle.fallbacks), notes=notes, batch_index=index)
        artifacts.append(
            Artifact("image", _output_recipe(bundle, recipe, settings, seed, variation_seed), image, info=info)
        )
    return artifacts


def generate(recipe: Recipe, report: Report = None, cancelled: IsCancelled = None, *, bundle=None, device=None):
    """Headless use (CLI, benchmarks): load `recipe.model` (default: the built-in) unless a bundle is given."""
    if bundle is None:
        from studio.core.devices import pick_device

        source = catalog.resolve(recipe.model or DEFAULT_MODEL)
        bundle = load_image_pipeline(source, device or pick_device(), report, config=recipe.param("config") or None)
    return generate_artifacts(bundle, recipe, report, cancelled)


def generate_images(bundle: ImageBundle, recipe: Recipe, report: Report = None, cancelled: IsCancelled = None) -> list:
    """The PIL images alone (see generate_artifacts for their recipes)."""
    return [a.payload for a in generate_artifacts(bundle, recipe, report, cancelled)]


# --- grids ---------------------------------------------------------------------------------


def image_grid(images: Sequence, cols: int, gap: int = 0, background=(0, 0, 0)):
    """Images (same size) in rows of `cols`."""
    from PIL import Image

    if not images:
        raise ValueError("no images for the grid")
    cols = max(1, min(cols, len(images)))
    rows = math.ceil(len(images) / cols)
    w, h = images[0].size
    grid = Image.new("RGB", (cols * w + (cols - 1) * gap, rows * h + (rows - 1) * gap), background)
    for i, image in enumerate(images):
        grid.paste(image.convert("RGB"), ((i % cols) * (w + gap), (i // cols) * (h + gap)))
    return grid


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType
        return ImageFont.load_default()


def _fit_text(draw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


MIN_PLOT_CELL = 128


def labelled_grid(images: Sequence, cols: int, x_labels: Sequence[str], y_labels: Sequence[str]):
    """A grid with column labels on top and row labels on the left, like A1111's X/Y plot."""
    from PIL import Image, ImageDraw

    # One cell size for all: the largest picture's. When width or height is an axis the pictures differ in size;
    # each keeps its own shape and scale, centred in its cell (squeezing them to the first one's size lied).
    smallest = min(min(im.size) for im in images)
    factor = math.ceil(MIN_PLOT_CELL / smallest) if smallest < MIN_PLOT_CELL else 1  # small models: enlarge, crisp
    w, h = max(im.width for im in images) * factor, max(im.height for im in images) * factor
    cells = []
    for im in images:
        cell = Image.new("RGB", (w, h), (255, 255, 255))
        big = im.convert("RGB").resize((im.width * factor, im.height * factor), Image.Resampling.NEAREST)
        cell.paste(big, ((w - big.width) // 2, (h - big.height) // 2))
        cells.append(cell)
    body = image_grid(cells, cols, gap=2, background=(255, 255, 255))
    font_size = max(10, min(32, h // 8))
    top = int(font_size * 2)
    probe = ImageDraw.Draw(body)
    left = int(
        min(
            max((probe.textlength(str(t), font=_font(font_size)) for t in y_labels), default=0) + font_size,
            max(w, 16 * font_size),
        )
    )
    sheet = Image.new("RGB", (left + body.width, top + body.height), (255, 255, 255))
    sheet.paste(body, (left, top))
    draw = ImageDraw.Draw(sheet)
    font = _font(font_size)
    for i, label in enumerate(x_labels):
        text = _fit_text(draw, str(label), font, w - 4)
        x = left + i * (w + 2) + (w - draw.textlength(text, font=font)) / 2
        draw.text((x, font_size // 2), text, fill=(0, 0, 0), font=font)
    for j, label in enumerate(y_labels):
        text = _fit_text(draw, str(label), font, left - 4)
        draw.text((4, top + j * (h + 2) + (h - font_size) / 2), text, fill=(0, 0, 0), font=font)
    return sheet


RECIPE_AXES = ("seed", "prompt", "negative_prompt")  # axes that are Recipe fields, not params
PARAM_AXES = (
    "steps",
    "guidance",
    "scheduler",
    "width",
    "height",
    "strength",
    "variation_seed",
    "variation_strength",
    "clip_skip",
)
XY_AXES = RECIPE_AXES + PARAM_AXES  # what the X/Y plot can vary (the UI lists these)


def _with_axis(recipe: Recipe, name: str, value) -> Recipe:
    from dataclasses import replace

    if name in RECIPE_AXES:
        return replace(recipe, **{name: int(value) if name == "seed" else str(value)})
    return recipe.with_params(**{name: value})


def _axis_label(name: str, value) -> str:
    return f"{name}: {value}"


def xy_plot(
    bundle: ImageBundle,
    base_recipe: Recipe,
    x_param: str,
    x_values: Sequence,
    y_param: str,
    y_values: Sequence,
    report: Report = None,
    cancelled: IsCancelled = None,
):
    """One image per (x, y) pair, laid out as a labelled grid (x across, y down). Returns a PIL image."""
    if not x_values or not y_values:
        raise UserError("an X/Y plot needs at least one value on each axis")
    for axis in (x_param, y_param):
        if axis not in XY_AXES:
            raise UserError(f"an X/Y plot cannot vary {axis!r}; choose from {', '.join(XY_AXES)}")
    cells = len(x_values) * len(y_values)
    base = base_recipe.with_params(batch_count=1)
    if base.seed is None or int(base.seed) < 0:
        from dataclasses import replace

        base = replace(base, seed=random_seed())  # one seed for every cell, so only the axes differ
    images = []
    for j, y_value in enumerate(y_values):
        for i, x_value in enumerate(x_values):
            cell = j * len(x_values) + i

            def cell_report(progress: Progress, cell=cell) -> None:
                if report is not None:
                    report(
                        Progress(
                            cell * progress.total + progress.step,
                            cells * progress.total,
                            progress.preview,
                            f"cell {cell + 1} of {cells}",
                        )
                    )

            recipe = _with_axis(_with_axis(base, x_param, x_value), y_param, y_value)
            images.append(generate_artifacts(bundle, recipe, cell_report, cancelled)[0].payload)
    return labelled_grid(
        images, len(x_values), [_axis_label(x_param, v) for v in x_values], [_axis_label(y_param, v) for v in y_values]
    )


# --- worker tasks --------------------------------------------------------------------------


def model_key(recipe: Recipe, device) -> tuple:
    """What identifies a loaded image model in the worker's cache."""
    return (recipe.model or DEFAULT_MODEL, device.device, device.dtype, str(recipe.param("config") or ""))


def load_for_recipe(recipe: Recipe, ctx: TaskContext) -> ImageBundle:
    ref = recipe.model or DEFAULT_MODEL

    def loader() -> ImageBundle:
        return load_image_pipeline(catalog.resolve(ref), ctx.device, ctx.report, config=recipe.param("config") or None)

    return ctx.models.get("image", model_key(recipe, ctx.device), loader)


def generate_task(job: Job, ctx: TaskContext) -> Result:
    """Worker entry for "image.generate": job.recipe -> one Artifact per image."""
    if job.recipe is None:
        raise UserError("image generation needs a recipe")
    bundle = load_for_recipe(job.recipe, ctx)
    artifacts = generate_artifacts(bundle, job.recipe, ctx.report, ctx.cancelled)
    return Result(artifacts=artifacts, info={"fallbacks": list(bundle.fallbacks)})


def xy_plot_task(job: Job, ctx: TaskContext) -> Result:
    """Worker entry for an X/Y plot: job.args = {x_param, x_values, y_param, y_values}."""
    if job.recipe is None:
        raise UserError("an X/Y plot needs a base recipe")
    args = job.args
    bundle = load_for_recipe(job.recipe, ctx)
    grid = xy_plot(
        bundle,
        job.recipe,
        args["x_param"],
        list(args["x_values"]),
        args["y_param"],
        list(args["y_values"]),
        ctx.report,
        ctx.cancelled,
    )
    from dataclasses import replace

    recipe = replace(
        job.recipe.with_params(xy_plot={k: args[k] for k in ("x_param", "x_values", "y_param", "y_values")}),
        model=job.recipe.model or bundle.source.ref,
        model_hash=bundle.model_hash,
        device=bundle.device,
        dtype=bundle.dtype,
    )
    return Result(artifacts=[Artifact("image", recipe, grid, info={"fallbacks": list(bundle.fallbacks)})])
