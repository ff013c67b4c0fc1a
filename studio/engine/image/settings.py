"""The Image panel's values, each with its default: the one home of them (state, engine fallbacks and CLI flags read it).

Light on purpose, the only image module a panel may import: the standard library and one constant from core.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.core.recipe import RANDOM_SEED

# The built-in emoji latent diffusion model (models/emoji-ldm): offline, small enough for any CPU.
DEFAULT_MODEL = "builtin:emoji-ldm"
# An inpaint recipe without a strength repaints the masked area from pure noise (img2img's default is the field below).
INPAINT_STRENGTH = 1.0


@dataclass(frozen=True)
class ImageSettings:
    # The recipe's own fields (Recipe.prompt, .negative_prompt, .model, .seed), kept apart from its params.
    prompt: str = ""
    negative_prompt: str = ""  # what guidance steers away from (the unconditional branch's text)
    model: str = DEFAULT_MODEL
    # Where the job runs: "" = this computer's engine, else a server's name from Settings › Servers (the model picker
    # sets it with the model). Recorded in the recipe, so a remote output says where it was made.
    backend: str = ""
    seed: int = RANDOM_SEED  # -1: a new random seed each run; the seed drawn is recorded in the recipe
    # txt2img | img2img | inpaint; the engine also infers it from init_image / mask_image when absent.
    mode: str = "txt2img"
    # Denoising steps: DPM++ 2M is converged by about 20 (A1111's default too; the built-in's card uses 20).
    steps: int = 20
    # Classifier-free guidance: how hard the prompt pulls. The built-in's card recommends 3-5; SD 1.5 checkpoints
    # are usually run at 7, and a recipe always records its own value.
    guidance: float = 5.0
    # The built-in model's native size (64 x 64 emoji); snapped to the model's multiple when generating.
    width: int = 64
    height: int = 64
    scheduler: str = "dpmpp_2m"  # DPM++ 2M: sharp in 20 steps on every SD-family model
    batch_count: int = 1  # pictures one after the other, picture i with seed + i (A1111's "batch count")
    # img2img: how much of the starting picture is repainted; 0.75 keeps its layout and redraws its detail (A1111).
    strength: float = 0.75
    variation_seed: int = 0  # A1111's "variation seed": the noise the start is slerped towards
    variation_strength: float = 0.0  # 0 = off, 1 = the variation seed's noise alone
    clip_skip: int = 1  # A1111's "Clip skip": 1 = the text encoder's last layer
    # GAN models only (the built-in emoji-gan): StyleGAN's truncation ψ. 1 = as sampled (most variety); lower pulls
    # each picture towards the prompt's typical one (cleaner, less varied); 0.7 is StyleGAN's usual showcase value.
    truncation: float = 0.7
    init_image: str = ""  # img2img / inpaint: the starting picture's path
    mask_image: str = ""  # inpaint: the mask's path (white = repaint)
    # LoRA adapters trained in the Train tab: [{"path", "weight"}]; the output's recipe records each with its hash.
    adapters: tuple[dict, ...] = ()
