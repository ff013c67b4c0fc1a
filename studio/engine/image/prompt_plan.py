"""From a recipe's prompt as typed to what the pipeline takes: LoRAs found and applied, embeddings loaded, and
the text encoded as A1111 would (weights, BREAK, long prompts) or handed to diffusers as it is.

Plain prompts of 75 tokens or fewer, without embeddings, go to diffusers unchanged (its encoding is the same for
them, see tests), so the common case runs exactly the pipeline's own code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from studio.core.jobs import UserError
from studio.core.recipe import Recipe
from studio.engine.image import families
from studio.engine.image.conditioning import CHUNK, a1111_prompt_embeds
from studio.engine.image.embeddings import Embedding, embeddings_for
from studio.engine.image.lora import LoraSpec, apply_loras, find_lora, lora_hash
from studio.engine.image.prompts import extract_loras, plain_text, uses_syntax


@dataclass
class PromptPlan:
    prompt: str  # without LoRA tags
    negative: str
    loras: list[LoraSpec] = field(default_factory=list)  # from <lora:…> tags in the prompt
    adapters: list[LoraSpec] = field(default_factory=list)  # the Train tab's, from the recipe's `adapters`
    embeddings: dict[str, Embedding] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def recipe_params(self) -> dict[str, Any]:
        """What the output recipe records: each LoRA's name, weight and hash; each embedding's name and hash."""
        params: dict[str, Any] = {}
        if self.loras:
            params["loras"] = [{"name": s.name, "weight": s.weight, "hash": s.hash} for s in self.loras]
        if self.embeddings:
            params["embeddings"] = [{"name": e.name, "hash": e.hash} for e in self.embeddings.values()]
        return params


_HASH_CACHE: dict[tuple, str] = {}


def _cached_hash(path) -> str:
    stat = path.stat() if path.is_file() else (path / "adapter_model.safetensors").stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = lora_hash(path)
    return _HASH_CACHE[key]


def _resolve_loras(tags, recorded: dict, notes: list[str]) -> list[LoraSpec]:
    from studio.core.model_folders import files_of_kind

    if not tags:
        return []
    files = files_of_kind("lora")
    specs = []
    for tag in tags:
        path, note = find_lora(tag.name, str(recorded.get(tag.name, "")), files)
        if path is None:
            raise UserError(f"LoRA {tag.name!r} (from <lora:{tag.name}:{tag.weight:g}>) is not in your model folders: "
                            "add the folder that holds it in the model manager")
        if note:
            notes.append(note)
        specs.append(LoraSpec(tag.name, path, tag.weight, _cached_hash(path)))
    return specs


def adapter_specs(adapters: list[dict]) -> list[LoraSpec]:
    """The Train tab's adapters (core/adapters.resolve entries) as LoRAs like any other: one loading and fusing
    path for every LoRA, so a tag and an adapter on one model add up instead of fighting over its layers."""
    from pathlib import Path

    from studio.core.adapters import read_adapter

    return [LoraSpec(item["name"], Path(item["path"]) / read_adapter(item["path"])["weights"], float(item["weight"]),
                     item["sha256"]) for item in adapters]


def plan_prompt(bundle, recipe: Recipe, adapters: list[dict] | None = None) -> PromptPlan:
    prompt, tags, notes = extract_loras(recipe.prompt)
    negative, negative_tags, _ = extract_loras(recipe.negative_prompt)
    if negative_tags:
        notes.append("LoRA tags in the negative prompt are left out (A1111 applies them from the prompt only).")
    recorded = recipe.param("lora_hashes") or {}
    plan = PromptPlan(" ".join(prompt.split()), " ".join(negative.split()), notes=notes)
    plan.loras = _resolve_loras(tags, recorded if isinstance(recorded, dict) else {}, plan.notes)
    plan.adapters = adapter_specs(adapters or [])
    if families.architecture(bundle.family) in ("sd", "sdxl"):
        plan.embeddings = embeddings_for([plan.prompt, plan.negative], bundle.embeddings_cache)
    return plan


def prepare(bundle, recipe: Recipe, adapters: list[dict] | None = None) -> PromptPlan:
    """Plan the prompt and put its LoRAs and the recipe's adapters on the model (reused when unchanged since the
    last job)."""
    plan = plan_prompt(bundle, recipe, adapters)
    apply_loras(bundle, plan.loras + plan.adapters)
    return plan


def _too_long(pipe, text: str) -> bool:
    return len(pipe.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"]) > CHUNK


def text_kwargs(bundle, pipe, plan: PromptPlan, clip_skip: int, notes: list[str]) -> dict:
    """The prompt as this pipeline takes it."""
    arch = families.architecture(bundle.family)
    skip = max(0, int(clip_skip) - 1)  # A1111's "Clip skip: 1" means no skip
    if arch in ("sd", "sdxl"):
        a1111 = plan.embeddings or any(uses_syntax(t) or _too_long(pipe, t) for t in (plan.prompt, plan.negative))
        if a1111 or (skip and arch == "sd"):  # diffusers' own clip skip breaks on transformers >= 5.6's CLIP
            return a1111_prompt_embeds(pipe, arch, plan.prompt, plan.negative, skip, plan.embeddings)
        kwargs: dict[str, Any] = {"prompt": plan.prompt, "negative_prompt": plan.negative or None}
        if skip:
            kwargs["clip_skip"] = skip
        return kwargs
    prompt, negative = plan.prompt, plan.negative
    if uses_syntax(prompt) or uses_syntax(negative):
        notes.append("Prompt weights and BREAK are read by the CLIP models (SD 1.x/2.x/SDXL); for this model the "
                     "words are used without them.")
        prompt, negative = plain_text(prompt), plain_text(negative)
    kwargs = {"prompt": prompt, "negative_prompt": negative or None}
    if skip and arch == "sd3":
        kwargs["clip_skip"] = skip
    elif skip:
        notes.append("CLIP skip does not apply to FLUX; left out.")
    return kwargs
