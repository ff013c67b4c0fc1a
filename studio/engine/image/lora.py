"""LoRAs on a loaded image model: kohya/A1111 and diffusers/PEFT files (LyCORIS where diffusers reads them),
several at once with weights, fused into the weights once and kept across jobs while they don't change.

How, with diffusers' own loaders (`load_lora_weights` reads and converts every format it knows):
1. Each file's tensors are read here (safetensors, header checked first) and handed to diffusers as a dict.
2. `set_adapters` gives each its weight; the base values of every layer a LoRA touches are copied aside; the
   adapters are fused into the weights and their extra layers dropped, so generating costs what it costs
   without a LoRA.
3. The next job with the same files and weights reuses the fused model; any other set first puts the copied base
   values back (bit for bit: removing a LoRA gives back exactly the base model's pictures), then fuses the new
   set. `fuse=False` keeps them as separate layers instead (what the benchmark compares).

For adapters trained here (issue 20, "train on your own folder"): save a PEFT LoRA of the UNet either as one
file with diffusers' keys (`StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=
get_peft_model_state_dict(unet))`) or as a PEFT folder (`unet.save_pretrained(folder)`: adapter_config.json +
adapter_model.safetensors), in `core.model_folders.own_lora_folder()` (or any model folder), and write
`<lora:name:1>` in the prompt: every job applies what its prompt names (`prompt_plan.prepare`). Code that drives
a loaded bundle itself calls `apply_loras(bundle, [LoraSpec.from_file(path, 1.0)])`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from studio.core import catalog
from studio.core.jobs import UserError


def lora_hash(path: Path) -> str:
    """A1111's and Civitai's short LoRA hash (AutoV3): sha256 of a safetensors file's tensor data, without its
    header (so editing the metadata keeps the hash), first 12 hex digits. A PEFT folder: of its weights file."""
    path = Path(path)
    if path.is_dir():
        path = path / "adapter_model.safetensors"
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        header_length = int.from_bytes(handle.read(8), "little")
        handle.seek(8 + header_length)
        for block in iter(lambda: handle.read(2**22), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class LoraSpec:
    name: str
    path: Path
    weight: float = 1.0
    hash: str = ""

    @classmethod
    def from_file(cls, path: Path, weight: float = 1.0) -> LoraSpec:
        path = Path(path)
        return cls(path.stem if path.is_file() else path.name, path, float(weight), lora_hash(path))

    def key(self) -> tuple:
        stat = self.weights_file().stat()
        return (str(self.path), stat.st_size, stat.st_mtime_ns, self.weight)

    def weights_file(self) -> Path:
        return self.path / "adapter_model.safetensors" if self.path.is_dir() else self.path


def read_lora(path: Path) -> dict:
    """A LoRA's tensors as diffusers' loaders take them. A PEFT folder's keys get diffusers' `unet.` prefix and
    its alpha/rank scale folded into the up weights (PEFT keeps that scale in adapter_config.json, not the file)."""
    from safetensors.torch import load_file

    path = Path(path)
    weights = path / "adapter_model.safetensors" if path.is_dir() else path
    if not weights.is_file():
        raise UserError(f"{path}: no LoRA weights (a .safetensors file, or a PEFT folder with adapter_model.safetensors)")
    catalog.check_weights_file(weights)
    tensors = load_file(str(weights))
    if not path.is_dir():
        return tensors
    config = catalog.read_json(path / "adapter_config.json")
    rank, alpha = config.get("r", 8), config.get("lora_alpha", config.get("r", 8))
    scale = float(alpha) / float(rank)
    converted = {}
    for key, value in tensors.items():
        name = "unet." + key.removeprefix("base_model.model.")
        converted[name] = value * scale if ".lora_B." in name and scale != 1.0 else value
    return converted


# --- on a loaded model ------------------------------------------------------------------------------------------


def _components(pipe) -> dict:
    import torch

    return {name: module for name, module in pipe.components.items() if isinstance(module, torch.nn.Module)}


def _backup_base(pipe, backup: dict) -> None:
    """Copy aside the base weights of every layer an adapter wraps (once per layer)."""
    for component_name, component in _components(pipe).items():
        for module_name, module in component.named_modules():
            base = getattr(module, "base_layer", None)
            if base is None:
                continue
            for param_name, param in base.named_parameters(recurse=False):
                key = (component_name, f"{module_name}.{param_name}")
                if key not in backup:
                    backup[key] = param.detach().clone()


def restore_base(pipe, backup: dict) -> None:
    """Put the copied base weights back: the model is exactly what was loaded."""
    import torch

    components = _components(pipe)
    with torch.no_grad():
        for (component_name, param_path), value in backup.items():
            module_path, _, param_name = param_path.rpartition(".")
            module = components[component_name].get_submodule(module_path.removesuffix(".base_layer"))
            getattr(module, param_name).copy_(value)
    backup.clear()


@dataclass
class LoraState:
    """What a loaded model's weights hold now (kept on the bundle)."""

    key: tuple = ()
    fused: bool = True
    names: tuple = ()
    backup: dict | None = None
    loads: int = 0  # how many times LoRAs were loaded and fused (the fused-once saving is counted on this)


def _drop_adapters(pipe, state: LoraState) -> None:
    if state.fused and state.backup:
        restore_base(pipe, state.backup)
    elif state.names:
        pipe.unload_lora_weights()  # unfused adapters: removing their layers leaves the base weights untouched
    state.key, state.names, state.backup = (), (), None


def apply_loras(bundle, specs: list[LoraSpec], fuse: bool = True) -> bool:
    """Make the model's weights hold exactly these LoRAs at these weights. Returns True when it had to load
    (False: the same set was already in place, nothing done)."""
    state: LoraState = bundle.lora
    key = (tuple(spec.key() for spec in specs), fuse)
    if key == state.key:
        return False
    pipe = bundle.pipe
    _drop_adapters(pipe, state)
    if not specs:
        return True
    names = [f"lora{index}" for index in range(len(specs))]
    try:
        for name, spec in zip(names, specs, strict=True):
            pipe.load_lora_weights(read_lora(spec.path), adapter_name=name)
        pipe.set_adapters(names, adapter_weights=[spec.weight for spec in specs])
    except UserError:
        pipe.unload_lora_weights()
        raise
    except Exception as exc:  # diffusers/peft raise many kinds for a LoRA of another model or format
        pipe.unload_lora_weights()
        which = ", ".join(spec.name for spec in specs)
        raise UserError(f"could not apply the LoRA(s) {which} to {bundle.source.name}: {exc}") from exc
    state.names, state.fused, state.loads = tuple(names), fuse, state.loads + 1
    if fuse:
        state.backup = {}
        _backup_base(pipe, state.backup)
        pipe.fuse_lora(adapter_names=names, lora_scale=1.0)
        pipe.unload_lora_weights()  # the extra layers go; the fused weights stay
    state.key = key
    return True


# --- which files a prompt names ----------------------------------------------------------------------------------


def find_lora(name: str, recorded_hash: str = "", files=None) -> tuple[Path | None, str]:
    """The LoRA file `name` refers to (A1111: its file name, without extension), and a note when the one found is
    not the one a recipe recorded. With a recorded hash, a renamed file with that hash is found too."""
    from studio.core.model_folders import files_of_kind

    files = files_of_kind("lora") if files is None else files
    by_name = [f for f in files if f.name == name] or [f for f in files if f.name.lower() == name.lower()]
    if by_name and (not recorded_hash or lora_hash(by_name[0].model_path) == recorded_hash):
        return by_name[0].model_path, ""
    if recorded_hash:
        same = next((f for f in files if lora_hash(f.model_path) == recorded_hash), None)
        if same is not None:
            note = "" if same.name == name else f"LoRA {name}: the file with its recorded hash is {same.model_path.name}"
            return same.model_path, note
        if by_name:
            found = lora_hash(by_name[0].model_path)
            return by_name[0].model_path, (f"LoRA {name} is not the file the picture was made with (hash {found}, "
                                           f"recorded {recorded_hash})")
    return None, ""


def peft_folder_info(folder: Path) -> dict:
    """adapter_config.json of a PEFT LoRA folder (rank, alpha, targets), for the model manager."""
    try:
        return json.loads((Path(folder) / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
