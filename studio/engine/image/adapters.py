"""LoRA adapters on a loaded diffusers pipeline: the ones a recipe names, at its weights, and no others.

A loaded pipeline stays in the engine's model cache between jobs, so adapters are loaded into it once (named by
their weights' hash) and switched on and off per recipe with diffusers' `set_adapters` / `disable_lora`.
torch/diffusers are imported by the pipeline already; this module imports nothing heavy itself.
"""

from __future__ import annotations

from pathlib import Path

from studio.core import adapters as lora
from studio.core.catalog import check_weights_file
from studio.core.jobs import UserError


def apply_adapters(pipe, adapters: list[dict]) -> list[dict]:
    """Activate exactly `adapters` ([{"path", "weight"}]) on `pipe`; returns them checked, with their hashes
    (what the output's recipe records)."""
    entries = lora.resolve(adapters, "image")
    loaded = _loaded_names(pipe)
    if not entries:
        if loaded:
            pipe.disable_lora()
        return []
    if not hasattr(pipe, "load_lora_weights"):
        raise UserError(f"{type(pipe).__name__} pipelines take no LoRA adapters")
    names = []
    for item in entries:
        name = f"lora_{item['sha256']}"
        if name not in loaded:
            weights = Path(item["path"]) / lora.read_adapter(item["path"])["weights"]
            check_weights_file(weights)  # a sound safetensors file before diffusers reads it
            try:
                pipe.load_lora_weights(str(weights.parent), weight_name=weights.name, adapter_name=name)
            except (ValueError, KeyError, RuntimeError) as exc:
                raise UserError(f"the adapter {item['name']} does not fit this model (made for another base "
                                f"model?): {str(exc)[:200]}") from None
        names.append(name)
    pipe.enable_lora()
    pipe.set_adapters(names, adapter_weights=[float(item["weight"]) for item in entries])
    return entries


def _loaded_names(pipe) -> set[str]:
    if not hasattr(pipe, "get_list_adapters"):
        return set()
    return {name for names in pipe.get_list_adapters().values() for name in names}
