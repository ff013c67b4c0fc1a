"""The Train tab's values, presets and plain-words help: the one home of them (state, panel and trainer read it).

Training itself lives in studio/training/finetune*.py and runs in the engine process as jobs named in media.py;
this module is the light face of it (standard library only), the only Train module a panel may import.
"""

from __future__ import annotations

from dataclasses import dataclass

MEDIA = ("image", "text", "music")

# The built-in model each medium fine-tunes by default (an SD-family folder or file can be picked for images).
BASE_MODELS = {"image": "builtin:emoji-ldm", "text": "builtin:text-gpt", "music": "builtin:music-gpt"}

# What the Data step reads, by medium (suffixes, lower case).
SUFFIXES = {
    "image": (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"),
    "text": (".txt", ".md"),
    "music": (".mid", ".midi", ".abc", ".musicxml", ".xml", ".mxl", ".krn"),
}

# Fewer items than this and an adapter learns the items, not a style (kohya's guides say 15-50 images).
MIN_ITEMS = {"image": 10, "text": 1, "music": 8}
MIN_TEXT_BYTES = 20_000  # ~ 5,000 words: below it a voice is a handful of sentences the adapter repeats
# A folder whose decoded data would take more than this share of the memory free now is refused before the run.
MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class Preset:
    """A training length named by what it costs on this project's reference machine (2 CPU cores)."""

    name: str
    minutes: float  # measured: benchmarks/finetune_effects.py (seconds per step x steps, plus the sample grids)
    about: str  # one line for the tooltip


# Seconds per training step of each built-in on this project's 2-core machine at the default batch and rank, from
# benchmarks/finetune_effects.py (results/finetune_<medium>.json, "seconds_per_step"), measured on one torch thread
# while three other jobs ran beside it (load ~7): on a quiet machine steps are faster, so the presets err long.
SECONDS_PER_STEP = {"builtin:emoji-ldm": 0.94, "builtin:text-gpt": 3.75, "builtin:music-gpt": 2.80}
PRESETS = (
    Preset("quick", 5, "A first look: enough for the style to show, not to settle."),
    Preset("better", 20, "The style settles and the samples steady; the usual choice."),
    Preset("thorough", 60, "For a large folder (hundreds of items) or a subtle style; watch for over-learning."),
)
DEFAULT_PRESET = "quick"


def preset(name: str) -> Preset:
    return next((p for p in PRESETS if p.name == name), PRESETS[0])


def preset_steps(name: str, base_model: str, strength: float = 1.0) -> int:
    """How many steps a preset runs on a base model: its minutes at the base's measured speed (unknown bases:
    the slowest built-in's), with a tenth of the time left for the sample grids."""
    seconds = SECONDS_PER_STEP.get(base_model, max(SECONDS_PER_STEP.values()))
    return max(10, int(preset(name).minutes * 60 * 0.9 / seconds))


def preset_label(name: str) -> str:
    return f"{name} · about {preset(name).minutes:g} min"


# --- SD-family LoRA on a GPU, by how much memory the card has ------------------------------------------------------
@dataclass(frozen=True)
class GpuTier:
    vram_gb: int  # the least video memory this tier runs in
    resolution: int
    batch: int
    rank: int
    text_encoder: bool
    checkpointing: bool  # recompute activations in the backward pass: slower, much less memory


# From the community's SD 1.5 LoRA recipes (kohya_ss, OneTrainer defaults): fp16 weights, AdamW, UNet attention LoRA.
GPU_TIERS = (
    GpuTier(6, 512, 1, 8, False, True),
    GpuTier(12, 512, 2, 16, True, False),
    GpuTier(24, 768, 4, 32, True, False),
)
# A UNet above this many parameters is a full-size SD-family model: it trains on a GPU, not on this CPU.
CPU_UNET_LIMIT = 100_000_000


def gpu_tier(vram_gb: float) -> GpuTier | None:
    fitting = [tier for tier in GPU_TIERS if tier.vram_gb <= vram_gb]
    return fitting[-1] if fitting else None


def gpu_needs(parameters: int) -> str:
    """What a big model needs, said on a machine that has no (big enough) GPU."""
    low = GPU_TIERS[0]
    return (f"This model ({parameters / 1e6:,.0f} M parameters in its UNet) trains on an NVIDIA GPU with at least "
            f"{low.vram_gb} GB of memory ({low.resolution} px, batch {low.batch}, rank {low.rank}); with "
            f"{GPU_TIERS[1].vram_gb} GB the text encoder trains too, with {GPU_TIERS[2].vram_gb} GB at "
            f"{GPU_TIERS[2].resolution} px. This computer has no such GPU: the built-in models train here instead.")


@dataclass(frozen=True)
class TrainSettings:
    """The six steps' values. 0 or "" means "the preset's or the model's own"."""

    medium: str = "image"
    folder: str = ""  # 1. Data: the folder of images, texts or pieces
    trigger: str = ""  # 2. a word that calls the style up in prompts (images); "" for none
    model: str = ""  # 3. the base model; "": the medium's built-in (BASE_MODELS)
    preset: str = DEFAULT_PRESET  # 3. how long: quick / better / thorough (named by minutes on this machine)
    # 4. The one knob: how far the adapter moves from the base model. 1 = the preset's learning rate; 0.5 gentler
    # (keeps more of what the model knew), 2 stronger (learns the folder faster, forgets more, may copy it).
    strength: float = 1.0
    # 4. Advanced
    rank: int = 8  # the adapter's size: 4-8 is a style, 16-32 a subject with detail (kohya's usual range)
    learning_rate: float = 0.0  # 0: the medium's own (below), times the strength
    batch: int = 0  # 0: the medium's own
    steps: int = 0  # 0: the preset's
    resolution: int = 0  # images: 0 = the model's native size
    # images: also teach the text encoder. Off: the UNet's cross-attention learns the trigger's tokens on its own
    # (as most shared SD LoRAs do), and it needs no newer PEFT than the one transformers 5.25 accepts.
    train_text_encoder: bool = False
    sample_every: int = 0  # steps between sample grids; 0: about eight grids a run
    checkpoint_minutes: float = 3.0  # a checkpoint at least this often (and at every grid): a cancel loses less
    seed: int = 0  # fixes the batches, the noise and the sample grid, so two runs compare
    name: str = ""  # the adapter's name; "": the folder's


# The medium's own learning rate and batch at strength 1 (LoRA's usual 1e-4 for big SD models is far too slow for
# models this small). Text: 2e-3 levelled off at an 18 % lower held-out bits/byte in the 5-minute KJV run, 4e-3 goes
# further in the same steps (benchmarks/results/finetune_text.json).
LEARNING_RATES = {"image": 1e-3, "text": 4e-3, "music": 2e-3}
BATCHES = {"image": 8, "text": 8, "music": 4}

# Plain words for every control (tooltips).
HELP = {
    "folder": "The folder of your own material: pictures, texts (.txt/.md) or music (.mid, .abc, MusicXML, .krn).",
    "trigger": "A made-up word that calls your style up in a prompt, e.g. “pxlart”. Leave empty to change "
               "everything the model makes.",
    "model": "The model that learns from your folder. The built-in ones train on this computer's processor.",
    "preset": "How long to train. The minutes are measured on a 2-core computer; yours may be faster.",
    "strength": "How far the adapter moves away from what the model already knows. Lower keeps more of the "
                "original; higher learns your folder faster but may copy it and forget the rest.",
    "rank": "How much the adapter can hold. 4-8 is plenty for a style; 16-32 for a detailed subject. Bigger is "
            "slower and copies more.",
    "learning_rate": "How big each learning step is (0 = the model's usual, times the strength). Too high and the "
                     "samples turn to mush; too low and nothing changes.",
    "batch": "How many items each step looks at (0 = the usual). More is steadier and slower.",
    "steps": "How many learning steps (0 = the preset's). The loss curve shows when more stops helping.",
    "resolution": "Pictures are scaled to this size for training (0 = the model's own size).",
    "train_text_encoder": "Also teach the model's text reader, so your trigger word means something. Turn off to "
                          "change only the pictures' look.",
    "sample_every": "Make a sample grid every this many steps (0 = about eight in a run), from the same seeds, so "
                    "you can watch the style arrive and pick the best moment.",
    "checkpoint_minutes": "Save the training at least this often, so stopping or closing the app loses little.",
    "seed": "Fixes the order of the data and the sample grid, so two runs compare.",
    "name": "The adapter's name in the model pickers (empty: the folder's name).",
}
