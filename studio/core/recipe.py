"""Recipe: everything needed to make an output again, as versioned JSON.

Also the writer and reader of AUTOMATIC1111's `parameters` text, the de-facto
standard that A1111, Forge, Fooocus (in its A1111 scheme), Civitai and image
viewers read from a PNG's text chunk:

    a prompt, possibly
    over several lines
    Negative prompt: things to avoid
    Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512

The last line is a list of `Key: value` pairs; a value holding `,` `:` or a newline
is written JSON-quoted (A1111's own `quote` in modules/infotext_utils.py). A1111 treats
that line as parameters only when it has at least 3 pairs, and so do we.

Other tools' sampler names (A1111, Fooocus, ComfyUI, NovelAI, InvokeAI) map to ours through one
table, `map_sampler`; what has no mapping is kept and said (`ParsedParameters.notes`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from studio import media

RECIPE_VERSION = 1
MAX_SEED = 2**32 - 1  # the range random seeds are drawn from (as A1111 draws them)
SEED_LIMIT = 2**64 - 1  # the largest seed a file may hold: A1111, Fooocus and ComfyUI write up to 2**64 - 1
RANDOM_SEED = -1  # a panel's seed value meaning "draw a new one each run" (the seed drawn is recorded)


class RecipeError(ValueError):
    """The text could not be read as a recipe; the message says why."""


def parse_seed(value: Any) -> int:
    """A seed from a file, every digit kept (never through a float): 0 .. 2**64 - 1. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"not a seed: {value!r}")
    if isinstance(value, int):
        seed = value
    else:
        text = str(value).strip()
        try:
            number = Decimal(text)  # "4.0" and "6952411511246973023" alike, exactly
        except InvalidOperation as exc:
            raise ValueError(f"not a seed: {text[:40]!r}") from exc
        if not number.is_finite() or number != number.to_integral_value():
            raise ValueError(f"not a whole-number seed: {text[:40]!r}")
        seed = int(number)
    if not 0 <= seed <= SEED_LIMIT:
        raise ValueError(f"seed {seed} is outside 0 .. 2^64 - 1")
    return seed


@dataclass(frozen=True)
class Recipe:
    modality: str
    prompt: str = ""
    negative_prompt: str = ""
    model: str = ""  # "builtin:emoji-ldm", a folder, a .safetensors file or a hub id
    model_hash: str = ""  # short content hash of the weights (A1111 style, 10 hex chars)
    seed: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)  # steps, guidance, temperature, …
    device: str = ""  # device and dtype the output was made with: part of "same output"
    dtype: str = ""
    parents: tuple[int, ...] = ()  # history ids this output was bred or derived from
    version: int = RECIPE_VERSION

    def with_params(self, **changes: Any) -> Recipe:
        return replace(self, params={**self.params, **changes})

    def param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"studio_recipe": self.version}
        for f in fields(self):
            if f.name == "version":
                continue
            value = getattr(self, f.name)
            data[f.name] = list(value) if isinstance(value, tuple) else value
        data["params"] = dict(self.params)
        return data

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        if not isinstance(data, Mapping):
            raise RecipeError("a recipe must be a JSON object")
        version = data.get("studio_recipe")
        if version != RECIPE_VERSION:
            raise RecipeError(f"unknown recipe version {version!r} (this app reads {RECIPE_VERSION})")
        modality = data.get("modality")
        if modality not in media.modalities():
            raise RecipeError(f"unknown modality {modality!r}")
        params = data.get("params", {})
        if not isinstance(params, Mapping):
            raise RecipeError("recipe params must be an object")
        try:
            return cls(
                modality=modality,
                prompt=str(data.get("prompt", "")),
                negative_prompt=str(data.get("negative_prompt", "")),
                model=str(data.get("model", "")),
                model_hash=str(data.get("model_hash", "")),
                seed=int(data.get("seed", 0)),
                params=dict(params),
                device=str(data.get("device", "")),
                dtype=str(data.get("dtype", "")),
                parents=tuple(int(p) for p in data.get("parents", ())),
            )
        except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: int(inf)
            raise RecipeError(f"bad recipe field: {' '.join(str(exc).split())[:200]}") from exc

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        try:
            data = json.loads(text)
        except (TypeError, ValueError, RecursionError) as exc:  # ValueError: an int of over 4,300 digits
            raise RecipeError(f"not a readable recipe: {type(exc).__name__}: {str(exc)[:200]}") from exc
        return cls.from_dict(data)


# --- AUTOMATIC1111 `parameters` ------------------------------------------------------------

# Our scheduler names <-> A1111's "Sampler" + "Schedule type" pair.
A1111_SAMPLERS = {
    "ddim": ("DDIM", None),
    "euler": ("Euler", None),
    "euler_a": ("Euler a", None),
    "dpmpp_2m": ("DPM++ 2M", None),
    "dpmpp_2m_karras": ("DPM++ 2M", "Karras"),
    "unipc": ("UniPC", None),
    "lcm": ("LCM", None),
    "pndm": ("PLMS", None),
    "heun": ("Heun", None),
    "lms": ("LMS", None),
}
DEFAULT_SAMPLER = "euler_a"  # = engine.image.schedulers.DEFAULT_SCHEDULER

# Recipe param <-> A1111 key for the plain numeric/text settings.
A1111_KEYS = {
    "steps": "Steps",
    "guidance": "CFG scale",
    "strength": "Denoising strength",
    "variation_seed": "Variation seed",
    "variation_strength": "Variation seed strength",
    "clip_skip": "Clip skip",
    "guidance_start": "Guidance start",  # ours (A1111 keeps a key it does not know in the text, and so do we)
    "variety": "Variety",  # ours: CADS's noise scale (studio/engine/image/guidance.py)
}
_SEED_KEYS = ("Seed", "Variation seed")

# One `Key: value` pair; the value is JSON-quoted, an unquoted `{…}` object (some tools write `Hashes: {…}`
# unquoted) or runs to the next comma. Same shape as A1111's own `re_param` in modules/infotext_utils.py.
_PAIR = re.compile(r'\s*([\w][\w \-/]*?):\s*("(?:\\.|[^\\"])*"|\{[^{}]*\}(?=\s*(?:,|$))|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^\s*(\d+)\s*[x×]\s*(\d+)\s*$")


# --- other tools' sampler names -> ours: the one alias table -----------------------------------------------

# A sampler name normalised by `_sampler_key` (lower case, "++" -> "pp", spaces and dashes -> "_", NovelAI's "k_"
# prefix and ComfyUI's "_gpu" suffix dropped) -> our name. A1111 "DPM++ 2M", ComfyUI/Fooocus "dpmpp_2m",
# NovelAI "k_dpmpp_2m" and InvokeAI "dpmpp_2m" all meet here.
SAMPLER_ALIASES: dict[str, str] = {
    "ddim": "ddim", "ddim_v3": "ddim",
    "euler": "euler",
    "euler_a": "euler_a", "euler_ancestral": "euler_a",
    "dpmpp_2m": "dpmpp_2m",
    "unipc": "unipc", "uni_pc": "unipc", "uni_pc_bh2": "unipc",
    "lcm": "lcm",
    "plms": "pndm", "pndm": "pndm",
    "heun": "heun",
    "lms": "lms",
}
# Samplers we have no scheduler for -> the nearest one we have; loading says which was chosen.
NEAREST_SAMPLER: dict[str, str] = {
    "dpmpp_2m_sde": "dpmpp_2m", "dpmpp_2m_sde_heun": "dpmpp_2m", "dpmpp_3m_sde": "dpmpp_2m", "dpmpp_sde": "dpmpp_2m",
    "dpmpp_2s": "dpmpp_2m", "dpmpp_2s_a": "euler_a", "dpmpp_2s_ancestral": "euler_a", "dpmpp_2m_cfg_pp": "dpmpp_2m",
    "dpm_2": "heun", "dpm2": "heun", "kdpm_2": "heun", "dpm_2_a": "euler_a", "dpm2_a": "euler_a",
    "dpm_2_ancestral": "euler_a", "kdpm_2_a": "euler_a", "dpm_fast": "dpmpp_2m", "dpm_adaptive": "dpmpp_2m",
    "deis": "unipc", "ipndm": "pndm", "ipndm_v": "pndm", "ddpm": "ddim", "heunpp2": "heun", "restart": "heun",
    "euler_cfg_pp": "euler", "euler_ancestral_cfg_pp": "euler_a", "euler_a_cfg_pp": "euler_a", "tcd": "lcm",
}
# Schedules that are what our samplers do anyway (A1111 "Automatic", ComfyUI "normal", NovelAI "native").
_PLAIN_SCHEDULES = {"", "automatic", "normal", "native", "default", "uniform", "none"}


@dataclass(frozen=True)
class SamplerChoice:
    scheduler: str  # ours
    schedule_kept: str | None  # a schedule from the file we could not apply (shown and kept, not used)
    notes: tuple[str, ...]  # what was chosen instead, in words


def sampler_label(name: str) -> str:
    sampler, schedule = A1111_SAMPLERS.get(name, (name, None))
    return f"{sampler} {schedule}" if schedule else str(sampler)


def _sampler_key(name: str) -> str:
    key = re.sub(r"[\s\-.]+", "_", str(name).strip().lower().replace("++", "pp").replace("+", "p"))
    key = key[2:] if key.startswith("k_") else key
    return key[: -len("_gpu")] if key.endswith("_gpu") else key


def map_sampler(sampler: str, schedule: str | None = None) -> SamplerChoice:
    """Another tool's sampler (and schedule) -> ours. A name we have no scheduler for maps to the nearest we have,
    an unknown one to the default; either way the notes say what was chosen instead."""
    raw = str(sampler).strip()
    key = _sampler_key(raw)
    schedule_text = str(schedule or "").strip()
    sched = schedule_text.lower().replace(" ", "_")
    for suffix in ("_karras", "_exponential", "_polyexponential"):  # A1111's old one-field names
        if key.endswith(suffix):
            key, sched, schedule_text = key[: -len(suffix)], sched or suffix[1:], schedule_text or suffix[1:].title()
    if key.endswith("_k") and (key[:-2] in SAMPLER_ALIASES or key[:-2] in NEAREST_SAMPLER):  # InvokeAI "dpmpp_2m_k"
        key, sched, schedule_text = key[:-2], sched or "karras", schedule_text or "Karras"
    notes: list[str] = []
    if key in SAMPLER_ALIASES:
        ours = SAMPLER_ALIASES[key]
    elif key in NEAREST_SAMPLER:
        ours = NEAREST_SAMPLER[key]
        notes.append(f"Sampler {raw!r} is not available here: using {sampler_label(ours)} instead.")
    else:
        ours = DEFAULT_SAMPLER
        notes.append(f"Unknown sampler {raw!r}: using {sampler_label(ours)} instead.")
    kept = None
    if sched == "karras" and f"{ours}_karras" in A1111_SAMPLERS:
        ours = f"{ours}_karras"
    elif sched not in _PLAIN_SCHEDULES:
        kept = schedule_text
        notes.append(f"Schedule {schedule_text!r} is not available with {sampler_label(ours)}: kept for reference, "
                     "the sampler's own schedule is used.")
    return SamplerChoice(ours, kept, tuple(notes))


def _quote(value: Any) -> str:
    """A1111's `quote`: JSON-quote a value only if it holds a comma, a colon or a newline (or would read back as
    quoted)."""
    text = str(value)
    if any(ch in text for ch in ",:\n") or text.startswith('"'):
        return json.dumps(text, ensure_ascii=False)
    return text


def _number_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_BUILTIN = "builtin:"


def _model_name_out(model: str) -> str:
    # A1111's `Model` is a checkpoint's name: "builtin:emoji-ldm" is written "emoji-ldm" (a colon would make it
    # quoted, and readers that split on ": " lose it). Our own recipe chunk keeps the full reference.
    return model[len(_BUILTIN) :] if model.startswith(_BUILTIN) else model


def _model_name_in(name: str) -> str:
    if name and not any(ch in name for ch in "/\\:.") and f"{_BUILTIN}{name}" in _builtin_models():
        return f"{_BUILTIN}{name}"
    return name


def _builtin_models() -> list[str]:
    # core.catalog's builtin_names, read here without importing it (catalog -> jobs -> recipe would be a circle)
    from studio import paths

    try:
        models = json.loads((paths.assets_dir() / "catalog.json").read_text(encoding="utf-8")).get("models", [])
        return [str(m["id"]) for m in models if isinstance(m, dict) and m.get("builtin") and "id" in m]
    except (OSError, ValueError, AttributeError):  # a missing or damaged catalog only means no name is builtin
        return []


def a1111_parameters(recipe: Recipe, extra: Mapping[str, Any] | None = None) -> str:
    """The A1111 `parameters` text for an image recipe. `extra` (default: the recipe's `kept` param): pairs read from
    another tool's file and kept (an unsupported `Schedule type`, hashes, …), written back as they were."""
    pairs: list[tuple[str, Any]] = []
    p = recipe.params
    kept = p.get("kept")
    extra = dict(extra if extra is not None else (kept if isinstance(kept, Mapping) else {}))
    if "steps" in p:
        pairs.append(("Steps", p["steps"]))
    sampler, schedule = A1111_SAMPLERS.get(str(p.get("scheduler", "")), (p.get("scheduler"), None))
    if sampler:
        pairs.append(("Sampler", sampler))
    schedule = schedule or extra.pop("Schedule type", None)
    if schedule:
        pairs.append(("Schedule type", schedule))
    if "guidance" in p:
        pairs.append(("CFG scale", _number_text(p["guidance"])))
    pairs.append(("Seed", recipe.seed))
    if "width" in p and "height" in p:
        pairs.append(("Size", f"{p['width']}x{p['height']}"))
    if recipe.model_hash:
        pairs.append(("Model hash", recipe.model_hash))
    if recipe.model:
        pairs.append(("Model", _model_name_out(recipe.model)))
    for key in ("strength", "variation_seed", "variation_strength", "clip_skip", "guidance_start", "variety"):
        if p.get(key) not in (None, "") and not (key in ("guidance_start", "variety") and not p[key]):
            pairs.append((A1111_KEYS[key], _number_text(p[key])))
    for key, read, label in (("loras", "lora_hashes", "Lora hashes"), ("embeddings", "ti_hashes", "TI hashes")):
        recorded = p.get(read) if isinstance(p.get(read), dict) else {}  # read from a file, not regenerated yet
        hashes = _hash_list(p.get(key)) or _hash_list([{"name": k, "hash": v} for k, v in recorded.items()])
        if hashes:
            pairs.append((label, hashes))
    written = {k for k, _v in pairs}
    pairs.extend((k, v) for k, v in extra.items() if k not in written and k != "Version")
    pairs.append(("Version", "Latent Studio"))
    lines = [recipe.prompt]
    if recipe.negative_prompt:
        lines.append(f"Negative prompt: {recipe.negative_prompt}")
    lines.append(", ".join(f"{k}: {_quote(v)}" for k, v in pairs))
    return "\n".join(lines)


def _hash_list(items: Any) -> str:
    """A1111's `Lora hashes` / `TI hashes` value: "name: hash, name: hash" (names without ':' or ',')."""
    if not isinstance(items, list):
        return ""
    parts = []
    for item in items:
        if isinstance(item, dict) and item.get("name") and item.get("hash"):
            name = str(item["name"]).replace(":", "").replace(",", "")
            parts.append(f"{name}: {item['hash']}")
    return ", ".join(parts)


def _read_hash_list(value: str) -> dict[str, str]:
    found = {}
    for part in value.split(","):
        name, _, digest = part.rpartition(":")
        if name.strip() and digest.strip():
            found[name.strip()] = digest.strip()
    if not found:
        raise ValueError(value)
    return found


@dataclass(frozen=True)
class ParsedParameters:
    recipe: Recipe
    unknown: dict[str, str]  # keys we do not map; kept so the UI can show them (and a writer can write them back)
    notes: tuple[str, ...] = ()  # what was mapped to something else, chosen instead or left out, in words
    source: str = ""  # the tool that wrote the file, when known ("A1111", "Fooocus", "NovelAI", "ComfyUI", …)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            return str(json.loads(value))
        except json.JSONDecodeError:
            return value[1:-1]
    return value


def _pairs(line: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for match in _PAIR.finditer(line):
        key, value = match.group(1).strip(), match.group(2)
        if key:
            found[key] = _unquote(value)
    return found


def _looks_like_parameter_line(line: str) -> bool:
    return len(_pairs(line)) >= 3


def _to_number(text: str) -> int | float:
    number = float(text)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"not a finite number: {text!r}")
    return int(number) if number.is_integer() and "." not in text else number


def parse_a1111_parameters(text: str) -> ParsedParameters:
    """Read an A1111 (or compatible) `parameters` text. Raises RecipeError, nothing else."""
    if not isinstance(text, str):
        raise RecipeError("parameters must be text")
    text = text.replace("\r\n", "\n").strip("\n")
    if text.lstrip().startswith("{") and _is_json_object(text):
        return parse_json_parameters(json.loads(text))  # else an A1111 prompt that starts with "{red|blue}" wildcards
    lines = text.split("\n")
    pairs: dict[str, str] = {}
    if lines and _looks_like_parameter_line(lines[-1]):
        pairs = _pairs(lines.pop())
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    for line in lines:
        if line.startswith("Negative prompt:"):
            negative_lines.append(line[len("Negative prompt:") :].strip())
        elif negative_lines:
            negative_lines.append(line)  # the negative prompt runs on to the parameter line
        else:
            prompt_lines.append(line)
    return _recipe_from_pairs("\n".join(prompt_lines).strip(), "\n".join(negative_lines).strip(), pairs)


def _recipe_from_pairs(prompt: str, negative: str, pairs: dict[str, str]) -> ParsedParameters:
    params: dict[str, Any] = {}
    unknown: dict[str, str] = {}
    notes: list[str] = []
    seed = 0
    model = model_hash = ""
    schedule = pairs.get("Schedule type")
    reverse = {v: k for k, v in A1111_KEYS.items()}
    for key, value in pairs.items():
        try:
            if key == "Seed":
                seed = parse_seed(value)
            elif key == "Size":
                size = _SIZE.match(value)
                if not size:
                    raise ValueError(value)
                params["width"], params["height"] = int(size.group(1)), int(size.group(2))
            elif key == "Sampler":
                choice = map_sampler(value, schedule)
                params["scheduler"] = choice.scheduler
                notes.extend(choice.notes)
                if choice.schedule_kept:
                    unknown["Schedule type"] = choice.schedule_kept
            elif key == "Schedule type":
                continue  # read together with Sampler
            elif key == "Model":
                model = _model_name_in(value)
            elif key == "Model hash":
                model_hash = value
            elif key in ("Lora hashes", "TI hashes"):  # the prompt's <lora:…> tags and embedding names say the rest
                params["lora_hashes" if key == "Lora hashes" else "ti_hashes"] = _read_hash_list(value)
            elif key in _SEED_KEYS:
                params[reverse[key]] = parse_seed(value)
            elif key in reverse:
                params[reverse[key]] = _to_number(value)
            else:
                unknown[key] = value
        except (ValueError, OverflowError):
            unknown[key] = value  # keep what we cannot read rather than dropping it
            notes.append(f"{key}: {value[:60]!r} could not be read; kept for reference.")
    if schedule and "Sampler" not in pairs:
        unknown["Schedule type"] = schedule
    recipe = Recipe(
        modality="image",
        prompt=prompt,
        negative_prompt=negative,
        model=model,
        model_hash=model_hash,
        seed=seed,
        params=params,
    )
    return ParsedParameters(recipe, unknown, tuple(notes), "A1111" if pairs else "")


# --- JSON in `parameters`: our recipe, or Fooocus' own scheme ------------------------------------------------

_FOOOCUS_KEYS = {
    "steps": "steps",
    "guidance_scale": "guidance",
    "cfg": "guidance",
    "denoising_strength": "strength",
    "clip_skip": "clip_skip",
}
# Keys only Fooocus writes (modules/meta_parser.py, FooocusMetadataParser.to_json); two of them make a layout ours.
_FOOOCUS_MARKS = {"metadata_scheme", "base_model", "base_model_hash", "guidance_scale", "resolution", "sharpness",
                  "performance", "styles", "adm_guidance", "refiner_model", "refiner_switch", "full_prompt"}
_FOOOCUS_USED = {"prompt", "negative_prompt", "base_model", "base_model_hash", "scheduler", "seed", "resolution",
                 "sampler"}


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


def is_fooocus_json(data: Mapping[str, Any]) -> bool:
    if str(data.get("metadata_scheme", "")).lower() == "fooocus" or str(data.get("version", "")).startswith("Fooocus"):
        return True
    return len(_FOOOCUS_MARKS & set(data)) >= 2


def parse_json_parameters(data: Any) -> ParsedParameters:
    """A JSON object found where A1111 text is expected: our own recipe or Fooocus' scheme. Any other layout is a
    RecipeError that says so (never an empty recipe)."""
    if not isinstance(data, dict):
        raise RecipeError("parameters JSON must be an object")
    if data.get("studio_recipe") is not None:
        return ParsedParameters(Recipe.from_dict(data), {}, (), "Latent Studio")
    if is_fooocus_json(data):
        return _parse_fooocus(data)
    keys = ", ".join(sorted(str(k) for k in data)[:8]) or "none"
    raise RecipeError(f"the settings are a JSON layout this app does not know (keys: {keys}); nothing was loaded")


def _parse_fooocus(data: Mapping[str, Any]) -> ParsedParameters:
    params: dict[str, Any] = {}
    unknown: dict[str, str] = {}
    notes: list[str] = []
    seed = 0
    for key, value in data.items():
        try:
            if key in _FOOOCUS_KEYS:
                params[_FOOOCUS_KEYS[key]] = _to_number(str(value))
            elif key == "seed":
                seed = parse_seed(value)
            elif key == "resolution":
                numbers = re.findall(r"\d+", str(value))
                params["width"], params["height"] = int(numbers[0]), int(numbers[1])
            elif key == "sampler":
                choice = map_sampler(str(value), str(data.get("scheduler", "")))
                params["scheduler"] = choice.scheduler
                notes.extend(choice.notes)
                if choice.schedule_kept:
                    unknown["scheduler"] = choice.schedule_kept
            elif key not in _FOOOCUS_USED:
                unknown[key] = str(value)
        except (ValueError, TypeError, IndexError, OverflowError):
            unknown[key] = str(value)
            notes.append(f"{key}: {str(value)[:60]!r} could not be read; kept for reference.")
    recipe = Recipe(
        modality="image",
        prompt=str(data.get("prompt", "")),
        negative_prompt=str(data.get("negative_prompt", "")),
        model=str(data.get("base_model", "")),
        model_hash=str(data.get("base_model_hash", "") or ""),
        seed=seed,
        params=params,
    )
    return ParsedParameters(recipe, unknown, tuple(notes), "Fooocus")
