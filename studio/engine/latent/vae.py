"""The explorer's VAE: pictures <-> points of its latent space (raw, unscaled latents of the VAE alone).

Not the image engine's decode (engine/image/preview.py), which decodes a pipeline's scaled latents and has the
half-precision fallbacks: here everything runs in fp32 on a small VAE, in batches, and the points are numpy
arrays the maths in maths.py move around. torch and diffusers are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class VaeBundle:
    vae: object  # diffusers AutoencoderKL
    device: str
    dtype: object  # torch dtype
    image_size: int  # the size the VAE was trained at (its config's sample_size)
    source: str


def load_vae(source, device) -> VaeBundle:
    """The VAE of a diffusers pipeline folder (its vae/ subfolder) or a bare AutoencoderKL folder."""
    from diffusers import AutoencoderKL

    from studio.core.catalog import check_model_folder
    from studio.core.jobs import UserError

    if source.path is None:
        raise UserError(f"{source.ref}: the latent explorer needs a local model folder")
    folder = source.path / "vae" if (source.path / "vae").is_dir() else source.path
    if not (folder / "config.json").exists():
        raise UserError(f"{source.ref} has no VAE (no vae/config.json)")
    check_model_folder(folder)  # no code asked for, sound safetensors
    # fp32 everywhere: a 64×64 VAE is tiny, and fp16 decodes can overflow (the black-image bug)
    vae = AutoencoderKL.from_pretrained(folder, use_safetensors=True).to(device.device).eval()
    import torch

    return VaeBundle(vae, device.device, torch.float32, int(vae.config.sample_size or 64), source.ref)


def _to_tensor(images: Sequence, size: int, device: str):
    import torch

    arrays = [np.asarray(image.convert("RGB").resize((size, size)), dtype=np.float32) / 127.5 - 1.0 for image in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(device)


def encode_images(bundle: VaeBundle, images: Sequence, batch_size: int = 64, cancelled=None) -> np.ndarray:
    """Posterior means (N, C, h, w): deterministic, so the same image always lands on the same point."""
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            if cancelled and cancelled():
                from studio.core.jobs import Cancelled

                raise Cancelled()
            pixels = _to_tensor(images[start : start + batch_size], bundle.image_size, bundle.device)
            out.append(bundle.vae.encode(pixels).latent_dist.mean.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,))


def decode_points(bundle: VaeBundle, latents: np.ndarray | Sequence[np.ndarray]) -> list:
    import torch
    from PIL import Image

    batch = torch.from_numpy(np.stack([np.asarray(z, dtype=np.float32) for z in latents])).to(bundle.device)
    with torch.inference_mode():
        pixels = bundle.vae.decode(batch).sample
    pixels = ((pixels.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(p, "RGB") for p in pixels]


def reconstruction_errors(bundle: VaeBundle, images: Sequence) -> list[float]:
    """Mean squared pixel error of encode→decode per image: high means the VAE finds it unusual."""
    latents = encode_images(bundle, images)
    rebuilt = decode_points(bundle, latents)
    errors = []
    for original, copy in zip(images, rebuilt, strict=True):
        a = np.asarray(original.convert("RGB").resize(copy.size), dtype=np.float32) / 255
        b = np.asarray(copy, dtype=np.float32) / 255
        errors.append(float(((a - b) ** 2).mean()))
    return errors
