"""Recipe: everything needed to make an output again, as versioned JSON.

Also the writer and reader of AUTOMATIC1111's `parameters` text, the de-facto
standard that A1111, Forge, Fooocus (in its A1111 scheme), Civitai and image
viewers read from a PNG's text chunk:

    a prompt, possibly
    over several lines
    Negative prompt: things to avoid
    Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512

The last line is a list of `Key: value` pairs; a value holding `,` `:` or a newline
is written JSON-quoted. A1111 treats that line as parameters only when it has at
least 3 pairs, and so do we.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from studio import media

RECIPE_VERSION = 1
MAX_SEED = 2**32 - 1  # what A1111 and diffusers' CPU generators accept
RANDOM_SEED = -1  # a panel's seed value meaning "draw a new one each run" (the seed drawn is recorded)


class RecipeError(ValueError):
    """The text could not be read as a recipe; the message says why."""


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
        except (TypeError, ValueError) as exc:
            raise RecipeError(f"bad recipe field: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecipeError(f"not JSON: {exc}") from exc
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

# Recipe param <-> A1111 key for the plain numeric/text settings.
A1111_KEYS = {
    "steps": "Steps",
    "guidance": "CFG scale",
    "strength": "Denoising strength",
    "variation_seed": "Variation seed",
    "variation_strength": "Variation seed strength",
    "clip_skip": "Clip skip",
}

# One `Key: value` pair; the value is JSON-quoted or runs to the next comma. Same shape as
# A1111's own `re_param` in modules/infotext_utils.py.
_PAIR = re.compile(r'\s*([\w][\w \-/]*?):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^\s*(\d+)\s*[x×]\s*(\d+)\s*$")


def _quote(value: Any) -> str:
    text = str(value)
    if any(ch in text for ch in ',:\n"'):
        return json.dumps(text, ensure_ascii=False)
    return text


def _number_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def a1111_parameters(recipe: Recipe) -> str:
    """The A1111 `parameters` text for an image recipe."""
    pairs: list[tuple[str, Any]] = []
    p = recipe.params
    if "steps" in p:
        pairs.append(("Steps", p["steps"]))
    sampler, schedule = A1111_SAMPLERS.get(str(p.get("scheduler", "")), (p.get("scheduler"), None))
    if sampler:
        pairs.append(("Sampler", sampler))
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
        pairs.append(("Model", recipe.model))
    for key in ("strength", "variation_seed", "variation_strength", "clip_skip"):
        if p.get(key) not in (None, ""):
            pairs.append((A1111_KEYS[key], _number_text(p[key])))
    pairs.append(("Version", "Latent Studio"))
    lines = [recipe.prompt]
    if recipe.negative_prompt:
        lines.append(f"Negative prompt: {recipe.negative_prompt}")
    lines.append(", ".join(f"{k}: {_quote(v)}" for k, v in pairs))
    return "\n".join(lines)


@dataclass(frozen=True)
class ParsedParameters:
    recipe: Recipe
    unknown: dict[str, str]  # keys we do not map; kept so the UI can show them


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
    return int(number) if number.is_integer() and "." not in text else number


def _scheduler_from(sampler: str, schedule: str | None) -> str:
    for ours, (name, sched) in A1111_SAMPLERS.items():
        if name.lower() == sampler.lower() and (sched or "").lower() == (schedule or "").lower():
            return ours
    # "DPM++ 2M Karras" (old single-field style), or a "Karras" schedule on another sampler
    lowered = sampler.lower().replace(" karras", "")
    karras = "karras" in sampler.lower() or (schedule or "").lower() == "karras"
    for ours, (name, _sched) in A1111_SAMPLERS.items():
        if name.lower() == lowered:
            candidate = f"{ours}_karras" if karras else ours
            return candidate if candidate in A1111_SAMPLERS else ours
    return sampler


def parse_a1111_parameters(text: str) -> ParsedParameters:
    """Read an A1111 (or compatible) `parameters` text. Raises RecipeError, nothing else."""
    if not isinstance(text, str):
        raise RecipeError("parameters must be text")
    text = text.replace("\r\n", "\n").strip("\n")
    if text.lstrip().startswith("{") and _is_json_object(text):
        return _parse_fooocus_json(text)  # otherwise an A1111 prompt that starts with "{red|blue}" wildcards
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
    seed = 0
    model = model_hash = ""
    schedule = pairs.get("Schedule type")
    reverse = {v: k for k, v in A1111_KEYS.items()}
    for key, value in pairs.items():
        try:
            if key == "Seed":
                seed = int(float(value))
            elif key == "Size":
                size = _SIZE.match(value)
                if not size:
                    raise ValueError(value)
                params["width"], params["height"] = int(size.group(1)), int(size.group(2))
            elif key == "Sampler":
                params["scheduler"] = _scheduler_from(value, schedule)
            elif key == "Schedule type":
                continue  # read together with Sampler
            elif key == "Model":
                model = value
            elif key == "Model hash":
                model_hash = value
            elif key in reverse:
                params[reverse[key]] = _to_number(value)
            else:
                unknown[key] = value
        except (ValueError, OverflowError):
            unknown[key] = value  # keep what we cannot read rather than dropping it
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
    return ParsedParameters(recipe, unknown)


# Fooocus' own metadata scheme is a JSON object in the same `parameters` chunk.
_FOOOCUS_KEYS = {
    "steps": "steps",
    "guidance_scale": "guidance",
    "cfg": "guidance",
    "denoising_strength": "strength",
}


def _scheduler_from_fooocus(sampler: str, schedule: str) -> str:
    # Fooocus names samplers the k-diffusion way (dpmpp_2m, euler_ancestral) + a separate schedule.
    name = {"euler_ancestral": "euler_a", "uni_pc": "unipc", "uni_pc_bh2": "unipc"}.get(sampler, sampler)
    if schedule.lower() == "karras" and f"{name}_karras" in A1111_SAMPLERS:
        return f"{name}_karras"
    return name


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _parse_fooocus_json(text: str) -> ParsedParameters:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecipeError(f"parameters look like JSON but are not: {exc}") from exc
    if not isinstance(data, dict):
        raise RecipeError("parameters JSON must be an object")
    if data.get("studio_recipe") is not None:
        return ParsedParameters(Recipe.from_dict(data), {})
    params: dict[str, Any] = {}
    unknown: dict[str, str] = {}
    seed = 0
    for key, value in data.items():
        try:
            if key in _FOOOCUS_KEYS:
                params[_FOOOCUS_KEYS[key]] = _to_number(str(value))
            elif key == "seed":
                seed = int(value)
            elif key == "resolution":
                numbers = re.findall(r"\d+", str(value))
                params["width"], params["height"] = int(numbers[0]), int(numbers[1])
            elif key == "sampler":
                params["scheduler"] = _scheduler_from_fooocus(str(value), str(data.get("scheduler", "")))
            elif key not in ("prompt", "negative_prompt", "base_model", "scheduler"):
                unknown[key] = str(value)
        except (ValueError, TypeError, IndexError, OverflowError):
            unknown[key] = str(value)
    recipe = Recipe(
        modality="image",
        prompt=str(data.get("prompt", "")),
        negative_prompt=str(data.get("negative_prompt", "")),
        model=str(data.get("base_model", "")),
        seed=seed,
        params=params,
    )
    return ParsedParameters(recipe, unknown)
