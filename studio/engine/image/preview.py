"""From latents to pictures: the cheap preview after every step, the step hook that reports it and
switches cancel on, and the final VAE decode (redone in float32 when half precision gives NaNs).

The preview is a 4->3 linear map from latents to RGB: known factors for the SD VAEs; for any other VAE fitted
once by least squares on colour patches it encodes. torch is imported inside the functions (start-up time).
"""

from __future__ import annotations

import math
import time

from studio.core.jobs import Progress
from studio.engine.image import families
from studio.engine.image.pipelines import ImageBundle

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

    The step hook sends it at latent size (upscale=1), tagged `info["smooth"]`: the window scales it smoothly to
    the picture's size when it draws it (a nearest-neighbour enlargement, right for finished pixel art, made a
    16x16 preview a mosaic of hard squares). Sent at latent size, a 1024x1024 picture's preview is 128x128:
    48 KB across the process boundary instead of 3 MB, and a cheap conversion on the GUI thread.
    """
    import torch
    from PIL import Image

    weight, bias = factors
    with torch.inference_mode():
        x = latents[0].detach().float().cpu().permute(1, 2, 0) * scale  # H, W, C
        rgb = ((x @ weight + bias + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    picture = Image.fromarray(rgb, "RGB")
    picture.info["smooth"] = True  # a preview: drawn smoothly scaled, whatever its size on screen
    if upscale > 1:
        picture = picture.resize((picture.width * upscale, picture.height * upscale), Image.Resampling.BILINEAR)
    return picture


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


class StepWatcher:
    """The `callback_on_step_end` hook: progress + preview each step, and the cancel switch."""

    def __init__(self, bundle, report, cancelled, image_index: int, image_count: int, size=(0, 0)):
        self.bundle, self.report, self.cancelled = bundle, report, cancelled
        self.size = size  # (width, height): FLUX's packed latents are unpacked for the preview
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
            if clean is not None:
                preview = latent_preview(clean, preview_factors(self.bundle))
            else:
                latents = families.unpack(pipe, tensors["latents"], *self.size)
                preview = latent_preview(latents, preview_factors(self.bundle), _noise_scale(pipe.scheduler))
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
