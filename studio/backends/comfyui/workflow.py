"""Our recipes as ComfyUI workflows (the API format `POST /prompt` takes), built from core nodes only.

An image recipe becomes: CheckpointLoaderSimple → LoraLoader × n → CLIPSetLastLayer → two CLIPTextEncode → a latent
(EmptyLatentImage; LoadImage → VAEEncode for img2img; the same + SetLatentNoiseMask for inpainting) → one
KSampler → VAEDecode → SaveImage chain per picture. A batch of N is N chains with seeds seed … seed + N - 1 (not one
latent batch): each picture's recipe then remakes exactly that picture alone, as our own engine's batches do.
Text-to-audio uses the ACE-Step or the Stable Audio nodes, whichever the server has.

Pure data in, pure data out: no I/O (uploads are done before, their server-side names passed in), no Qt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from studio.core.jobs import UserError
from studio.core.recipe import Recipe

# Our sampler names -> ComfyUI's (sampler_name, scheduler). ComfyUI has no PLMS: iPNDM is its improved form.
# The way back (ComfyUI -> ours) is core/recipe.py's `map_sampler`, the one alias table.
SAMPLERS: dict[str, tuple[str, str]] = {
    "ddim": ("ddim", "ddim_uniform"),
    "euler": ("euler", "normal"),
    "euler_a": ("euler_ancestral", "normal"),
    "dpmpp_2m": ("dpmpp_2m", "normal"),
    "dpmpp_2m_karras": ("dpmpp_2m", "karras"),
    "unipc": ("uni_pc", "normal"),
    "lcm": ("lcm", "normal"),
    "pndm": ("ipndm", "normal"),
    "heun": ("heun", "normal"),
    "lms": ("lms", "normal"),
}
DEFAULT_SAMPLER = "dpmpp_2m"  # = engine/image/settings.py's default scheduler
SIZE_MULTIPLE = 8  # EmptyLatentImage's step: SD-family latents are 1/8 of the picture
FILENAME_PREFIX = "LatentStudio"  # what the server's output folder shows for our jobs
# The A1111 prompt syntax for a LoRA: <lora:name:weight> (weight optional, 1.0). ComfyUI's CLIPTextEncode doesn't read
# it, so it is taken out of the text and becomes a LoraLoader.
LORA_TAG = re.compile(r"<lora:([^:>]+)(?::\s*([-+]?[\d.]+))?(?::[^>]*)?>", re.IGNORECASE)

# Text-to-audio. ACE-Step's own ComfyUI example: shift 5 on the model, euler + simple; Stable Audio's: DPM++ 3M SDE
# with the exponential schedule. 50 steps is what both examples use.
AUDIO_STEPS = 50
ACE_SHIFT = 5.0
ACE_LYRICS_STRENGTH = 0.99
AUDIO_NODES = {
    "ace_step": ("EmptyAceStepLatentAudio", "TextEncodeAceStepAudio", "VAEDecodeAudio", "SaveAudio"),
    "stable_audio": ("EmptyLatentAudio", "ConditioningStableAudio", "VAEDecodeAudio", "SaveAudio", "CLIPLoader"),
}


@dataclass
class Plan:
    """A workflow and what the client needs to follow it."""

    graph: dict[str, dict[str, Any]]
    outputs: dict[str, tuple[int, int]] = field(default_factory=dict)  # save node id -> (picture index, its seed)
    samplers: list[str] = field(default_factory=list)  # KSampler node ids, in picture order (progress)
    steps: int = 0  # KSampler steps per picture
    recipes: dict[int, Recipe] = field(default_factory=dict)  # picture index -> the recipe that remakes it alone
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Uploads:
    """Server-side names of the pictures uploaded for a job (`/upload/image`, `/upload/mask`)."""

    init_image: str = ""
    masked_image: str = ""  # the init image with the mask as its alpha (what /upload/mask makes)


def snap(value: int) -> int:
    return max(16, (int(value) + SIZE_MULTIPLE // 2) // SIZE_MULTIPLE * SIZE_MULTIPLE)


def comfy_sampler(ours: str) -> tuple[str, str]:
    return SAMPLERS.get(ours or DEFAULT_SAMPLER) or SAMPLERS[DEFAULT_SAMPLER]


def image_mode(recipe: Recipe) -> str:
    mode = recipe.param("mode")
    if mode in ("txt2img", "img2img", "inpaint"):
        return mode
    if recipe.param("mask_image"):
        return "inpaint"
    return "img2img" if recipe.param("init_image") else "txt2img"


# --- LoRAs --------------------------------------------------------------------------------


def split_loras(prompt: str) -> tuple[str, list[tuple[str, float]]]:
    """The prompt without its <lora:name:weight> tags, and the tags' (name, weight)."""
    found = [(m.group(1).strip(), float(m.group(2)) if m.group(2) else 1.0) for m in LORA_TAG.finditer(prompt)]
    return " ".join(LORA_TAG.sub(" ", prompt).split()), found


def recipe_loras(recipe: Recipe) -> tuple[str, list[tuple[str, float]]]:
    """The LoRAs a recipe asks for: its `loras` param ([{"name", "weight"}] or [[name, weight]]) and prompt tags."""
    prompt, loras = split_loras(recipe.prompt)
    for item in recipe.param("loras") or []:
        name, weight = (item.get("name"), item.get("weight", 1.0)) if isinstance(item, dict) else (item[0], item[1])
        loras.append((str(name), float(weight)))
    return prompt, loras


def find_lora(name: str, available: list[str]) -> str | None:
    """The server's file for a LoRA named in a recipe: the exact name, else the same file stem (any folder)."""
    if name in available:
        return name
    stem = name.rsplit(".", 1)[0] if name.lower().endswith((".safetensors", ".pt", ".ckpt")) else name
    for match_case in (True, False):
        for candidate in available:
            base = candidate.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
            if base == stem if match_case else base.lower() == stem.lower():
                return candidate
    return None


def missing_loras(recipe: Recipe, available: list[str]) -> list[str]:
    return [name for name, _w in recipe_loras(recipe)[1] if find_lora(name, available) is None]


# --- image --------------------------------------------------------------------------------


class _Graph:
    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}

    def add(self, class_type: str, **inputs: Any) -> str:
        node_id = str(len(self.nodes) + 1)
        self.nodes[node_id] = {"class_type": class_type, "inputs": inputs}
        return node_id


def image_plan(recipe: Recipe, loras_available: list[str], uploads: Uploads = Uploads()) -> Plan:
    """The workflow for an image recipe. Raises UserError for what the server can't do (a LoRA it lacks)."""
    mode = image_mode(recipe)
    graph = _Graph()
    checkpoint = graph.add("CheckpointLoaderSimple", ckpt_name=recipe.model)
    model, clip, vae = [checkpoint, 0], [checkpoint, 1], [checkpoint, 2]
    prompt, loras = recipe_loras(recipe)
    for name, weight in loras:
        found = find_lora(name, loras_available)
        if found is None:
            raise UserError(f"The LoRA '{name}' is not on this server (it has: {', '.join(loras_available) or 'none'}).")
        lora = graph.add("LoraLoader", model=model, clip=clip, lora_name=found, strength_model=weight,
                         strength_clip=weight)
        model, clip = [lora, 0], [lora, 1]
    clip_skip = int(recipe.param("clip_skip") or 1)
    if clip_skip > 1:  # A1111's "Clip skip 2" is ComfyUI's stop_at_clip_layer -2
        clip = [graph.add("CLIPSetLastLayer", clip=clip, stop_at_clip_layer=-clip_skip), 0]
    positive = graph.add("CLIPTextEncode", text=prompt, clip=clip)
    negative = graph.add("CLIPTextEncode", text=recipe.negative_prompt, clip=clip)
    latent, denoise = _start_latent(graph, recipe, mode, vae, uploads)
    sampler, scheduler = comfy_sampler(str(recipe.param("scheduler") or DEFAULT_SAMPLER))
    steps = max(1, int(recipe.param("steps", 20)))
    plan = Plan(graph.nodes, steps=steps)
    if recipe.param("guidance_start"):  # KSampler guides every step; the recipes below say what was run
        plan.notes.append("Guidance from is this app's own setting: the ComfyUI server guided every step.")
    if recipe.param("variety"):
        plan.notes.append("Variety is this app's own setting: the ComfyUI server drew without it.")
    count = max(1, int(recipe.param("batch_count", 1)))
    for index in range(count):
        seed = (int(recipe.seed) + index) % 2**64
        ksampler = graph.add("KSampler", model=model, seed=seed, steps=steps, cfg=float(recipe.param("guidance", 5.0)),
                             sampler_name=sampler, scheduler=scheduler, positive=[positive, 0],
                             negative=[negative, 0], latent_image=latent, denoise=denoise)
        decoded = graph.add("VAEDecode", samples=[ksampler, 0], vae=vae)
        save = graph.add("SaveImage", images=[decoded, 0], filename_prefix=FILENAME_PREFIX)
        plan.samplers.append(ksampler)
        plan.outputs[save] = (index, seed)
        plan.recipes[index] = _picture_recipe(recipe, mode, seed)
    return plan


def _start_latent(graph: _Graph, recipe: Recipe, mode: str, vae: list, uploads: Uploads) -> tuple[list, float]:
    if mode == "txt2img":
        width, height = snap(recipe.param("width", 512)), snap(recipe.param("height", 512))
        return [graph.add("EmptyLatentImage", width=width, height=height, batch_size=1), 0], 1.0
    strength = float(recipe.param("strength", 1.0 if mode == "inpaint" else 0.75))
    strength = min(1.0, max(0.0, strength))
    picture = uploads.masked_image if mode == "inpaint" else uploads.init_image
    if not picture:
        raise UserError(f"{mode} needs a starting image" + (" and a mask" if mode == "inpaint" else ""))
    loaded = graph.add("LoadImage", image=picture)
    encoded = [graph.add("VAEEncode", pixels=[loaded, 0], vae=vae), 0]
    if mode == "inpaint":  # LoadImage's MASK is 1 - alpha: the transparent (white-in-our-mask) area is repainted
        encoded = [graph.add("SetLatentNoiseMask", samples=encoded, mask=[loaded, 1]), 0]
    return encoded, strength


def _picture_recipe(recipe: Recipe, mode: str, seed: int) -> Recipe:
    params = dict(recipe.params)
    params.update(batch_count=1, mode=mode)
    params.pop("guidance_start", None)
    params.pop("variety", None)
    if mode == "txt2img":
        params.update(width=snap(params.get("width", 512)), height=snap(params.get("height", 512)))
        for key in ("strength", "init_image", "mask_image"):
            params.pop(key, None)
    return Recipe(modality=recipe.modality, prompt=recipe.prompt, negative_prompt=recipe.negative_prompt,
                  model=recipe.model, model_hash=recipe.model_hash, seed=seed, params=params, parents=recipe.parents)


# --- audio --------------------------------------------------------------------------------


def audio_kind(checkpoint: str, nodes: set[str], text_encoders: list[str]) -> str | None:
    """Which of our audio workflows fits a checkpoint on a server with these nodes: "ace_step", "stable_audio", None."""
    name = checkpoint.lower().replace("-", "_")
    if "ace_step" in name and all(n in nodes for n in AUDIO_NODES["ace_step"]):
        return "ace_step"
    if "stable_audio" in name and all(n in nodes for n in AUDIO_NODES["stable_audio"]) and _t5(text_encoders):
        return "stable_audio"
    return None


def _t5(text_encoders: list[str]) -> str | None:
    return next((name for name in text_encoders if "t5" in name.lower() and "xxl" not in name.lower()), None)


def audio_plan(recipe: Recipe, kind: str, text_encoders: list[str]) -> Plan:
    graph = _Graph()
    checkpoint = graph.add("CheckpointLoaderSimple", ckpt_name=recipe.model)
    seconds = max(1.0, float(recipe.param("duration", 8.0)))
    steps = max(1, int(recipe.param("steps", AUDIO_STEPS)))
    cfg = float(recipe.param("guidance", 5.0))
    model, vae = [checkpoint, 0], [checkpoint, 2]
    if kind == "ace_step":
        positive = graph.add("TextEncodeAceStepAudio", clip=[checkpoint, 1], tags=recipe.prompt,
                             lyrics=str(recipe.param("lyrics") or ""), lyrics_strength=ACE_LYRICS_STRENGTH)
        negative = graph.add("ConditioningZeroOut", conditioning=[positive, 0])
        positive, negative = [positive, 0], [negative, 0]
        latent = graph.add("EmptyAceStepLatentAudio", seconds=seconds, batch_size=1)
        model = [graph.add("ModelSamplingSD3", model=model, shift=ACE_SHIFT), 0]
        sampler, scheduler = "euler", "simple"
    else:
        clip = graph.add("CLIPLoader", clip_name=_t5(text_encoders), type="stable_audio")
        positive = graph.add("CLIPTextEncode", text=recipe.prompt, clip=[clip, 0])
        negative = graph.add("CLIPTextEncode", text=recipe.negative_prompt, clip=[clip, 0])
        timed = graph.add("ConditioningStableAudio", positive=[positive, 0], negative=[negative, 0],
                          seconds_start=0.0, seconds_total=seconds)
        positive, negative = [timed, 0], [timed, 1]
        latent = graph.add("EmptyLatentAudio", seconds=seconds, batch_size=1)
        sampler, scheduler = "dpmpp_3m_sde", "exponential"
    seed = int(recipe.seed) % 2**64
    ksampler = graph.add("KSampler", model=model, seed=seed, steps=steps, cfg=cfg, sampler_name=sampler,
                         scheduler=scheduler, positive=positive, negative=negative, latent_image=[latent, 0], denoise=1.0)
    decoded = graph.add("VAEDecodeAudio", samples=[ksampler, 0], vae=vae)
    save = graph.add("SaveAudio", audio=[decoded, 0], filename_prefix=f"audio/{FILENAME_PREFIX}")
    params = {**recipe.params, "duration": seconds, "steps": steps, "guidance": cfg}
    plan = Plan(graph.nodes, outputs={save: (0, seed)}, samplers=[ksampler], steps=steps)
    plan.recipes[0] = Recipe(modality=recipe.modality, prompt=recipe.prompt, negative_prompt=recipe.negative_prompt,
                             model=recipe.model, seed=seed, params=params, parents=recipe.parents)
    return plan
