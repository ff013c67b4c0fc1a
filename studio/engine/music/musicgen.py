"""MusicGen: text to audio through transformers' `MusicgenForConditionalGeneration`, an optional Music backend.

The Music panel's own models write notes; MusicGen writes sound. When the user picks a MusicGen folder
(config.json model_type "musicgen") or hub id, `music.generate_task` hands the job here:

    prompt -> T5 tokenizer -> model.generate(guidance, temperature, top-k, top-p, frames) -> EnCodec -> samples

One generated token is one audio frame (50 a second for the released models), so the duration in seconds
sets `max_new_tokens`. The output is an Artifact of modality "audio" whose payload is (samples, sample_rate):
float32 samples, shape [n] (mono) or [n, channels] (stereo).

`is_musicgen_ref` is cheap (reads config.json, never imports torch): the panel calls it to hide the
controls a MusicGen model cannot use. torch and transformers are imported inside functions.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from studio.core import catalog
from studio.core.jobs import Artifact, Cancelled, Progress, Result, UserError
from studio.core.recipe import Recipe
from studio.engine.music.settings import (  # noqa: F401 - the cheap checks, re-exported beside the loader
    MAX_SECONDS,
    MusicSettings,
    is_musicgen,
    is_musicgen_config,
    is_musicgen_ref,
    read_model_config,
)

# Settings a MusicGen recipe records, and what a recipe leaves out: guidance, temperature and duration as the panel
# (settings.py); top-k 250 and top-p off as the released models' generation_config.json (the panel's are the note
# models': a MusicGen recipe from the panel always names both).
_PANEL = MusicSettings()
DEFAULT_PARAMS: dict[str, Any] = {"guidance": _PANEL.guidance, "temperature": _PANEL.temperature, "top_k": 250,
                                  "top_p": 0.0, "duration": _PANEL.duration}
# The panel's values that only MusicGen reads (the symbolic models ignore them).
OWN_PARAMS = ("guidance", "duration")
# Files worth fetching from a MusicGen hub repo: configs, tokenizer and safetensors weights, not the pickles.
HUB_PATTERNS = ["*.json", "*.model", "*.txt", "*.safetensors"]


# --- loading -----------------------------------------------------------------------------------------


@dataclass
class MusicGenModel:
    net: Any  # transformers MusicgenForConditionalGeneration, in eval mode
    tokenizer: Any  # the T5 tokenizer saved with it
    folder: Path  # where the weights are (a hub id's cache snapshot included)
    device: str
    dtype: str

    @property
    def sampling_rate(self) -> int:
        return int(self.net.config.audio_encoder.sampling_rate)

    @property
    def frame_rate(self) -> int:
        return int(self.net.config.audio_encoder.frame_rate)  # EnCodec frames (= generated tokens) a second

    @property
    def channels(self) -> int:
        return int(self.net.config.decoder.audio_channels)

    @property
    def delay(self) -> int:
        # MusicGen's delay pattern: codebook k of a channel runs k steps behind the first, so the last
        # codebook of a frame arrives (codebooks per channel - 1) tokens after its first.
        decoder = self.net.config.decoder
        return decoder.num_codebooks // decoder.audio_channels - 1

    @property
    def max_frames(self) -> int:
        return int(self.net.config.decoder.max_position_embeddings) - self.delay - 1


def _local_folder(source: catalog.ModelSource, report) -> Path:
    if source.kind == "hub":
        from studio.core.hub import hub_snapshot  # the user's cache first; a download when online

        return hub_snapshot(source.ref, report, patterns=HUB_PATTERNS)
    if source.kind in ("builtin", "transformers") and source.path is not None:
        return Path(source.path)
    raise UserError(f"{source.ref} is a {source.kind} model, not a MusicGen folder or hub id")


def load_musicgen(source: catalog.ModelSource, device: str = "cpu", dtype: str = "float32",
                  report=None) -> MusicGenModel:
    """Load from a local folder or the hub cache: safetensors only, never a pickle, never the network for files."""
    folder = _local_folder(source, report)
    catalog.check_model_folder(folder, "transformers")  # no code; refuses a folder of pytorch_model.bin pickles
    if not list(folder.glob("*.safetensors")):
        raise UserError(f"{source.name}: no .safetensors weights in {folder}")
    config = read_model_config(folder / "config.json")
    if config.get("model_type") == "musicgen_melody":
        raise UserError(f"{source.name} is MusicGen Melody (audio-conditioned); Latent Studio runs text-only MusicGen")

    import torch
    from transformers import AutoTokenizer, MusicgenForConditionalGeneration

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"{source.name}: cannot read the text tokenizer saved with the model ({exc})") from exc
    try:
        net = MusicgenForConditionalGeneration.from_pretrained(
            str(folder), local_files_only=True, use_safetensors=True, dtype=getattr(torch, dtype),
            trust_remote_code=False,
        )
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load the MusicGen model {source.name}: {exc}") from exc
    net.to(device).eval()
    return MusicGenModel(net, tokenizer, folder, device, dtype)


# --- generation --------------------------------------------------------------------------------------


@dataclass
class AudioGeneration:
    samples: Any  # numpy float32, [n] or [n, channels]
    sample_rate: int
    recipe: Recipe  # complete: re-running it gives the same samples
    seconds: float  # wall time


def settings(params: dict) -> dict:
    """The recipe's MusicGen settings, defaults filled in and ranges enforced."""
    values = {**DEFAULT_PARAMS, **{k: params[k] for k in DEFAULT_PARAMS if params.get(k) is not None}}
    return {
        "guidance": max(0.0, float(values["guidance"])),
        "temperature": max(0.0, float(values["temperature"])),
        "top_k": max(0, int(values["top_k"])),
        "top_p": min(1.0, max(0.0, float(values["top_p"]))),
        "duration": min(MAX_SECONDS, max(0.1, float(values["duration"]))),
    }


def _progress_criteria(total: int, frame_rate: int, report, cancelled):
    """A transformers StoppingCriteria called once per generated token: reports progress, and raises
    Cancelled when the user cancels (generate() has no other way to stop between tokens)."""
    import torch
    from transformers import StoppingCriteria

    class ReportEachToken(StoppingCriteria):
        def __init__(self) -> None:
            self.done = 0

        def __call__(self, input_ids, scores, **kwargs):
            self.done += 1
            if cancelled and cancelled():
                raise Cancelled()
            if report:
                report(Progress(self.done, total, message=f"{self.done / frame_rate:.1f} s of {total / frame_rate:.1f} s"))
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)  # never stops early

    return ReportEachToken()


def generate(model: MusicGenModel, recipe: Recipe, report=None, cancelled=None) -> AudioGeneration:
    """Text to audio by the recipe. Plain function: no worker needed."""
    import numpy as np
    import torch
    from transformers import StoppingCriteriaList

    started = time.perf_counter()
    values = settings(dict(recipe.params))
    seed = int(recipe.seed) if recipe.seed is not None and int(recipe.seed) >= 0 else random.randrange(2**31)
    # 1. Duration -> frames -> tokens: the delay pattern costs (codebooks per channel - 1) extra steps.
    frames = max(1, min(model.max_frames, round(values["duration"] * model.frame_rate)))
    new_tokens = frames + model.delay
    # 2. The prompt through the T5 tokenizer (MusicGen's processor does only this for text).
    inputs = model.tokenizer([recipe.prompt], return_tensors="pt", padding=True, truncation=True)
    inputs = {k: v.to(model.device) for k, v in inputs.items()}
    sampling: dict[str, Any] = {"do_sample": values["temperature"] > 0, "guidance_scale": values["guidance"]}
    if sampling["do_sample"]:
        sampling.update(temperature=values["temperature"], top_k=values["top_k"],
                        top_p=values["top_p"] if 0 < values["top_p"] < 1 else 1.0)
    criteria = _progress_criteria(new_tokens, model.frame_rate, report, cancelled)
    # 3. Sample with a private RNG state seeded from the recipe: same seed, same audio; the global state is left alone.
    fork_devices = [torch.device(model.device).index or 0] if model.device.startswith("cuda") else []
    with torch.random.fork_rng(devices=fork_devices), torch.inference_mode():
        torch.manual_seed(seed)
        audio = model.net.generate(**inputs, **sampling, max_new_tokens=new_tokens,
                                   stopping_criteria=StoppingCriteriaList([criteria]))
    # 4. [batch, channels, samples] -> [samples] or [samples, channels]
    samples = audio[0].float().cpu().numpy().astype(np.float32)
    samples = samples[0] if samples.shape[0] == 1 else samples.T.copy()
    complete = replace(
        recipe, model_hash=recipe.model_hash or _model_hash(model), seed=seed,
        params=values, device=model.device, dtype=model.dtype,
    )
    return AudioGeneration(samples, model.sampling_rate, complete, time.perf_counter() - started)


def _model_hash(model: MusicGenModel) -> str:
    try:
        return catalog.content_hash(model.folder)
    except OSError:
        return ""


# --- worker task -------------------------------------------------------------------------------------


def generate_task(job, ctx, source: catalog.ModelSource | None = None) -> Result:
    """Worker entry point (music.generate dispatches here for MusicGen models): one "audio" Artifact."""
    recipe = job.recipe
    if recipe is None:
        raise UserError("music generation needs a recipe")
    source = source or catalog.resolve(recipe.model)
    device = recipe.device or ctx.device.device
    # fp16 matmuls on CPU are slow and not always available: CPU always computes in fp32.
    dtype = "float32" if device == "cpu" else (recipe.dtype or ctx.device.dtype)
    model = ctx.models.get("music", (source.ref, device, dtype),
                           lambda: load_musicgen(source, device, dtype, ctx.report))
    result = generate(model, recipe, report=ctx.report, cancelled=ctx.cancelled)
    info = {"backend": "musicgen", "seconds": result.seconds, "music_seconds": len(result.samples) / result.sample_rate,
            "sample_rate": result.sample_rate, "channels": model.channels}
    payload = (result.samples, result.sample_rate)
    return Result(artifacts=[Artifact(modality="audio", recipe=result.recipe, payload=payload, info=info)])
