"""The stand-in server's nodes: ComfyUI's input specs for the core nodes our workflows use (names, types, ranges and
order as nodes.py and comfy_extras/ declare them), and stand-in computations whose results depend on their inputs.
See double.py. Pictures are float arrays [h, w, 3] in 0..1, latents dicts, as ComfyUI passes tensors and dicts."""

from __future__ import annotations

import asyncio
import hashlib

import numpy as np
from PIL import Image

SAMPLERS = ["euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
            "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m",
            "dpmpp_2m_sde", "dpmpp_3m_sde", "ddpm", "lcm", "ipndm", "ipndm_v", "deis", "ddim", "uni_pc", "uni_pc_bh2"]
SCHEDULERS = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal", "linear_quadratic",
              "kl_optimal"]
SEED_MAX = 0xFFFFFFFFFFFFFFFF


class Interrupted(Exception):
    """comfy.model_management.InterruptProcessingException"""


class NodeFailure(Exception):
    """Any exception a node raises: execution_error."""


def _definition(name: str, required: dict, outputs: tuple, output_node: bool = False, optional: dict | None = None):
    inputs = {"required": required, **({"optional": optional} if optional else {})}
    return {"input": inputs, "input_order": {k: list(v) for k, v in inputs.items()}, "output": list(outputs),
            "output_is_list": [False] * len(outputs), "output_name": list(outputs), "name": name, "display_name": name,
            "description": "", "python_module": "nodes", "category": "double", "output_node": output_node}


def node_definitions(models: dict[str, list[str]], inputs: list[str]) -> dict:
    f = lambda default, low, high, step=0.01: ("FLOAT", {"default": default, "min": low, "max": high, "step": step})  # noqa: E731
    i = lambda default, low, high, step=1: ("INT", {"default": default, "min": low, "max": high, "step": step})  # noqa: E731
    size = i(512, 16, 16384, 8)
    table = {
        "CheckpointLoaderSimple": ({"ckpt_name": (models["checkpoints"],)}, ("MODEL", "CLIP", "VAE")),
        "LoraLoader": ({"model": ("MODEL",), "clip": ("CLIP",), "lora_name": (models["loras"],),
                        "strength_model": f(1.0, -100.0, 100.0), "strength_clip": f(1.0, -100.0, 100.0)},
                       ("MODEL", "CLIP")),
        "CLIPSetLastLayer": ({"clip": ("CLIP",), "stop_at_clip_layer": i(-1, -24, -1)}, ("CLIP",)),
        "CLIPTextEncode": ({"text": ("STRING", {"multiline": True, "dynamicPrompts": True}), "clip": ("CLIP",)},
                           ("CONDITIONING",)),
        "EmptyLatentImage": ({"width": size, "height": size, "batch_size": i(1, 1, 4096)}, ("LATENT",)),
        "LoadImage": ({"image": (inputs, {"image_upload": True})}, ("IMAGE", "MASK")),
        "VAEEncode": ({"pixels": ("IMAGE",), "vae": ("VAE",)}, ("LATENT",)),
        "SetLatentNoiseMask": ({"samples": ("LATENT",), "mask": ("MASK",)}, ("LATENT",)),
        "KSampler": ({"model": ("MODEL",), "seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX,
                                                           "control_after_generate": True}),
                      "steps": i(20, 1, 10000), "cfg": f(8.0, 0.0, 100.0, 0.1), "sampler_name": (SAMPLERS,),
                      "scheduler": (SCHEDULERS,), "positive": ("CONDITIONING",), "negative": ("CONDITIONING",),
                      "latent_image": ("LATENT",), "denoise": f(1.0, 0.0, 1.0)}, ("LATENT",)),
        "VAEDecode": ({"samples": ("LATENT",), "vae": ("VAE",)}, ("IMAGE",)),
        "SaveImage": ({"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "ComfyUI"})}, ()),
        "VAELoader": ({"vae_name": (models["vae"],)}, ("VAE",)),
        "ControlNetLoader": ({"control_net_name": (models["controlnet"],)}, ("CONTROL_NET",)),
        "UpscaleModelLoader": ({"model_name": (models["upscale_models"],)}, ("UPSCALE_MODEL",)),
        "CLIPLoader": ({"clip_name": (models["text_encoders"],), "type": (["stable_diffusion", "stable_audio"],)},
                       ("CLIP",)),
        "EmptyAceStepLatentAudio": ({"seconds": f(120.0, 1.0, 1000.0, 0.1), "batch_size": i(1, 1, 4096)}, ("LATENT",)),
        "TextEncodeAceStepAudio": ({"clip": ("CLIP",), "tags": ("STRING", {"multiline": True}),
                                    "lyrics": ("STRING", {"multiline": True}), "lyrics_strength": f(1.0, 0.0, 10.0)},
                                   ("CONDITIONING",)),
        "ConditioningZeroOut": ({"conditioning": ("CONDITIONING",)}, ("CONDITIONING",)),
        "ModelSamplingSD3": ({"model": ("MODEL",), "shift": f(3.0, 0.0, 100.0)}, ("MODEL",)),
        "VAEDecodeAudio": ({"samples": ("LATENT",), "vae": ("VAE",)}, ("AUDIO",)),
        "SaveAudio": ({"audio": ("AUDIO",), "filename_prefix": ("STRING", {"default": "audio/ComfyUI"})}, ()),
    }
    return {name: _definition(name, required, outputs, output_node=name in ("SaveImage", "SaveAudio"))
            for name, (required, outputs) in table.items()}


def _digest(*parts) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big")


# --- the nodes: async (double, inputs, prompt_id, node_id, prompt, extra) -> (outputs, ui or None) ---------------


async def checkpoint(double, a, *_):
    if a["ckpt_name"].startswith("broken"):  # a damaged file: what a real loader raises at execution time
        raise NodeFailure(f"Error while deserializing header: {a['ckpt_name']} is not a safetensors file")
    model = {"name": a["ckpt_name"], "patches": ()}
    return (model, {"patches": (), "skip": -1}, {"name": a["ckpt_name"]}), None


async def lora(double, a, *_):
    model = {**a["model"], "patches": a["model"]["patches"] + ((a["lora_name"], a["strength_model"]),)}
    clip = {**a["clip"], "patches": a["clip"]["patches"] + ((a["lora_name"], a["strength_clip"]),)}
    return (model, clip), None


async def clip_skip(double, a, *_):
    return ({**a["clip"], "skip": a["stop_at_clip_layer"]},), None


async def encode(double, a, *_):
    return ({"text": a["text"], "clip": a["clip"]},), None


async def empty_latent(double, a, *_):
    return ({"size": (a["height"], a["width"]), "pixels": None, "mask": None},), None


async def load_image(double, a, *_):
    with Image.open(double.dirs["input"] / a["image"]) as opened:
        rgba = opened.convert("RGBA")
    pixels = np.asarray(rgba, dtype=np.float32) / 255.0
    return (pixels[..., :3], 1.0 - pixels[..., 3]), None  # MASK = 1 - alpha, as LoadImage makes it


async def vae_encode(double, a, *_):
    pixels = a["pixels"]
    return ({"size": pixels.shape[:2], "pixels": pixels, "mask": None},), None


async def noise_mask(double, a, *_):
    return ({**a["samples"], "mask": a["mask"]},), None


async def ksampler(double, a, prompt_id, node_id, *_):
    """Seeded noise, mixed into the starting picture by denoise (inside the mask only), one step at a time."""
    height, width = a["latent_image"]["size"]
    key = _digest(a["seed"], a["positive"]["text"], a["positive"]["clip"], a["negative"]["text"],
                  a["model"]["patches"], a["cfg"], a["sampler_name"], a["scheduler"])
    target = np.random.default_rng(key % 2**63).random((height, width, 3), dtype=np.float32)
    start = a["latent_image"]["pixels"]
    start = np.full_like(target, 0.5) if start is None else start
    mask = a["latent_image"]["mask"]
    picture = start
    for step in range(1, a["steps"] + 1):
        if double.interrupted:
            raise Interrupted()
        await asyncio.sleep(double.step_delay)
        amount = a["denoise"] * step / a["steps"]
        mixed = start * (1 - amount) + target * amount
        picture = mixed if mask is None else start * (1 - mask[..., None]) + mixed * mask[..., None]
        await double.progress(step, a["steps"], prompt_id, node_id, _to_image(picture))
    return ({"size": (height, width), "pixels": picture, "mask": None, "decoded": True},), None


async def vae_decode(double, a, *_):
    return (a["samples"]["pixels"],), None


def _to_image(pixels) -> Image.Image:
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8), "RGB")


async def save_image(double, a, prompt_id, node_id, prompt, extra):
    item = double.save_png(_to_image(a["images"]), a["filename_prefix"], prompt, extra)
    return (), {"images": [item]}


async def empty_audio_latent(double, a, *_):
    return ({"seconds": a["seconds"], "pixels": None},), None


async def ace_encode(double, a, *_):
    return ({"text": f"{a['tags']}|{a['lyrics']}", "clip": a["clip"]},), None


async def zero_out(double, a, *_):
    return ({"text": "", "clip": a["conditioning"]["clip"]},), None


async def model_sampling(double, a, *_):
    return ({**a["model"], "shift": a["shift"]},), None


async def audio_sampler(double, a, prompt_id, node_id, *rest):
    """KSampler on an audio latent: a seeded chord, one step at a time."""
    if "seconds" not in a["latent_image"]:
        return await ksampler(double, a, prompt_id, node_id, *rest)
    for step in range(1, a["steps"] + 1):
        if double.interrupted:
            raise Interrupted()
        await asyncio.sleep(double.step_delay)
        await double.progress(step, a["steps"], prompt_id, node_id, None)
    rate = 44100
    times = np.arange(int(a["latent_image"]["seconds"] * rate)) / rate
    base = 110 + _digest(a["seed"], a["positive"]["text"]) % 330
    wave = sum(np.sin(2 * np.pi * base * ratio * times) for ratio in (1, 1.25, 1.5)) / 4
    return ({"waveform": np.stack([wave, wave], axis=1).astype(np.float32), "sample_rate": rate},), None


async def decode_audio(double, a, *_):
    return (a["samples"],), None


async def save_audio(double, a, prompt_id, node_id, prompt, extra):
    import soundfile

    audio = a["audio"]
    path = double.next_name(a["filename_prefix"], "flac")
    soundfile.write(str(path), audio["waveform"], audio["sample_rate"], format="FLAC")
    subfolder = str(path.parent.relative_to(double.dirs["output"])).strip(".")
    return (), {"audio": [{"filename": path.name, "subfolder": subfolder, "type": "output"}]}


NODES = {
    "CheckpointLoaderSimple": checkpoint, "LoraLoader": lora, "CLIPSetLastLayer": clip_skip, "CLIPTextEncode": encode,
    "EmptyLatentImage": empty_latent, "LoadImage": load_image, "VAEEncode": vae_encode,
    "SetLatentNoiseMask": noise_mask, "KSampler": audio_sampler, "VAEDecode": vae_decode, "SaveImage": save_image,
    "EmptyAceStepLatentAudio": empty_audio_latent, "TextEncodeAceStepAudio": ace_encode,
    "ConditioningZeroOut": zero_out, "ModelSamplingSD3": model_sampling, "VAEDecodeAudio": decode_audio,
    "SaveAudio": save_audio,
}
