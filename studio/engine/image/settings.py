"""The Image panel's values, each with its default: the one home of them (state, engine fallbacks and CLI flags read it).

Light on purpose, the only image module a panel may import: the standard library and one constant from core.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
    # txt2img | img2img | inpaint | translate (a sketch in init_image, drawn by the sketch model in one pass);
    # the engine also infers img2img/inpaint from init_image / mask_image when absent.
    mode: str = "txt2img"
    # Denoising steps: DPM++ 2M is converged by about 20 (A1111's default too; the built-in's card uses 20).
    steps: int = 20
    # Classifier-free guidance: how hard the prompt pulls. The built-in's card recommends 3-5; SD 1.5 checkpoints
    # are usually run at 7, and a recipe always records its own value.
    guidance: float = 5.0
    # The share of the steps, from the first, run without guidance (studio/engine/image/guidance.py): 0 = guided
    # throughout (every other tool's way). Later guidance keeps the seeds apart; a model's defaults may set it.
    guidance_start: float = 0.0
    # Variety (studio/engine/image/guidance.py, CADS): noise on the prompt's embedding in the first steps, annealed
    # away by the middle ones, so seeds of one prompt differ in layout. 0 = off (every other tool's way).
    variety: float = 0.0
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
    # Translate mode's sketch -> picture model (the built-in pix2pix, models/emoji-sketch): Translate uses it whatever
    # diffusion model is picked, so switching modes never loses the user's model.
    translator: str = "builtin:emoji-sketch"
    # Another tool's settings read from a dropped file that this app can't use (A1111's "Schedule type: Exponential",
    # hashes, …): kept and written back into the A1111 text of what is made from it, so nothing is silently lost.
    kept: dict = field(default_factory=dict)
    init_image: str = ""  # img2img / inpaint: the starting picture's path
    mask_image: str = ""  # inpaint: the mask's path (white = repaint)
    # LoRA adapters trained in the Train tab: [{"path", "weight"}]; the output's recipe records each with its hash.
    adapters: tuple[dict, ...] = ()


# --- what fits each model -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FamilyDefaults:
    """The settings a family's models are made for (the values their makers publish or the tools' defaults)."""

    width: int
    height: int
    steps: int
    guidance: float
    scheduler: str
    clip_skip: int = 1

    def values(self) -> dict:
        return {"width": self.width, "height": self.height, "steps": self.steps, "guidance": self.guidance,
                "scheduler": self.scheduler, "clip_skip": self.clip_skip}


_SD1 = FamilyDefaults(512, 512, 25, 7.0, "dpmpp_2m_karras")  # A1111's CFG 7; DPM++ 2M Karras, the usual choice
_SDXL = FamilyDefaults(1024, 1024, 30, 6.0, "dpmpp_2m_karras")  # trained at 1024²; CFG 5-7 is the common range
FAMILY_DEFAULTS = {
    "sd1": _SD1,
    "sd1_inpaint": _SD1,
    "sd2": FamilyDefaults(768, 768, 25, 7.0, "dpmpp_2m_karras"),  # SD 2.1's 768-v model
    "sd2_inpaint": FamilyDefaults(512, 512, 25, 7.0, "dpmpp_2m_karras"),  # the inpainting model is the 512 base
    "sdxl": _SDXL,
    "sdxl_inpaint": _SDXL,
    "sd3": FamilyDefaults(1024, 1024, 28, 7.0, "flow_euler"),  # Stability's card: 28 steps, CFG 7
    "sd35_medium": FamilyDefaults(1024, 1024, 40, 4.5, "flow_euler"),  # card: 40 steps, CFG 4.5
    "sd35_large": FamilyDefaults(1024, 1024, 28, 3.5, "flow_euler"),  # card: 28 steps, CFG 3.5
    "flux_dev": FamilyDefaults(1024, 1024, 28, 3.5, "flow_euler"),  # BFL: guidance 3.5 (distilled, not CFG)
    "flux_schnell": FamilyDefaults(1024, 1024, 4, 0.0, "flow_euler"),  # 1-4 steps, no guidance
    "flux_fill": FamilyDefaults(1024, 1024, 28, 30.0, "flow_euler"),  # BFL's Fill example: guidance 30
}
# A size this far from the native one gives repeated subjects (larger) or mush (smaller): the panel warns.
FAR_AREA = (0.3, 2.25)  # 768² on an SD 1.x model (2.25x) still works; 1024² (4x) repeats
FAR_SIDE = 2.0  # a side over twice the native side (512x1536 on SD 1.x) stretches as badly
ASPECTS = ((1, 1), (4, 3), (3, 4), (3, 2), (2, 3), (16, 9), (9, 16))


def model_defaults(family: str, catalog_defaults: dict | None = None) -> dict:
    """The panel values a model of this family (and catalog entry) starts with."""
    # a later model's pick must not inherit a delay or noise the previous model's defaults set
    values = {"guidance_start": ImageSettings.guidance_start, "variety": ImageSettings.variety}
    values.update(FAMILY_DEFAULTS[family].values() if family in FAMILY_DEFAULTS else {})
    values.update({k: v for k, v in (catalog_defaults or {}).items() if k in _FITTED})
    return values


# what a model's defaults may set
_FITTED = ("width", "height", "steps", "guidance", "guidance_start", "variety", "scheduler", "clip_skip")


def native_size(family: str, catalog_defaults: dict | None = None) -> tuple[int, int] | None:
    values = model_defaults(family, catalog_defaults)
    return (int(values["width"]), int(values["height"])) if "width" in values else None


def size_presets(native: tuple[int, int]) -> list[tuple[int, int]]:
    """Sizes at the model's native area in the usual aspect ratios (snapped to 64, or 8 for small models)."""
    import math

    area = native[0] * native[1]
    step = 64 if min(native) >= 512 else 8
    found = []
    for a, b in ASPECTS:
        width = max(step, round(math.sqrt(area * a / b) / step) * step)
        height = max(step, round(area / width / step) * step)
        if (width, height) not in found:
            found.append((width, height))
    return found


def size_is_far(width: int, height: int, native: tuple[int, int]) -> bool:
    ratio = (width * height) / (native[0] * native[1])
    return not FAR_AREA[0] <= ratio <= FAR_AREA[1] or max(width / native[0], height / native[1]) > FAR_SIDE


# --- samplers: the names a recipe, the CLI and the panel use -------------------------------------------------

# name -> (diffusers class name, extra config, what the picker shows)
SCHEDULERS: dict[str, tuple[str, dict[str, Any], str]] = {
    "ddim": ("DDIMScheduler", {}, "DDIM"),
    "euler": ("EulerDiscreteScheduler", {}, "Euler"),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}, "Euler a"),
    "dpmpp_2m": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False},
        "DPM++ 2M",
    ),
    "dpmpp_2m_karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
        "DPM++ 2M Karras",
    ),
    "unipc": ("UniPCMultistepScheduler", {}, "UniPC"),
    "lcm": ("LCMScheduler", {}, "LCM"),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}, "PLMS"),
    "heun": ("HeunDiscreteScheduler", {}, "Heun"),
    "lms": ("LMSDiscreteScheduler", {}, "LMS"),
    # SD 3 and FLUX are flow-matching models: their Euler walks a straight path from noise to picture
    "flow_euler": ("FlowMatchEulerDiscreteScheduler", {}, "Euler (flow matching)"),
}
# Forge and ComfyUI write "Euler" for FLUX and SD 3 pictures: on a flow-matching model that name means this one.
FLOW_ALIASES = {"euler": "flow_euler", "euler_a": "flow_euler"}


def scheduler_label(name: str) -> str:
    return SCHEDULERS[name][2] if name in SCHEDULERS else name


def scipy_available() -> bool:
    # LMS computes its coefficients with scipy.integrate; offer it only when scipy is installed.
    import importlib.util

    return importlib.util.find_spec("scipy") is not None


def schedulers_for(family: str = "", defaults: Mapping[str, Any] | None = None) -> list[str]:
    """The samplers to offer for a model known by its family and catalog defaults only (no weights loaded: the
    Image panel's list). Flow-matching families (SD 3, FLUX) take the flow Euler; LCM only a model made for it
    (its defaults name it); the rest every discrete sampler. The engine checks again on the loaded pipeline
    (`available_schedulers`), so a hand-written recipe still gets a clear error."""
    flow = family.startswith(("sd3", "sd35", "flux"))
    lcm = (defaults or {}).get("scheduler") == "lcm"
    names = []
    for name, (class_name, _extra, _label) in SCHEDULERS.items():
        if flow != (class_name == "FlowMatchEulerDiscreteScheduler"):
            continue
        if (name == "lcm" and not lcm) or (name == "lms" and not scipy_available()):
            continue
        names.append(name)
    return names
