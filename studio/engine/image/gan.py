"""GAN image models in the Image panel (the built-in emoji-gan): one forward pass per picture, no denoising steps.

The model itself (loading, prompt embedding, truncation, rendering) is studio/core/gan_model.py, which the Latent
Explorer uses too; here is the Image panel's job: a batch of pictures with their recipes.
"""

from __future__ import annotations

from studio.core.gan_model import GanBundle, picture
from studio.core.jobs import Artifact, IsCancelled, Report, UserError
from studio.core.recipe import Recipe
from studio.engine.image.one_pass import one_pass_batch


def generate_gan_artifacts(bundle: GanBundle, recipe: Recipe, report: Report = None, cancelled: IsCancelled = None,
                           output=None) -> list[Artifact]:
    """A batch from a GAN: picture i with seed + i, each handed to `output` (saved) as soon as it exists."""
    if recipe.param("init_image") or recipe.param("mask_image"):
        raise UserError("a GAN draws from noise only: image-to-image and inpainting need a diffusion model")
    truncation = float(recipe.param("truncation", 1.0))

    def made(seed: int, image) -> Recipe:
        params = {k: v for k, v in recipe.params.items() if k in GAN_PARAMS}
        params.update(batch_count=1, truncation=truncation, width=image.width, height=image.height)
        return Recipe(modality="image", prompt=recipe.prompt, negative_prompt="", model=recipe.model or bundle.source.ref,
                      model_hash=bundle.model_hash, seed=seed, params=params, device=bundle.device, dtype="float32",
                      parents=recipe.parents)

    return one_pass_batch(recipe, lambda seed: picture(bundle, recipe.prompt, seed, truncation), made, report,
                          cancelled, output)


# What a GAN picture's recipe keeps: steps, guidance and schedulers mean nothing to a GAN.
GAN_PARAMS = ("truncation", "batch_count", "backend", "mode")
