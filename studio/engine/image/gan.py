"""GAN image models in the Image panel (the built-in emoji-gan): one forward pass per picture, no denoising steps.

The model itself (loading, prompt embedding, truncation, rendering) is studio/core/gan_model.py, which the Latent
Explorer uses too; here is the Image panel's job: a batch of pictures with their recipes.
"""

from __future__ import annotations

import time

from studio.core.gan_model import GanBundle, picture
from studio.core.jobs import Artifact, Cancelled, IsCancelled, Progress, Report, UserError
from studio.core.recipe import Recipe


def generate_gan_artifacts(bundle: GanBundle, recipe: Recipe, report: Report = None, cancelled: IsCancelled = None,
                           output=None) -> list[Artifact]:
    """A batch from a GAN: picture i with seed + i, each handed to `output` (saved) as soon as it exists."""
    if recipe.param("init_image") or recipe.param("mask_image"):
        raise UserError("a GAN draws from noise only: image-to-image and inpainting need a diffusion model")
    count = max(1, int(recipe.param("batch_count", 1) or 1))
    truncation = float(recipe.param("truncation", 1.0))
    artifacts = []
    for index in range(count):
        if cancelled is not None and cancelled():
            raise Cancelled(partial=artifacts)
        seed = int(recipe.seed) + index
        began = time.perf_counter()
        image = picture(bundle, recipe.prompt, seed, truncation)
        params = {k: v for k, v in recipe.params.items() if k in GAN_PARAMS}
        params.update(batch_count=1, truncation=truncation, width=image.width, height=image.height)
        made = Recipe(modality="image", prompt=recipe.prompt, negative_prompt="", model=recipe.model or bundle.source.ref,
                      model_hash=bundle.model_hash, seed=seed, params=params, device=bundle.device, dtype="float32",
                      parents=recipe.parents)
        artifact = Artifact("image", made, image, info={"seconds": time.perf_counter() - began})
        artifacts.append(artifact)
        if output is not None:
            output(artifact)
        if report is not None:
            report(Progress(index + 1, count, preview=image))
    return artifacts


# What a GAN picture's recipe keeps: steps, guidance and schedulers mean nothing to a GAN.
GAN_PARAMS = ("truncation", "batch_count", "backend", "mode")
