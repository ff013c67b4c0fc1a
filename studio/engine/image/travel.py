"""Travel through a diffusion model's own spaces: between two seeds' noise, or two prompts' embeddings.

Works with any diffusers text-to-image model (the user's Stable Diffusion included).
Seed travel is A1111's variation seed swept from 0 to 1: frame t starts from
slerp(noise(seed A), noise(seed B), t), so every frame is an ordinary, reproducible recipe.
Prompt travel keeps the noise and interpolates the text encoder's output between two prompts.
"""

from __future__ import annotations

from dataclasses import replace

from studio.core.jobs import Artifact, Cancelled, Job, Progress, Result, TaskContext, UserError
from studio.engine.image import generate as image
from studio.engine.image.preview import StepWatcher, decode_latents


def _frame_report(ctx: TaskContext, frame: int, frames: int):
    def report(progress: Progress) -> None:
        ctx.report(Progress(frame * progress.total + progress.step, frames * progress.total, progress.preview,
                            f"frame {frame + 1} of {frames}"))

    return report


def seed_travel_task(job: Job, ctx: TaskContext) -> Result:
    recipe = job.recipe
    frames, seed_b = int(job.args.get("frames", 8)), int(job.args["seed_b"])
    if frames < 2:
        raise UserError("seed travel needs at least 2 frames")
    bundle = image.load_for_recipe(recipe, ctx)
    images = []
    for frame in range(frames):
        t = frame / (frames - 1)
        step = recipe.with_params(mode="txt2img", batch_count=1, variation_seed=seed_b, variation_strength=t)
        images.append(image.generate_artifacts(bundle, step, _frame_report(ctx, frame, frames), ctx.cancelled)[0].payload)
    travelled = replace(recipe.with_params(travel="seed", seed_b=seed_b, frames=frames), modality="animation",
                        model_hash=bundle.model_hash, device=bundle.device, dtype=bundle.dtype)
    return Result([Artifact("animation", travelled, images, info={"fps": job.args.get("fps", 8)})])


def _encode(pipe, prompt: str, negative: str, device, guided: bool):
    """The pipeline's own prompt encoding: (embeds, negative embeds[, pooled, negative pooled])."""
    encoded = pipe.encode_prompt(prompt=prompt, device=device, num_images_per_prompt=1,
                                 do_classifier_free_guidance=guided, negative_prompt=negative or None)
    if len(encoded) == 2:  # SD 1.x / 2.x
        return {"prompt_embeds": encoded[0], "negative_prompt_embeds": encoded[1]}
    return {"prompt_embeds": encoded[0], "negative_prompt_embeds": encoded[1],  # SDXL: + pooled
            "pooled_prompt_embeds": encoded[2], "negative_pooled_prompt_embeds": encoded[3]}


def prompt_travel_task(job: Job, ctx: TaskContext) -> Result:
    import torch

    from studio.engine.image.schedulers import set_scheduler

    recipe = job.recipe
    prompt_b, frames = str(job.args["prompt_b"]), int(job.args.get("frames", 8))
    bundle = image.load_for_recipe(recipe, ctx)
    settings = image.resolve_settings(bundle, recipe.with_params(mode="txt2img", batch_count=1))
    pipe = bundle.pipeline_for("txt2img")
    set_scheduler(pipe, settings["scheduler"], bundle.base_scheduler_config)
    guided = settings["guidance"] > 1
    with torch.inference_mode():
        start = _encode(pipe, recipe.prompt, recipe.negative_prompt, pipe.device, guided)
        end = _encode(pipe, prompt_b, recipe.negative_prompt, pipe.device, guided)
    images = []
    for frame in range(frames):
        t = frame / (frames - 1) if frames > 1 else 0.0
        kwargs = image.pipeline_kwargs(bundle, recipe, settings, recipe.seed, None)  # same noise every frame
        for name in ("prompt", "negative_prompt"):
            kwargs.pop(name, None)
        kwargs.update({k: torch.lerp(start[k], end[k], t) if start[k] is not None else None for k in start})
        watcher = StepWatcher(bundle, _frame_report(ctx, frame, frames), ctx.cancelled, 0, 1)
        kwargs.update(callback_on_step_end=watcher, callback_on_step_end_tensor_inputs=["latents"])
        latents = pipe(**kwargs).images
        if watcher.interrupted or ctx.cancelled():
            raise Cancelled()
        images.append(decode_latents(bundle, pipe, latents)[0])
    travelled = replace(recipe.with_params(travel="prompt", prompt_b=prompt_b, frames=frames), modality="animation",
                        model_hash=bundle.model_hash, device=bundle.device, dtype=bundle.dtype)
    return Result([Artifact("animation", travelled, images, info={"fps": job.args.get("fps", 8)})])
