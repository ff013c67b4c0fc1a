"""LoRAs and textual-inversion embeddings for the tiny models, in the formats artists' files come in.

A LoRA is made with peft (random low-rank updates on the attention projections of the UNet and the text
encoder), saved the way diffusers saves one (`unet.…lora_A.weight`), and written again with kohya/A1111's names
(`lora_unet_…​.lora_down.weight` + `.alpha`) — the same numbers in the other format. Embeddings are A1111's
safetensors layout (`emb_params`).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def make_lora(pipe, seed: int, rank: int = 4, alpha: float = 4.0, strength: float = 0.3,
              text_encoder: bool = True) -> dict:
    """A random LoRA for `pipe` in diffusers' format: {"unet.<module>.lora_A.weight": …, "text_encoder.…": …}."""
    import torch
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    found = {}
    parts = [("unet", pipe.unet, UNET_TARGETS)] + ([("text_encoder", pipe.text_encoder, TEXT_TARGETS)] if text_encoder else [])
    for prefix, module, targets in parts:
        model = copy.deepcopy(module)
        inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, init_lora_weights=False), model)
        for key, value in get_peft_model_state_dict(model).items():
            found[f"{prefix}.{key}"] = value * strength if ".lora_B." in key else value
    return found


def save(tensors: dict, path: Path) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().clone().contiguous() for k, v in tensors.items()}, str(path))
    return path


def to_kohya(lora: dict, alpha: float, rank: int) -> dict:
    """The same LoRA with kohya-ss / A1111 names (SD 1.x: diffusers' module paths, dots as underscores)."""
    import torch

    out = {}
    for key, value in lora.items():
        component, rest = key.split(".", 1)
        module, kind = rest.rsplit(".lora_", 1)
        if component == "unet":
            name = "lora_unet_" + module.replace(".", "_")
        else:  # kohya names CLIP layers as in the original (nested) model
            name = "lora_te_" + ("text_model." + module).replace(".", "_")
        out[f"{name}.lora_down.weight" if kind.startswith("A") else f"{name}.lora_up.weight"] = value
        out[f"{name}.alpha"] = torch.tensor(float(alpha))
    assert len({k for k in out if k.endswith(".alpha")}) * 2 == len(lora)
    return out


def save_peft_folder(lora: dict, folder: Path, rank: int, alpha: float) -> Path:
    """A UNet-only LoRA as peft saves an adapter: adapter_model.safetensors (`base_model.model.` names) and
    adapter_config.json with its rank and alpha. The up weights are divided by alpha/rank: PEFT applies that
    scale itself, from the config."""
    tensors = {}
    for key, value in lora.items():
        if key.startswith("unet."):
            scaled = value / (alpha / rank) if ".lora_B." in key else value
            tensors["base_model.model." + key[len("unet."):]] = scaled
    save(tensors, folder / "adapter_model.safetensors")
    config = {"peft_type": "LORA", "r": rank, "lora_alpha": alpha, "target_modules": UNET_TARGETS}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def save_embedding(path: Path, width: int, count: int = 2, seed: int = 0, sdxl_widths: tuple | None = None) -> Path:
    import torch

    generator = torch.Generator().manual_seed(seed)
    if sdxl_widths:
        tensors = {"clip_l": torch.randn(count, sdxl_widths[0], generator=generator),
                   "clip_g": torch.randn(count, sdxl_widths[1], generator=generator)}
    else:
        tensors = {"emb_params": torch.randn(count, width, generator=generator)}
    return save(tensors, path)
