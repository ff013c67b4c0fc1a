"""A GAN model folder loaded for use (the built-in emoji-gan): the image engine draws pictures with it, the Latent
Explorer walks its W space. Shared by both media, hence in core.

A GAN folder holds config.json (studio.core.gan.GanConfig, model_type "studio-gan"), generator.safetensors (the EMA
generator), w_stats.safetensors (the centre of W and its principal directions, for the Explorer), and the parts it
was trained with: vae/ (whose decoder turns the generator's latents into pixels), text_encoder/ and tokenizer/.
The recipe's seed draws z and the per-layer noise; `truncation` pulls w towards the prompt's own centre.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core import catalog

CENTRE_SAMPLES = 256  # z's averaged for a prompt's centre of W: the truncation target, steady to ~1 %


@dataclass
class GanBundle:
    generator: Any  # studio.core.gan.Generator
    vae: Any  # diffusers AutoencoderKL (its decoder)
    text_encoder: Any
    tokenizer: Any
    config: Any  # GanConfig
    source: Any  # ModelSource
    model_hash: str
    device: str = "cpu"
    w_stats: dict = field(default_factory=dict)  # "centre" (w_dim,), "directions" (k, w_dim), "spread" (k,)
    _centres: dict = field(default_factory=dict)  # prompt -> its centre of W (cached)


def is_gan_folder(folder: Path) -> bool:
    from studio.core.gan import MODEL_TYPE

    try:
        return json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")).get("model_type") == MODEL_TYPE
    except (OSError, ValueError, AttributeError):
        return False


def load_gan(source, device) -> GanBundle:
    import torch
    from diffusers import AutoencoderKL
    from safetensors.torch import load_file
    from transformers import CLIPTextModel, CLIPTokenizer

    from studio.core.gan import GanConfig, Generator

    folder = Path(source.path)
    for part in (folder, folder / "vae", folder / "text_encoder"):
        catalog.check_model_folder(part)  # sound safetensors, no code asked for
    config = GanConfig.from_dict(json.loads((folder / "config.json").read_text(encoding="utf-8")))
    generator = Generator(config)
    generator.load_state_dict({k: v.float() for k, v in load_file(str(folder / "generator.safetensors")).items()})
    f32 = {"dtype": torch.float32, "use_safetensors": True}
    vae = AutoencoderKL.from_pretrained(folder / "vae", **f32)
    text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", **f32)
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", model_max_length=77)
    stats_file = folder / "w_stats.safetensors"
    w_stats = {k: v.float() for k, v in load_file(str(stats_file)).items()} if stats_file.exists() else {}
    target = getattr(device, "device", device)
    for module in (generator, vae, text_encoder):
        module.to(target).eval().requires_grad_(False)
    return GanBundle(generator, vae, text_encoder, tokenizer, config, source, catalog.content_hash(folder),
                     str(target), w_stats)


def embed(bundle: GanBundle, prompts: list[str]):
    """The prompts' pooled text embeddings (padded to the longest: CLIP's causal attention ignores what follows)."""
    import torch

    ids = bundle.tokenizer(prompts, padding="longest", truncation=True, return_tensors="pt").input_ids
    with torch.inference_mode():
        return bundle.text_encoder(ids.to(bundle.device)).pooler_output.float()


def prompt_centre(bundle: GanBundle, prompt: str):
    """The average w of a prompt (over fixed z's): where truncation pulls, so ψ 0 is "the typical <prompt>"."""
    import torch

    if prompt not in bundle._centres:
        generator = torch.Generator("cpu").manual_seed(0)
        z = torch.randn(CENTRE_SAMPLES, bundle.config.z_dim, generator=generator).to(bundle.device)
        with torch.inference_mode():
            w = bundle.generator.mapping(z, embed(bundle, [prompt]).expand(CENTRE_SAMPLES, -1))
        bundle._centres[prompt] = w.mean(dim=0)
    return bundle._centres[prompt]


def seed_inputs(bundle: GanBundle, seed: int):
    """z and the per-layer noise of one seed, drawn on the CPU so every device draws the same picture."""
    import torch

    generator = torch.Generator("cpu").manual_seed(int(seed) % 2**64)
    z = torch.randn(1, bundle.config.z_dim, generator=generator)
    noises = bundle.generator.noises(1, generator)
    return z.to(bundle.device), [n.to(bundle.device) for n in noises]


def w_for(bundle: GanBundle, prompt: str, seed: int, truncation: float):
    """w (1, w_dim) of a prompt and seed, truncated towards the prompt's centre."""
    import torch

    from studio.core.gan import truncate

    z, _ = seed_inputs(bundle, seed)
    with torch.inference_mode():
        w = bundle.generator.mapping(z, embed(bundle, [prompt]))
    return truncate(w, prompt_centre(bundle, prompt), truncation)


def render(bundle: GanBundle, ws, noises) -> list:
    """ws (N, num_ws, w_dim) -> PIL pictures: synthesis, then the VAE's decoder."""
    import torch
    from PIL import Image

    with torch.inference_mode():
        latents = bundle.generator.synthesis(ws, noises)
        pixels = bundle.vae.decode(latents / bundle.config.latent_scaling).sample
    array = ((pixels.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a) for a in array]


def picture(bundle: GanBundle, prompt: str, seed: int, truncation: float = 1.0):
    """One picture of a prompt and seed."""
    w = w_for(bundle, prompt, seed, truncation)
    _, noises = seed_inputs(bundle, seed)
    return render(bundle, bundle.generator.broadcast(w), noises)[0]
