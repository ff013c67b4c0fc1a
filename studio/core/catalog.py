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
A safetensors header is checked in full (`read_safetensors_header`) before any library reads the file.

No code from a model folder ever runs: a config that asks a library to run code (transformers' `auto_map`,
a diffusers custom pipeline or component) is refused by `check_no_code` when the folder is resolved, before
any library is imported, and the loaders pass every folder through `check_model_folder` and call the
libraries with `trust_remote_code=False`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from studio import media, paths
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
    kind: str  # "builtin" | "diffusers" | "transformers" | "single_file" | "hub" | "markov" | "gguf"
    path: Path | None  # local folder or file (None for a hub id not yet resolved)
    ref: str  # what the user gave
    name: str  # what the picker shows


def read_catalog() -> list[dict]:
    catalog = paths.assets_dir() / "catalog.json"
    if not catalog.exists():
        return []
    return json.loads(catalog.read_text(encoding="utf-8")).get("models", [])


def licence_notice(model_ref: str | None) -> str | None:
    """For a model whose weights forbid commercial use, the line an exported file carries (its copyright tag);
    None for any other model."""
    model = next((m for m in read_catalog() if model_ref and m.get("id") == model_ref), None)
    licence = str(model.get("licence", "")) if model else ""
    if "NON-COMMERCIAL" not in licence.upper() and "-NC" not in licence.upper():
        return None
    return f"Made with {model['name']} ({model['id']}): licence {licence}. Not for commercial use."


def builtin_names(modality: str | None = None) -> list[str]:
    return [m["id"] for m in read_catalog() if m.get("builtin") and (modality is None or m.get("modality") == modality)]


def _folder_kind(folder: Path) -> str:
    if (folder / "model_index.json").exists():
        return "diffusers"
    config = folder / "config.json"
    if config.exists():
        model_type = read_json(config).get("model_type", "")
        return media.model_types().get(model_type, "transformers")  # e.g. "studio-markov" -> "markov"
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
        check_no_code(folder)
        return ModelSource(_folder_kind(folder), folder, ref, name)
    path = Path(ref).expanduser()
    if path.is_dir():
        kind = _folder_kind(path)
        check_no_code(path)  # a folder whose configs ask to run code is refused here, before any import
        return ModelSource(kind, path, ref, path.name)
    if path.is_file() and path.suffix.lower() == ".gguf":
        check_gguf_file(path)
        return ModelSource("gguf", path, ref, path.stem)
    if path.is_file():
        check_weights_file(path)
        return ModelSource("single_file", path, ref, path.stem)
    if path.suffix or os.sep in ref.rstrip("/").rsplit("/", 1)[0]:
        raise UserError(f"model file or folder not found: {path}")
    if _HUB_ID.match(ref):
        return ModelSource("hub", None, ref, ref)
    raise UserError(f"not a model folder, file or Hugging Face id: {ref!r}")


def check_gguf_file(path: Path) -> dict:
    """A GGUF file's header, read and checked by us (core/gguf_file.py) before llama.cpp sees the file; returns its
    metadata. GGUF holds data only (no pickles, no code); the chat template it may carry is rendered in a sandboxed
    Jinja environment (engine/text/llama.py)."""
    from studio.core.gguf_file import GGUFError, read_metadata

    try:
        return read_metadata(path)
    except GGUFError as exc:
        raise CorruptModelError(f"{Path(path).name} is not a GGUF file llama.cpp can read: {exc}") from exc
    except OSError as exc:
        raise UserError(f"{Path(path).name}: cannot be read ({exc.strerror or exc})") from exc


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
    """Refuse pickles; check a safetensors file's header in full (see `read_safetensors_header`). Reads only the
    header: fast on GBs. Every loader passes each weights file through here before any library reads it."""
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
    read_safetensors_header(path)


# Bits per element of every dtype the safetensors format defines (its Dtype enum).
SAFETENSORS_DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
}
_U64_MAX = 2**64 - 1  # the format's integers (and the reader's sizes) are 64-bit: a larger value overflows there


def read_safetensors_header(path: Path) -> dict:
    """The tensors a safetensors file declares, {name: {"dtype", "shape", "data_offsets"}} (without
    `__metadata__`), after checking the header the way the format defines it, so that no library ever
    meets a header it would choke on (or trust):

    - the length prefix is sane (at most 100 MB) and the header lies inside the file;
    - the header is a JSON object; `__metadata__`, if present, maps strings to strings;
    - each tensor has a known dtype, a shape of non-negative integers and two integer offsets, begin <= end;
    - shape x dtype size equals the tensor's span (computed exactly: no overflow);
    - sorted by offset, the tensors tile the data area from 0 without gap or overlap and end exactly
      where the file ends.

    Raises CorruptModelError naming the file and what is wrong with it.
    """
    path = Path(path)

    def damaged(why: str) -> CorruptModelError:
        return CorruptModelError(f"{path}: damaged safetensors header ({why})")

    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CorruptModelError(f"{path}: truncated safetensors file ({size} bytes, not even a header length)")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > _MAX_SAFETENSORS_HEADER:
            raise damaged(f"its length field says {header_len:,} bytes, above the format's limit of 100 MB")
        raw = handle.read(header_len)
    if len(raw) < header_len:
        raise CorruptModelError(
            f"{path}: truncated safetensors file (header cut short: {size:,} bytes, the header alone needs "
            f"{8 + header_len:,})"
        )
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise damaged(f"not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise damaged(f"a JSON {type(header).__name__}, not an object of tensors")
    metadata = header.pop("__metadata__", None)
    if metadata is not None and (
        not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values())
    ):
        raise damaged("__metadata__ must map names to strings")

    spans = [_tensor_span(name, entry, damaged) for name, entry in header.items()]
    _check_tiling(path, spans, size - 8 - header_len, 8 + header_len, damaged)
    return header


def _tensor_span(name: str, entry, damaged) -> tuple[int, int, str]:
    """(begin, end, name) of one header entry, once its offsets, dtype and shape agree with each other."""
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(v) for v in offsets):
        raise damaged(f"tensor {name!r} has no valid data offsets (two whole numbers)")
    begin, end = offsets
    if begin > end:
        raise damaged(f"tensor {name!r} has reversed data offsets [{begin}, {end}]")
    dtype, shape = entry.get("dtype"), entry.get("shape")
    if dtype not in SAFETENSORS_DTYPE_BITS:
        raise damaged(f"tensor {name!r} has an unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise damaged(f"tensor {name!r} has an invalid shape {shape!r} (a list of whole numbers >= 0)")
    bits = SAFETENSORS_DTYPE_BITS[dtype]
    for dim in shape:
        bits *= dim
        if bits > 8 * _U64_MAX:
            raise damaged(f"tensor {name!r}: shape {shape} of {dtype} overflows (more bytes than 2^64)")
    if bits % 8 or bits // 8 != end - begin:
        raise damaged(f"tensor {name!r}: shape {shape} of {dtype} is {bits / 8:,g} bytes, but its data offsets "
                      f"[{begin}, {end}] span {end - begin:,}")
    return begin, end, name


def _check_tiling(path: Path, spans: list, data_size: int, data_start: int, damaged) -> None:
    """Sorted by offset, the tensors must tile the data area from 0, without gap or overlap, to the file's end."""
    size = data_start + data_size
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            what = "overlaps the one before it" if begin < position else f"leaves a gap of {begin - position:,} bytes"
            raise damaged(f"tensor {name!r} at data offsets [{begin}, {end}] {what}")
        position = end
    if position > data_size:
        raise CorruptModelError(
            f"{path}: truncated safetensors file ({size:,} bytes, its header promises {data_start + position:,})"
        )
    if position < data_size:
        raise damaged(f"{data_size - position:,} bytes after the last tensor that no tensor covers")


def _is_count(value) -> bool:
    """A JSON whole number >= 0 that fits the format's 64-bit fields (True/False are not numbers here)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _U64_MAX


def check_weights_folder(folder: Path) -> None:
    """Every weights file under a model folder must be safetensors with a sound header; pickles are refused.
    (Loaders call `check_model_folder`, which runs this after checking the configs.)"""
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


# --- configs: never run code from a model folder ------------------------------------------------------

_MAX_CONFIG_BYTES = 32 * 2**20  # configs are kB; tokenizer configs with chat templates a few hundred kB
NEVER_RUNS_CODE = "Latent Studio never runs code from a model folder"


def read_json(path: Path) -> dict:
    """A model folder's JSON file (config.json, model_index.json, …) as a dict. Anything else is a
    CorruptModelError that names the file and says what is wrong in words ("…/model_index.json is not valid
    JSON (empty file)"), never a bare `Expecting value: line 1 column 1 (char 0)`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > _MAX_CONFIG_BYTES:
            raise CorruptModelError(f"{path} is too large for a configuration file ({size:,} bytes)")
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not raw.strip():
        raise CorruptModelError(f"{path} is not valid JSON (empty file)")
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise CorruptModelError(f"{path} is not valid JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise CorruptModelError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise CorruptModelError(f"{path} is not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        kind = {list: "a list", str: "a string", type(None): "null"}.get(type(data), "a number")
        raise CorruptModelError(f"{path} is not a JSON object (it holds {kind})")
    return data


def config_files(folder: Path) -> list[Path]:
    """The JSON configs a library reads from a model folder: model_index.json and every *config.json
    (config, tokenizer_config, preprocessor_config, generation_config, scheduler_config, …), in the folder
    and in its component subfolders (unet/, text_encoder/, tokenizer/, …)."""
    folder = Path(folder)
    found = []
    for directory in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        for path in sorted(directory.glob("*.json")):
            if path.name == "model_index.json" or path.name.endswith("config.json"):
                found.append(path)
    return found


def check_no_code(folder: Path) -> None:
    """Refuse a model folder whose configs ask a library to run code: transformers' `auto_map` (config,
    tokenizer, processor), a diffusers custom pipeline (`_class_name` as [module, class], `custom_pipeline`)
    or a component taken from a .py module in the folder or from another hub repository.

    Reads the small JSON configs only (no imports, milliseconds): `resolve` calls it, so such a folder is
    refused before torch, transformers or diffusers are even imported. The loaders also pass
    `trust_remote_code=False`, so a library would refuse too, but only after asking on a terminal.
    """
    folder = Path(folder)
    for path in config_files(folder):
        data = read_json(path)
        _refuse_auto_map(path, data)
        if "custom_pipeline" in data:
            raise UnsafeModelError(
                f"{path} asks to run a custom pipeline's code (custom_pipeline); {NEVER_RUNS_CODE}"
            )
        if path.name == "model_index.json" or "_class_name" in data:
            _refuse_custom_classes(path, data)


def _refuse_auto_map(path: Path, data: dict) -> None:
    auto_map = data.get("auto_map")
    if not auto_map:
        return
    refs = auto_map.values() if isinstance(auto_map, dict) else [auto_map]
    flat = [r for ref in refs for r in (ref if isinstance(ref, list) else [ref]) if isinstance(r, str)]
    repos = sorted({ref.split("--", 1)[0] for ref in flat if "--" in ref})
    if repos:  # "org/repo--module.Class": code from another hub repository (named, never linked)
        raise UnsafeModelError(
            f"{path} asks to run code from another Hugging Face repository, {', '.join(repos)} (auto_map); "
            f"{NEVER_RUNS_CODE} or from a repository it names"
        )
    raise UnsafeModelError(f"{path} asks to run code shipped with the model (auto_map); {NEVER_RUNS_CODE}")


def _diffusers_pipeline_module(name: str) -> bool:
    """Whether `name` is a subpackage of diffusers.pipelines (old model_index files name e.g.
    ["stable_diffusion", "StableDiffusionSafetyChecker"]). Looks at the installed files: imports nothing."""
    import importlib.util

    if not name.isidentifier():
        return False
    spec = importlib.util.find_spec("diffusers")
    for location in (spec.submodule_search_locations or []) if spec else []:
        pipelines = Path(location) / "pipelines"
        if (pipelines / name / "__init__.py").is_file() or (pipelines / f"{name}.py").is_file():
            return True
    return False


def _refuse_custom_classes(path: Path, data: dict) -> None:
    """model_index.json (or a component config naming its class): every class must come from diffusers or
    transformers, never from a module in the folder or a repository."""
    folder = path.parent
    class_name = data.get("_class_name")
    if isinstance(class_name, list):
        module = class_name[0] if class_name and isinstance(class_name[0], str) else "?"
        raise UnsafeModelError(
            f"{path} names a custom pipeline ({module}.py, _class_name {class_name}); {NEVER_RUNS_CODE}"
        )
    if class_name is not None and (not isinstance(class_name, str) or not class_name.isidentifier()):
        raise CorruptModelError(f"{path}: _class_name {class_name!r} is not a class name")
    if path.name != "model_index.json":
        return
    for component, value in data.items():
        if component.startswith("_") or not isinstance(value, list):
            continue  # "_diffusers_version", "requires_safety_checker": true, …
        if len(value) != 2:
            raise CorruptModelError(f"{path}: component {component!r} should be [library, class], not {value!r}")
        library, name = value
        if library is None and name is None:
            continue  # an optional component left out
        if not isinstance(library, str) or not isinstance(name, str):
            raise CorruptModelError(f"{path}: component {component!r} should be [library, class], not {value!r}")
        if "/" in library:
            raise UnsafeModelError(
                f"{path}: component {component!r} asks for code from the repository {library}; {NEVER_RUNS_CODE} "
                "or from a repository it names"
            )
        module_files = [folder / component / f"{library}.py", folder / f"{library}.py"]
        shipped = next((f for f in module_files if f.is_file()), None)
        if shipped is not None:
            raise UnsafeModelError(
                f"{path}: component {component!r} asks to run code shipped with the model "
                f"({shipped.relative_to(folder)}); {NEVER_RUNS_CODE}"
            )
        if library not in ("diffusers", "transformers") and not _diffusers_pipeline_module(library):
            raise UnsafeModelError(
                f"{path}: component {component!r} comes from the Python module {library!r}, not from diffusers or "
                f"transformers; {NEVER_RUNS_CODE}"
            )
        if not name.isidentifier():
            raise CorruptModelError(f"{path}: component {component!r} names {name!r}, which is not a class name")


def check_model_folder(folder: Path, library: str | None = None) -> None:
    """The gate every model folder passes before a library reads it: its configs are valid JSON and ask to
    run no code (`check_no_code`), its weights are safetensors with sound headers (`check_weights_folder`).

    `library` ("transformers" | "diffusers"), where that library is about to load the folder: the names in
    the configs must also be ones it knows (an unknown transformers `model_type` is where transformers would
    otherwise look for code to run). This imports the library, so it is meant for the loaders.
    """
    folder = Path(folder)
    check_no_code(folder)
    if library == "transformers":
        _check_transformers_names(folder)
    elif library == "diffusers":
        _check_diffusers_names(folder)
    check_weights_folder(folder)


def _check_transformers_names(folder: Path) -> None:
    config = folder / "config.json"
    if not config.is_file():
        return
    model_type = read_json(config).get("model_type")
    if model_type is None:
        return
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    if model_type not in CONFIG_MAPPING_NAMES:
        import transformers

        raise UserError(
            f"{config}: model_type {model_type!r} is not an architecture transformers {transformers.__version__} "
            f"knows, and code shipped with the model to fill the gap is never run: {NEVER_RUNS_CODE}"
        )


def _library_has(library: str, name: str) -> bool:
    """Whether `library` (diffusers, transformers or a diffusers pipelines subpackage) exports class `name`.
    Only a plain absence counts: a class whose optional dependency is missing is left for the library to report."""
    import importlib

    module_name = library if library in ("diffusers", "transformers") else f"diffusers.pipelines.{library}"
    try:
        module = importlib.import_module(module_name)
        getattr(module, name)
    except AttributeError:
        if library == "transformers":  # diffusers maps renamed transformers classes (CLIPFeatureExtractor, …)
            try:
                from diffusers.pipelines.pipeline_loading_utils import _maybe_remap_transformers_class

                renamed = _maybe_remap_transformers_class(name)
            except ImportError:
                renamed = None
            if renamed and renamed != name:
                return _library_has(library, renamed)
        return False
    except Exception:  # noqa: BLE001 - e.g. an optional dependency missing: not ours to judge here
        return True
    return True


def _check_diffusers_names(folder: Path) -> None:
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        return
    index = read_json(index_path)
    class_name = index.get("_class_name")
    if isinstance(class_name, str) and not _library_has("diffusers", class_name):
        raise UnsafeModelError(f"{index_path}: {class_name} is not a diffusers pipeline; {NEVER_RUNS_CODE}")
    for component, value in index.items():
        if component.startswith("_") or not isinstance(value, list) or value == [None, None]:
            continue
        library, name = value
        if not _library_has(library, name):
            raise UnsafeModelError(
                f"{index_path}: component {component!r} is {name}, which is not a {library} class; {NEVER_RUNS_CODE}"
            )


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
