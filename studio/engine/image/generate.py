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

import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from studio.core import adapters as trained_adapters
from studio.core import catalog
from studio.core.gan_model import load_gan
from studio.core.interpolate import slerp
from studio.core.jobs import Artifact, Cancelled, Job, Progress, Result, TaskContext, UserError
from studio.core.recipe import MAX_SEED, SEED_LIMIT, Recipe
from studio.engine.image import families, gan, translate
from studio.engine.image.guidance import ConditionAnnealing, GuidanceInterval
from studio.engine.image.pipelines import ImageBundle, adapt_memory_to_size, load_image_pipeline
from studio.engine.image.preview import StepWatcher, decode_latents
from studio.engine.image.prompt_plan import PromptPlan, prepare, text_kwargs
from studio.engine.image.schedulers import FLOW_ALIASES, available_schedulers, model_default_scheduler, set_scheduler
from studio.engine.image.settings import DEFAULT_MODEL, INPAINT_STRENGTH, ImageSettings

MODES = ("txt2img", "img2img", "inpaint", "translate")
DEFAULTS = ImageSettings()  # what a recipe leaves out (an A1111 file without "Steps", a hand-written recipe)
DEFAULT_STRENGTH = {"img2img": DEFAULTS.strength, "inpaint": INPAINT_STRENGTH}

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
    if scheduler not in schedulers and FLOW_ALIASES.get(scheduler) in schedulers:
        scheduler = FLOW_ALIASES[scheduler]
    if scheduler not in schedulers:
        raise UserError(f"the scheduler {scheduler!r} does not fit this model; choose one of {', '.join(schedulers)}")
    steps = int(p.get("steps", DEFAULTS.steps))
    if steps < 1:
        raise UserError("steps must be at least 1")
    settings: dict[str, Any] = {
        "mode": mode,
        "steps": steps,
        "guidance": float(p.get("guidance", DEFAULTS.guidance)),
        "guidance_start": min(1.0, max(0.0, float(p.get("guidance_start") or DEFAULTS.guidance_start))),
        "variety": min(1.0, max(0.0, float(p.get("variety") or DEFAULTS.variety))),
        "width": width,
        "height": height,
        "scheduler": scheduler,
        "batch_count": max(1, int(p.get("batch_count", DEFAULTS.batch_count))),
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


def initial_noise(seed: int, shape, variation_seed: int | None = None, variation_strength: float = 0.0):
    noise = seed_noise(seed, shape)
    if variation_strength > 0 and variation_seed is not None:
        noise = slerp(noise, seed_noise(variation_seed, shape), variation_strength, blend_lengths=False)
    return noise


# --- previews ------------------------------------------------------------------------------


# --- decoding ------------------------------------------------------------------------------


# --- one image -----------------------------------------------------------------------------


def _call_parameters(pipe) -> set[str]:
    import inspect

    return set(inspect.signature(pipe.__call__).parameters)


def _our_noise_fits(bundle, mode: str, strength: float) -> bool:
    """Where the pipeline starts from the latents we pass: text-to-image; SD/SDXL inpainting at full strength."""
    if mode == "txt2img":
        return True
    return strength >= 1.0 and families.architecture(bundle.family) in ("sd", "sdxl") and (
        mode == "inpaint" or bundle.inpaint_only)


def pipeline_kwargs(bundle, recipe: Recipe, settings: dict, seed: int, variation_seed: int | None,
                    plan: PromptPlan | None = None, notes: list[str] | None = None) -> dict:
    import torch
    from PIL import Image

    mode = settings["mode"]
    pipe = bundle.pipeline_for(mode)
    size = (settings["width"], settings["height"])
    plan = plan or PromptPlan(recipe.prompt, recipe.negative_prompt)
    notes = [] if notes is None else notes
    kwargs: dict[str, Any] = {
        **text_kwargs(bundle, pipe, plan, settings.get("clip_skip", 1), notes),
        "num_inference_steps": settings["steps"],
        "guidance_scale": settings["guidance"],
        "width": size[0],
        "height": size[1],
        # ancestral samplers draw fresh noise every step: from a CPU generator too, so devices agree
        "generator": torch.Generator("cpu").manual_seed(seed),
        "output_type": "latent",
    }
    factor = families.vae_factor(pipe)
    latent_shape = (1, families.latent_channels(pipe), size[1] // factor, size[0] // factor)
    noise = initial_noise(seed, latent_shape, variation_seed, settings["variation_strength"])
    noise = families.pack(pipe, noise.to(families.denoiser(pipe).dtype))  # FLUX takes its latents packed
    strength = settings.get("strength", 1.0)
    if bundle.inpaint_only and mode == "txt2img":
        # an inpainting model draws from nothing by repainting a blank canvas
        kwargs.update(image=Image.new("RGB", size, (127, 127, 127)), mask_image=Image.new("L", size, 255), strength=1.0)
    elif mode != "txt2img":
        kwargs["image"] = _load_picture(settings["init_image"], "RGB", size)
        kwargs["strength"] = strength
        mask = settings.get("mask_image") if mode == "inpaint" else None
        if mode == "img2img" and bundle.inpaint_only:
            mask = Image.new("L", size, 255)
        if mask is not None:
            kwargs["mask_image"] = _load_picture(mask, "L", size)
    if _our_noise_fits(bundle, mode, strength):
        kwargs["latents"] = noise
    accepted = _call_parameters(pipe)  # e.g. SD's img2img takes no size, FLUX no negative prompt without true CFG
    return {k: v for k, v in kwargs.items() if k in accepted}


def _uses_our_noise(bundle, settings) -> bool:
    return _our_noise_fits(bundle, settings["mode"], settings.get("strength", 1.0))


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
    plan: PromptPlan | None = None,
    notes: list[str] | None = None,
):
    """One image: returns (PIL image, info dict). Raises Cancelled."""
    from PIL import Image

    adapt_memory_to_size(bundle, settings["width"], settings["height"])
    pipe = bundle.pipeline_for(settings["mode"])
    set_scheduler(pipe, settings["scheduler"], bundle.base_scheduler_config)
    kwargs = pipeline_kwargs(bundle, recipe, settings, seed, variation_seed, plan, notes)
    size = (settings["width"], settings["height"])
    watcher = StepWatcher(bundle, report, cancelled, index, count, size)
    hook = GuidanceInterval(settings["guidance"], settings.get("guidance_start", 0.0), watcher)
    if hook.active() and "guidance_scale" in kwargs and hasattr(type(pipe), "do_classifier_free_guidance"):
        kwargs["guidance_scale"] = hook.initial_scale()
    else:  # guided throughout (FLUX's guidance is an input of the model, not two branches: never delayed)
        hook = watcher
    hook = with_variety(bundle, pipe, kwargs, settings, seed, hook, notes)
    tensors = hook.tensor_inputs if isinstance(hook, ConditionAnnealing) else ["latents"]
    kwargs.update(callback_on_step_end=hook, callback_on_step_end_tensor_inputs=tensors)
    latents = pipe(**kwargs).images
    if watcher.interrupted or (cancelled is not None and cancelled()):
        raise Cancelled()
    denoise_seconds = watcher.last_step_at - watcher.started
    began = time.perf_counter()
    image = decode_latents(bundle, pipe, families.unpack(pipe, latents, *size))[0]
    if settings["mode"] == "inpaint":
        # Like A1111: pixels outside the mask stay exactly as they were (the VAE round trip would blur them).
        image = Image.composite(image, kwargs["image"], kwargs["mask_image"].resize(image.size))
    info = {
        "it_per_s": watcher.steps_seen / denoise_seconds if denoise_seconds > 0 else None,
        "steps_run": watcher.steps_seen,
        "denoise_seconds": denoise_seconds,
        "decode_seconds": time.perf_counter() - began,
        "preview_seconds": watcher.preview_seconds,
    }
    return image, info


def varies(bundle, pipe) -> bool:
    """Whether Variety (condition-annealed sampling) fits: an SD 1.x/2.x- or SDXL-style pipeline that takes
    embeddings (SDXL: its pooled ones too), not sampled by LCM (a few-step model's first of 2 steps decides the
    picture, and would see noise alone)."""
    arch, takes = families.architecture(bundle.family), _call_parameters(pipe)
    needs = {"sd": {"negative_prompt_embeds"}, "sdxl": {"negative_prompt_embeds", "negative_pooled_prompt_embeds"}}
    return arch in needs and needs[arch] <= set(takes) and type(pipe.scheduler).__name__ != "LCMScheduler"


def with_variety(bundle, pipe, kwargs: dict, settings: dict, seed: int, hook, notes: list[str] | None):
    """The hook that anneals the prompt's embedding (guidance.ConditionAnnealing) around `hook`, when Variety is on;
    the prompt is then passed as embeddings, the first step's already noised."""
    strength = float(settings.get("variety") or 0.0)
    if strength <= 0:
        return hook
    if not varies(bundle, pipe):
        if notes is not None:
            notes.append("Variety works on SD 1.x/2.x and SDXL-style models sampled in many steps (the built-in "
                         "emoji-ldm too), not with LCM; this picture was drawn without it.")
        return hook
    if "prompt_embeds" not in kwargs:
        encoded = pipe.encode_prompt(prompt=kwargs.pop("prompt"), device=pipe._execution_device,
                                     num_images_per_prompt=1, do_classifier_free_guidance=True,
                                     negative_prompt=kwargs.pop("negative_prompt", None),
                                     clip_skip=kwargs.pop("clip_skip", None))
        kwargs.update(zip(("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds",
                           "negative_pooled_prompt_embeds"), encoded, strict=False))  # SDXL's 4, SD's 2
    annealing = ConditionAnnealing(strength, [seed], settings["steps"], hook)
    kwargs["prompt_embeds"] = annealing.first_embeds(kwargs["prompt_embeds"], kwargs["negative_prompt_embeds"])
    if kwargs.get("pooled_prompt_embeds") is not None:
        kwargs["pooled_prompt_embeds"] = annealing.first_pooled(kwargs["pooled_prompt_embeds"],
                                                                kwargs["negative_pooled_prompt_embeds"])
    return annealing


def _output_recipe(bundle: ImageBundle, recipe: Recipe, settings: dict, seed: int, variation_seed,
                   plan: PromptPlan | None = None) -> Recipe:
    params = dict(recipe.params)
    params.update({k: v for k, v in settings.items() if v is not None})
    for key in ("loras", "embeddings", "lora_hashes", "ti_hashes"):  # replaced by what this run used
        params.pop(key, None)
    if plan is not None:
        params.update(plan.recipe_params())
    params["batch_count"] = 1  # this recipe makes exactly this image
    params.pop("truncation", None)  # a GAN's knob (engine/image/gan.py): means nothing to a diffusion model
    unused = {"txt2img": ("strength", "init_image", "mask_image"), "img2img": ("mask_image",), "inpaint": ()}
    for key in unused[settings["mode"]]:
        params.pop(key, None)  # e.g. a CLI's default strength would read as "Denoising strength" in A1111
    if not settings.get("variety") or not varies(bundle, bundle.pipeline_for(settings["mode"])):
        params.pop("variety", None)  # Variety took no effect (off, or a model it does not fit): say nothing
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
    bundle: ImageBundle, recipe: Recipe, report: Report = None, cancelled: IsCancelled = None,
    output: Callable[[Artifact], None] | None = None,
) -> list[Artifact]:
    """All images of a recipe, one Artifact each with the complete recipe that remakes it. `output` receives each
    image the moment it is finished (the engine saves it then: a kill later in the batch loses nothing)."""
    settings = resolve_settings(bundle, recipe)
    used = trained_adapters.resolve(recipe.param("adapters") or [], "image")  # the Train tab's LoRAs, checked, hashed
    recipe = recipe.with_params(adapters=used) if used else recipe
    base_seed = recipe.seed if recipe.seed is not None and int(recipe.seed) >= 0 else random_seed()
    variation_base = settings["variation_seed"]
    if settings["variation_strength"] > 0 and (variation_base is None or int(variation_base) < 0):
        variation_base = random_seed()
    plan = prepare(bundle, recipe, used)  # LoRAs and adapters fused (kept when unchanged), embeddings loaded
    notes = list(plan.notes)
    if settings["variation_strength"] > 0 and not _uses_our_noise(bundle, settings):
        notes.append("Variation seeds apply to text-to-image and full-strength inpainting; ignored here.")
    artifacts = []
    count = settings["batch_count"]
    for index in range(count):
        if cancelled is not None and cancelled():
            raise Cancelled(partial=artifacts)
        # Seeds up to 2**64 - 1 (A1111, ComfyUI) are kept whole; torch's CPU generator takes them all (its
        # Mersenne Twister draws from the low 32 bits, as A1111's CPU noise does).
        seed = (int(base_seed) + index) % (SEED_LIMIT + 1)
        variation_seed = None if variation_base is None else (int(variation_base) + index) % (SEED_LIMIT + 1)
        try:
            image, info = generate_one(bundle, recipe, settings, seed, variation_seed, index, count, report, cancelled,
                                       plan, notes)
        except Cancelled as stop:
            raise Cancelled(partial=artifacts) from stop  # the finished images of the batch are kept
        info.update(fallbacks=list(bundle.fallbacks), notes=list(dict.fromkeys(notes)), batch_index=index)
        artifacts.append(
            Artifact("image", _output_recipe(bundle, recipe, settings, seed, variation_seed, plan), image, info=info)
        )
        if output is not None:
            output(artifacts[-1])
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


# --- worker tasks --------------------------------------------------------------------------


def model_key(recipe: Recipe, device) -> tuple:
    """What identifies a loaded image model in the worker's cache."""
    return (recipe.model or DEFAULT_MODEL, device.device, device.dtype, str(recipe.param("config") or ""))


def load_for_recipe(recipe: Recipe, ctx: TaskContext) -> ImageBundle:
    ref = recipe.model or DEFAULT_MODEL

    def loader() -> ImageBundle:
        return load_image_pipeline(catalog.resolve(ref), ctx.device, ctx.report, config=recipe.param("config") or None)

    return ctx.models.get("image", model_key(recipe, ctx.device), loader)


# Model kinds (media.py model_types) that draw in one forward pass: (load, make the artifacts).
ONE_PASS = {
    "gan": (load_gan, gan.generate_gan_artifacts),
    "sketch": (translate.load_sketch_model, translate.translate_artifacts),
}


def translator_of(recipe: Recipe) -> str:
    """Translate mode runs the sketch model (the `translator` value), whatever diffusion model the panel has."""
    if recipe.param("mode") != "translate":
        return ""
    return str(recipe.param("translator") or ImageSettings.translator)


def generate_task(job: Job, ctx: TaskContext) -> Result:
    """Worker entry for "image.generate": job.recipe -> one Artifact per image."""
    if job.recipe is None:
        raise UserError("image generation needs a recipe")
    source = catalog.resolve(translator_of(job.recipe) or job.recipe.model or DEFAULT_MODEL)
    if source.kind in ONE_PASS:  # a GAN or the sketch translator: one forward pass per picture, no steps
        load, make = ONE_PASS[source.kind]
        key = (source.kind, source.ref, ctx.device.device)
        bundle = ctx.models.get("image", key, lambda: load(source, ctx.device))
        return Result(artifacts=make(bundle, job.recipe, ctx.report, ctx.cancelled, ctx.output))
    bundle = load_for_recipe(job.recipe, ctx)
    artifacts = generate_artifacts(bundle, job.recipe, ctx.report, ctx.cancelled, ctx.output)
    return Result(artifacts=artifacts, info={"fallbacks": list(bundle.fallbacks)})


