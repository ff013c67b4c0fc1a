"""The image model's parts and losses: a VAE (64x64x3 <-> 16x16x4), a tiny CLIP text encoder, a UNet.

`Sizes` fixes every width; `Sizes.tiny()` builds the same models with a few thousand parameters for tests.
The UNet learns v-prediction with min-SNR weighting; sampling uses DPM-Solver++ 2M.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from studio.data import emoji as data_emoji
from studio.training.image_captions import MAX_TOKENS


@dataclass(frozen=True)
class Sizes:
    """Model sizes. `tiny()` is for tests: same code, models of a few thousand parameters."""

    vae_channels: tuple[int, ...] = (16, 32, 64)
    vae_layers: int = 1
    vae_groups: int = 16
    unet_channels: tuple[int, ...] = (64, 96, 128)
    unet_layers: int = 1
    unet_heads: int = 4
    text_hidden: int = 128
    text_layers: int = 3
    text_heads: int = 4
    bpe_merges: int = 3000
    norm_groups: int = 32

    @staticmethod
    def tiny() -> Sizes:
        return Sizes((8, 8, 8), 1, 4, (8, 16, 16), 1, 2, 16, 1, 2, 50, 4)


def build_vae(sizes: Sizes):
    from diffusers import AutoencoderKL

    n = len(sizes.vae_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=sizes.vae_channels,
        layers_per_block=sizes.vae_layers,
        latent_channels=4,
        norm_num_groups=sizes.vae_groups,
        sample_size=data_emoji.IMAGE_SIZE,
    )


def build_text_encoder(sizes: Sizes, tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=sizes.text_hidden,
        intermediate_size=sizes.text_hidden * 4,
        num_hidden_layers=sizes.text_layers,
        num_attention_heads=sizes.text_heads,
        max_position_embeddings=MAX_TOKENS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def build_unet(sizes: Sizes, latent_size: int):
    from diffusers import UNet2DConditionModel

    n = len(sizes.unet_channels)
    # No attention at the highest resolution (cheap), cross-attention to the caption below it.
    down = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1)
    up = ("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",)
    return UNet2DConditionModel(
        sample_size=latent_size,
        in_channels=4,
        out_channels=4,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=sizes.unet_channels,
        layers_per_block=sizes.unet_layers,
        cross_attention_dim=sizes.text_hidden,
        attention_head_dim=sizes.unet_heads,  # diffusers' name; it is the number of heads
        norm_num_groups=sizes.norm_groups,
    )


def noise_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="v_prediction",
        clip_sample=False,
    )


def sampling_scheduler():
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="v_prediction",
        algorithm_type="dpmsolver++",
        solver_order=2,
        timestep_spacing="trailing",
        steps_offset=1,
    )


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------------
# Losses


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1], the range diffusers' VAEs use."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def vae_loss(vae, images: torch.Tensor, kl_weight: float = 1e-4) -> tuple[torch.Tensor, dict]:
    posterior = vae.encode(images).latent_dist
    recon = vae.decode(posterior.sample()).sample
    l1 = (recon - images).abs().mean()
    mse = F.mse_loss(recon, images)
    kl = posterior.kl().mean() / posterior.mean[0].numel()
    loss = l1 + mse + kl_weight * kl
    return loss, {"l1": l1.item(), "mse": mse.item(), "kl": kl.item()}


def psnr(recon: torch.Tensor, images: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2)."""
    mse = F.mse_loss(recon.clamp(-1, 1), images).item()
    return 10 * math.log10(4.0 / max(mse, 1e-10))


def ldm_loss(unet, text_encoder, scheduler, latents, input_ids, generator=None, snr_gamma: float = 5.0):
    """Denoising loss with min-SNR-gamma weighting (Hang et al. 2023), latents already scaled. The target follows
    the scheduler's prediction type: v-prediction (the built-in) or epsilon (SD 1.x and most fine-tunes)."""
    noise = torch.randn(latents.shape, generator=generator).to(latents.device, latents.dtype)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator)
    noisy = scheduler.add_noise(latents, noise, t)
    text = text_encoder(input_ids.to(latents.device))[0]
    pred = unet(noisy, t.to(latents.device), encoder_hidden_states=text).sample
    alpha_bar = scheduler.alphas_cumprod[t].to(latents.device)
    snr = alpha_bar / (1 - alpha_bar)
    if scheduler.config.prediction_type == "epsilon":
        target, weight = noise, torch.clamp(snr, max=snr_gamma) / snr
    else:
        target, weight = scheduler.get_velocity(latents, noise, t), torch.clamp(snr, max=snr_gamma) / (snr + 1)
    per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    return (per_sample * weight).mean()


@torch.no_grad()
def ema_update(ema_model, model, decay: float) -> None:
    for e, p in zip(ema_model.parameters(), model.parameters(), strict=False):
        e.mul_(decay).add_(p.detach(), alpha=1 - decay)

