"""The Latent Explorer's values, each with its default: the one home of them (state and the latent tasks read it).

Light on purpose, the only latent module a panel may import: the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

# The Explorer's image model: the built-in emoji model, whose VAE latents (16 x 16 x 4) are small enough to map
# thousands of pictures. The same id as the Image panel's default (engine/image/settings.py), chosen here on its
# own: media never import each other; tests/test_media.py holds the two equal.
DEFAULT_MODEL = "builtin:emoji-ldm"
# The Melodies tab's model: the built-in MusicVAE-style two-bar melody VAE (models/melody-vae).
MELODY_MODEL = "builtin:melody-vae"


@dataclass(frozen=True)
class LatentSettings:
    tab: str = "images"  # images | melodies: the sub-tab on show (a restored melody strip switches it)
    model: str = DEFAULT_MODEL
    # The map's pictures: the built-in model's training images work before the user has made any.
    source: str = "dataset"  # dataset | gallery | folder
    folder: str = ""  # for source "folder"
    # Strips and walks.
    frames: int = 8  # frames from A to B, or per leg of a walk: a strip that fits on one row
    mode: str = "slerp"  # slerp keeps Gaussian samples on their shell; lerp cuts across (washed-out middles)
    fps: int = 12  # playback and exported GIF/MP4 speed: smooth without rushing 8 frames
    # The neighbourhood grid.
    grid_size: int = 5  # 5 x 5 pictures around the point on show
    grid_radius: float = 2.0  # how far the grid reaches, in standard deviations: the edge still decodes well
    directions: str = "pca"  # pca | random: the map's two principal directions explain the most variance
    # Breeding and augmentation.
    children: int = 4
    mutation: float = 0.3  # noise added to each child (on the arc between its parents), times the parents' distance
    attribute: str = "face"  # a word in the map's labels: the mean latent of its images minus the rest's
    attribute_amount: float = 0.0  # 0 = off; the slider moves the point on show along the attribute direction
    augment_count: int = 8
    augment_amount: float = 0.15  # the nudge, times the latent's own RMS: variations, not new pictures
    # GAN models (the built-in emoji-gan): what only a GAN has.
    truncation: float = 0.7  # StyleGAN's ψ: 1 = as sampled, lower = closer to the prompt's typical picture
    gan_prompt_a: str = "red heart"  # Z/W strips and style mixing go from A (prompt, seed) to B
    gan_seed_a: int = 1
    gan_prompt_b: str = "grinning face"
    gan_seed_b: int = 2
    # Style mixing: style inputs before this come from A (coarse: shape, layout), the rest from B (fine: colour).
    # 4 of the GAN's 8 puts the 4x4 and 8x8 layers on A's side.
    crossover: int = 4
    mix_count: int = 3  # a 3 x 3 grid of mixes (plus A's and B's own pictures on its edges)
    # GANSpace: how far the picture on show is pushed along each principal direction of W, in standard deviations.
    directions_amounts: tuple[float, ...] = (0.0,) * 8
    # Seed and prompt travel (the Image panel's recipe, to a second seed or prompt).
    seed_b: int = 1
    prompt_b: str = ""
    # The Melodies tab (melody VAE).
    melody_model: str = MELODY_MODEL
    melody_a: str = "seed"  # "seed" or a MIDI file's path
    melody_b: str = "seed"
    melody_seed_a: int = 1
    melody_seed_b: int = 2
    melody_steps: int = 6  # melodies from A to B, both included
    melody_mode: str = "slerp"
    melody_tempo: int = 110  # bpm: a walking pace that lets each two-bar melody be heard
