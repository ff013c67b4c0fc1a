"""Where models come from, and loading them safely.

A model source is one of:
  builtin:NAME        a folder in the app's models/ (see assets/catalog.json)
  /path/to/folder     a diffusers folder (model_index.json) or a transformers folder (config.json)
  /path/to/x.safetensors   a single-file checkpoint (A1111 / Civitai style)
  org/name            a Hugging Face id, taken from the user's hub cache (downloaded only when online)

Safety: weights are read from safetensors only. A pickle (.ckpt/.pt/.bin, or a pickle renamed
.safetensors) is recognised by its first bytes and refused: unpickling runs arbitrary code.
`convert_pickle_to_safetensors` is the explicit, opt-in way out and uses
`torch.load(weights_only=True)`, which refuses to build arbitrary objects.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from studio import paths
from studio.core.jobs import UserError

BUILTIN_PREFIX = "builtin:"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")

# First bytes of the formats torch.save / pickle produce.
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save since 1.6 writes a zip archive of pickles
_PICKLE_PROTOCOLS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_MAX_SAFETENSORS_HEADER = 100 * 2**20  # the format's own limit on the JSON header


class UnsafeModelError(UserError):
    pass


class CorruptModelError(UserError):
    pass


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "builtin" | "diffusers" | "transformers" | "single_file" | "hub" | "markov"
    path: Path | None  # local folder or file (None for a hub id not yet resolved)
    ref: str  # what the user gave
    name: str  # what the picker shows


def read_catalog() -> list[dict]:
    catalog = paths.assets_dir() / "catalog.json"
    if not catalog.exists():
        return []
    return json.loads(catalog.read_text(encoding="utf-8")).get("models", [])


def builtin_names(modality: str | None = None) -> list[str]:
    return [m["id"] for m in read_catalog() if m.get("builtin") and (modality is None or m.get("modality") == modality)]


def _folder_kind(folder: Path) -> str:
    if (folder / "model_index.json").exists():
        return "diffusers"
    config = folder / "config.json"
    if config.exists():
        try:
            model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type", "")
        except (OSError, json.JSONDecodeError) as exc:
            raise CorruptModelError(f"{config}: config.json is not valid JSON ({exc})") from exc
        return "markov" if model_type == "studio-markov" else "transformers"
    raise UserError(f"{folder} is not a model folder: it has neither model_index.json (diffusers) nor config.json (transformers)")


def resolve(ref: str) -> ModelSource:
    """Turn what the user typed or picked into a ModelSource. Raises UserError with a clear text."""
    ref = (ref or "").strip()
    if not ref:
        raise UserError("no model chosen")
    if ref.startswith(BUILTIN_PREFIX):
        name = ref[len(BUILTIN_PREFIX) :]
        folder = paths.builtin_model_dir(name)
        if not folder.is_dir() or not any(folder.iterdir()):
            raise UserError(
                f"the built-in model '{name}' is missing from {paths.models_dir()}: "
                "it is trained by `python -m studio.training` and ships with the app"
            )
        return ModelSource(_folder_kind(folder), folder, ref, name)
    path = Path(ref).expanduser()
    if path.is_dir():
        return ModelSource(_folder_kind(path), path, ref, path.name)
    if path.is_file():
        check_weights_file(path)
        return ModelSource("single_file", path, ref, path.stem)
    if path.suffix or os.sep in ref.rstrip("/").rsplit("/", 1)[0]:
        raise UserError(f"model file or folder not found: {path}")
    if _HUB_ID.match(ref):
        return ModelSource("hub", None, ref, ref)
    raise UserError(f"not a model folder, file or Hugging Face id: {ref!r}")


def sniff_format(path: Path) -> str:
    """'safetensors', 'pickle' or 'unknown', from the file's bytes (never its name)."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head.startswith(_ZIP_MAGIC) or head[:2] in _PICKLE_PROTOCOLS:
        return "pickle"
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if 2 <= header_len <= _MAX_SAFETENSORS_HEADER and head[8:9] == b"{":
            return "safetensors"
    return "unknown"


def check_weights_file(path: Path) -> None:
    """Refuse pickles; check a safetensors file is whole. Reads only the header: fast on GBs."""
    path = Path(path)
    kind = sniff_format(path)
    if kind == "pickle":
        raise UnsafeModelError(
            f"{path.name} is a pickle checkpoint (whatever its extension says). Loading a pickle can run "
            "code hidden in it, so Latent Studio only loads .safetensors. If you trust the file, convert it "
            "with: python -m studio convert-checkpoint " + str(path)
        )
    if kind != "safetensors":
        raise CorruptModelError(f"{path}: not a safetensors file (unrecognised header)")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        raw = handle.read(header_len)
    if len(raw) < header_len:
        raise CorruptModelError(f"{path}: truncated safetensors file (header cut short)")
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptModelError(f"{path}: damaged safetensors header ({exc})") from exc
    try:
        end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise CorruptModelError(f"{path}: damaged safetensors header (a tensor entry without valid data offsets)") from exc
    if 8 + header_len + end > size:
        raise CorruptModelError(
            f"{path}: truncated safetensors file ({size:,} bytes, its header promises {8 + header_len + end:,})"
        )


def check_weights_folder(folder: Path) -> None:
    """Every weights file under a model folder must be safetensors; pickles are refused."""
    folder = Path(folder)
    weights = [p for p in folder.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin", ".ckpt", ".pt", ".pth")]
    safe = [p for p in weights if p.suffix == ".safetensors"]
    unsafe = [p for p in weights if p.suffix != ".safetensors"]
    if unsafe and not safe:
        raise UnsafeModelError(
            f"{folder} holds only pickle weights ({', '.join(p.name for p in unsafe[:3])}). "
            "Latent Studio loads safetensors only; convert them first (python -m studio convert-checkpoint FILE)."
        )
    for path in safe:
        check_weights_file(path)


def content_hash(path: Path) -> str:
    """A1111-style short hash: sha256 of a file (or of a folder's safetensors), 10 hex chars.

    Cached by (path, size, mtime) because hashing a 2 GB checkpoint takes seconds.
    """
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.rglob("*.safetensors"))
    key = "|".join(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    cache_file = paths.cache_dir() / "model_hashes.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, json.JSONDecodeError):
        cache = {}
    if key in cache:
        return cache[key]
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(2**22), b""):
                digest.update(block)
    value = digest.hexdigest()[:10]
    cache[key] = value
    try:
        cache_file.write_text(json.dumps(cache))
    except OSError:
        pass  # a hash we cannot cache is still a hash
    return value


def convert_pickle_to_safetensors(src: Path, dst: Path | None = None) -> Path:
    """Opt-in conversion for a pickle the user trusts. weights_only=True builds tensors only."""
    import torch
    from safetensors.torch import save_file

    src = Path(src)
    if dst is None:  # never over the source: a pickle named .safetensors would be overwritten by its own copy
        dst = src.with_suffix(".safetensors") if src.suffix != ".safetensors" else src.with_name(src.stem + ".converted.safetensors")
    dst = Path(dst)
    try:
        # an open file, not a path: torch.load reads a path named *.safetensors as safetensors, not as the
        # pickle it is (the case the "is a pickle" message sends users here for)
        with open(src, "rb") as handle:
            data = torch.load(handle, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, … for refused content
        raise UnsafeModelError(f"{src.name}: refused by the safe loader ({exc})") from exc
    tensors = _tensors_in(data)
    if not tensors:
        raise CorruptModelError(f"{src.name}: no tensors inside, nothing to convert")
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(dst))
    except Exception as exc:  # safetensors raises its own error for an unwritable path
        raise UserError(f"cannot write {dst}: {exc}") from exc
    return dst


def _tensors_in(data) -> dict:
    """Every tensor in a checkpoint. A training checkpoint's weights under "state_dict"/"model"/"module" are
    taken from there (its optimiser state left out); other nested dicts are flattened with dots."""
    if isinstance(data, dict):
        for wrapper in ("state_dict", "model", "module"):
            inner = _flatten(data.get(wrapper))
            if inner:
                return inner
    return _flatten(data)


def _flatten(data, prefix: str = "") -> dict:
    import torch

    if isinstance(data, torch.Tensor):
        return {prefix[:-1] or "tensor": data}
    found = {}
    if isinstance(data, dict):
        for key, value in data.items():
            found.update(_flatten(value, f"{prefix}{key}."))
    return found
