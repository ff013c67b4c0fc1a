"""Adapters (LoRAs) a user trained in the Train tab: their folders, their hashes, and applying them to a model.

An adapter folder (in `paths.adapters_dir()`, or anywhere the user keeps one) holds:
  adapter.json        what it is: name, medium, base model (ref and hash), trigger word, weights file, step
  MODEL_CARD.md       the card: data summary, steps, loss curve, samples, base model hash, trigger word
  text and music:     adapter_config.json + adapter_model.safetensors (a PEFT LoRA folder)
  images:             pytorch_lora_weights.safetensors (diffusers' LoRA format) + <name>.safetensors (kohya's
                      format, which A1111, ComfyUI and InvokeAI load)

A recipe names the adapters it used in its `adapters` param: [{"path", "weight", "sha256", "name"}], so every output
says which adapter, at what weight, with which weights (the hash). Reading adapter.json is plain JSON: the model
picker lists adapters without torch. Applying one (`merge_into`) imports torch and peft, in the engine only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from studio import paths
from studio.core.jobs import UserError

ADAPTER_FILE = "adapter.json"
PEFT_WEIGHTS = "adapter_model.safetensors"  # PEFT's own name (text and music)
DIFFUSERS_WEIGHTS = "pytorch_lora_weights.safetensors"  # diffusers' own name (images)
MAX_WEIGHT = 4.0  # past this a LoRA's change swamps the model; A1111's slider ends at 2, people go to 3-4


def adapters_dir() -> Path:
    return paths.adapters_dir()


def read_adapter(folder: Path | str) -> dict:
    """adapter.json of an adapter folder, checked: it names a medium, a base model and a weights file that exists."""
    folder = Path(folder)
    try:
        info = json.loads((folder / ADAPTER_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{folder} is not an adapter folder (it has no {ADAPTER_FILE})") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the adapter {folder.name}: {exc}") from None
    if not isinstance(info, dict) or not all(isinstance(info.get(k), str) for k in ("medium", "base_model", "weights")):
        raise UserError(f"{folder / ADAPTER_FILE} does not say which medium, base model and weights file it has")
    weights = folder / info["weights"]
    if Path(info["weights"]).name != info["weights"] or not weights.is_file():
        raise UserError(f"the adapter {folder.name} lacks its weights file {info['weights']!r}")
    return {**info, "path": str(folder)}


def list_adapters(medium: str | None = None, folder: Path | None = None) -> list[dict]:
    """Every readable adapter in the adapters folder (for one medium), newest first; unreadable folders are skipped."""
    root = Path(folder) if folder is not None else adapters_dir()
    found = []
    for candidate in sorted(root.iterdir()) if root.is_dir() else []:
        if not (candidate / ADAPTER_FILE).is_file():
            continue
        try:
            info = read_adapter(candidate)
        except UserError:
            continue
        if medium is None or info["medium"] == medium:
            found.append(info)
    return sorted(found, key=lambda info: str(info.get("created", "")), reverse=True)


def adapter_hash(folder: Path | str) -> str:
    """The short sha256 of the adapter's weights file (A1111's style of hash, as model hashes are)."""
    from studio.core.catalog import content_hash

    info = read_adapter(folder)
    return content_hash(Path(folder) / info["weights"])


def entry(folder: Path | str, weight: float = 1.0) -> dict:
    """What a recipe records for one adapter."""
    info = read_adapter(folder)
    return {"path": str(Path(folder)), "name": str(info.get("name") or Path(folder).name), "weight": float(weight),
            "sha256": adapter_hash(folder)}


def resolve(value: Any, medium: str) -> list[dict]:
    """A recipe's `adapters` param as checked entries (with their hashes now), or a UserError naming the problem."""
    if value in (None, "", [], ()):
        return []
    if not isinstance(value, (list, tuple)):
        raise UserError("the recipe's adapters must be a list of {path, weight}")
    entries = []
    for item in value:
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise UserError("each adapter in the recipe needs a path")
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or abs(weight) > MAX_WEIGHT:
            raise UserError(f"the adapter {item['path']} has a weight of {weight!r}: use a number from "
                            f"-{MAX_WEIGHT:g} to {MAX_WEIGHT:g}")
        folder = Path(item["path"]).expanduser()
        if not folder.is_dir():
            raise UserError(f"the adapter {folder} is not on this computer (moved or deleted?)")
        info = read_adapter(folder)
        if info["medium"] != medium:
            raise UserError(f"the adapter {info.get('name', folder.name)} is for {info['medium']}, not {medium}")
        made = entry(folder, float(weight))
        if item.get("sha256") and item["sha256"] != made["sha256"]:
            made["note"] = f"the recipe recorded weights {item['sha256']}; the folder now holds {made['sha256']}"
        entries.append(made)
    return entries


def cache_key(entries: list[dict]) -> tuple:
    """What tells two loaded models apart: the same base with other adapters (or weights) is another model."""
    return tuple((e["path"], e["sha256"], round(float(e["weight"]), 6)) for e in entries)


def merge_into(model, entries: list[dict]):
    """A transformers model with each PEFT LoRA adapter merged into its weights at the entry's weight.

    Merged, the model is a plain transformers model again: generation runs at the base model's speed and every
    fast path (the music GPT's own forward pass) still applies. The loaded model is the caller's; it changes.
    """
    if not entries:
        return model
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    from studio.core.catalog import check_weights_file

    names = []
    for index, item in enumerate(entries):
        folder = Path(item["path"])
        check_weights_file(folder / PEFT_WEIGHTS)  # a sound safetensors file before PEFT reads it
        name = f"adapter_{index}"
        try:
            if index == 0:
                model = PeftModel.from_pretrained(model, str(folder), adapter_name=name, is_trainable=False)
            else:
                model.load_adapter(str(folder), adapter_name=name, is_trainable=False)
        except (RuntimeError, ValueError, KeyError, OSError) as exc:
            raise UserError(f"the adapter {item.get('name', folder.name)} does not fit this model "
                            f"(made for another base model?): {str(exc)[:200]}") from None
        names.append(name)
        for module in model.modules():
            if isinstance(module, LoraLayer) and name in module.scaling:
                module.scaling[name] *= float(item["weight"])
    return model.merge_and_unload(adapter_names=names)
