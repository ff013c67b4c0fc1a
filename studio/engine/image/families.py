"""What differs between the image families once a model is loaded: its pipelines, sizes and latent layout.

Architectures: "sd" (SD 1.x/2.x and the built-in: one CLIP, a UNet), "sdxl" (two CLIPs, size conditioning),
"sd3" (MMDiT, CLIP-L + OpenCLIP-G + optional T5, flow matching), "flux" (FLUX.1: CLIP-L + T5, flow matching,
latents packed 2x2 into tokens) and "flux_fill" (FLUX.1 Fill: repaints a masked area, nothing else).
"""

from __future__ import annotations

from studio.core.model_files import folder_family  # noqa: F401 - re-exported: the loaders ask families for it

# Each architecture's diffusers pipelines by mode (all from diffusers itself: no custom pipelines, ever).
PIPELINES = {
    "sd": {"txt2img": "StableDiffusionPipeline", "img2img": "StableDiffusionImg2ImgPipeline",
           "inpaint": "StableDiffusionInpaintPipeline"},
    "sdxl": {"txt2img": "StableDiffusionXLPipeline", "img2img": "StableDiffusionXLImg2ImgPipeline",
             "inpaint": "StableDiffusionXLInpaintPipeline"},
    "sd3": {"txt2img": "StableDiffusion3Pipeline", "img2img": "StableDiffusion3Img2ImgPipeline",
            "inpaint": "StableDiffusion3InpaintPipeline"},
    "flux": {"txt2img": "FluxPipeline", "img2img": "FluxImg2ImgPipeline", "inpaint": "FluxInpaintPipeline"},
    "flux_fill": {"inpaint": "FluxFillPipeline"},
}


def architecture(family: str) -> str:
    if family == "flux_fill":
        return "flux_fill"
    if family.startswith("flux"):
        return "flux"
    if family.startswith("sd3"):
        return "sd3"
    if family.startswith("sdxl"):
        return "sdxl"
    return "sd"


def inpaint_only(family: str) -> bool:
    """9-channel inpainting UNets and FLUX Fill: every mode runs through their inpainting pipeline."""
    return family.endswith("_inpaint") or family == "flux_fill"


def main_pipeline_class(family: str):
    import diffusers

    mode = "inpaint" if inpaint_only(family) else "txt2img"
    return getattr(diffusers, PIPELINES[architecture(family)][mode])


def pipeline_class(family: str, mode: str):
    import diffusers

    return getattr(diffusers, PIPELINES[architecture(family)][mode])


# --- sizes and latents -----------------------------------------------------------------------------------


def denoiser(pipe):
    """The network that denoises: a UNet or a transformer."""
    return getattr(pipe, "unet", None) or pipe.transformer


def vae_factor(pipe) -> int:
    return int(getattr(pipe, "vae_scale_factor", 8))


def size_multiple(pipe) -> int:
    """Width and height must be multiples of this."""
    import math

    net = denoiser(pipe)
    if hasattr(pipe, "unet"):
        downs = len(net.config.block_out_channels) - 1
        return math.lcm(max(8, vae_factor(pipe) * 2**downs), 8)  # the pipelines also require a multiple of 8
    patch = 2 if type(net).__name__ == "FluxTransformer2DModel" else int(net.config.patch_size)
    return math.lcm(vae_factor(pipe) * patch, 8)


def native_size(pipe) -> int:
    """The side the model was trained at (its config's sample size in latent pixels, times the VAE's factor)."""
    if hasattr(pipe, "unet"):
        return int(pipe.unet.config.sample_size) * vae_factor(pipe)
    sample = getattr(pipe, "default_sample_size", None) or int(getattr(pipe.transformer.config, "sample_size", 128))
    return int(sample) * vae_factor(pipe)


def latent_channels(pipe) -> int:
    return int(pipe.vae.config.latent_channels)


def packs_latents(pipe) -> bool:
    """FLUX packs each 2x2 patch of latent pixels into one token: the pipelines take and give them packed."""
    return hasattr(pipe, "_pack_latents") and hasattr(pipe, "_unpack_latents")


def pack(pipe, latents):
    if not packs_latents(pipe):
        return latents
    batch, channels, height, width = latents.shape
    return pipe._pack_latents(latents, batch, channels, height, width)


def unpack(pipe, latents, width: int, height: int):
    """Latents as (batch, channels, h, w), whatever layout the pipeline keeps them in."""
    if not packs_latents(pipe) or latents.ndim == 4:
        return latents
    return pipe._unpack_latents(latents, height, width, vae_factor(pipe))
