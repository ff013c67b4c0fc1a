"""Other tools' metadata: the settings NovelAI, ComfyUI and InvokeAI write into their PNGs, read as a recipe.

A1111 (and Forge, Fooocus' A1111 scheme, Civitai) text and Fooocus' JSON are read in `core/recipe.py`; the
sampler names of every tool meet in its one alias table (`map_sampler`). Each reader here gets the PNG's text
chunks and returns a `ParsedParameters` whose `source` names the tool and whose `notes` say what was mapped to
something else and what was left out, or None when the chunks are not that tool's.

    NovelAI   tEXt Software "NovelAI", Description (the prompt), Source (its model), Comment (JSON: prompt, uc,
              steps, scale, sampler "k_euler_ancestral", noise_schedule, seed, strength, noise, width, height)
    ComfyUI   tEXt prompt (the API graph: node id -> {class_type, inputs}, a link is [node id, output index])
              and workflow (the editor's graph, nodes with widgets_values)
    InvokeAI  tEXt invokeai_metadata (3.x+: positive_prompt, negative_prompt, seed, steps, cfg_scale, scheduler,
              width, height, model {model_name | name}); sd-metadata (2.x: image {prompt, sampler, …})
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from studio.core.recipe import (
    SAMPLER_ALIASES,  # noqa: F401 - the one alias table, re-exported for readers of this module
    ParsedParameters,
    Recipe,
    RecipeError,
    map_sampler,
    parse_seed,
)

MAX_JSON = 8_000_000  # characters: a metadata chunk bigger than this is not settings


def _json(text: Any) -> Any:
    if not isinstance(text, str) or len(text) > MAX_JSON:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, int):
        return value
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return int(number) if isinstance(value, str) and number.is_integer() and "." not in value else number


class _Reader:
    """Collects params, what was kept unused, and notes; every field read is guarded so one bad value never
    costs the rest."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.params: dict[str, Any] = {}
        self.unknown: dict[str, str] = {}
        self.notes: list[str] = []
        self.seed = 0

    def number(self, name: str, value: Any, label: str) -> None:
        if value is None:
            return
        try:
            self.params[name] = _number(value)
        except (TypeError, ValueError, OverflowError):
            self.keep(label, value)

    def set_seed(self, value: Any, label: str = "seed") -> None:
        if value is None:
            return
        try:
            self.seed = parse_seed(value)
        except ValueError as exc:
            self.keep(label, value)
            self.notes.append(f"{label}: {exc}; kept for reference.")

    def sampler(self, sampler: Any, schedule: Any = None, label: str = "scheduler") -> None:
        if not sampler:
            return
        choice = map_sampler(str(sampler), None if schedule is None else str(schedule))
        self.params["scheduler"] = choice.scheduler
        self.notes.extend(choice.notes)
        if choice.schedule_kept:
            self.unknown[label] = choice.schedule_kept

    def keep(self, key: str, value: Any) -> None:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        self.unknown[str(key)] = text[:300]

    def result(self, prompt: Any, negative: Any, model: Any = "", model_hash: Any = "") -> ParsedParameters:
        if not str(prompt or "").strip():
            self.notes.append(f"The {self.source} file holds no prompt: the prompt box is left as it was.")
        recipe = Recipe(
            modality="image",
            prompt=str(prompt or ""),
            negative_prompt=str(negative or ""),
            model=str(model or ""),
            model_hash=str(model_hash or ""),
            seed=self.seed,
            params=self.params,
        )
        self.notes.insert(0, f"Read as a {self.source} image.")
        return ParsedParameters(recipe, self.unknown, tuple(self.notes), self.source)


def read_foreign(text: Mapping[str, Any]) -> ParsedParameters | None:
    """The settings in another tool's PNG text chunks, or None when no reader here knows them. A layout that is
    that tool's but damaged is a RecipeError, never another exception."""
    try:
        return _read_foreign(text)
    except RecipeError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError, OverflowError) as exc:
        raise RecipeError(f"another tool's settings that could not be read ({type(exc).__name__}: {exc})") from exc


def _read_foreign(text: Mapping[str, Any]) -> ParsedParameters | None:
    if "invokeai_metadata" in text or "sd-metadata" in text:
        return read_invokeai(text)
    if "prompt" in text or "workflow" in text:
        found = read_comfyui(text)
        if found is not None:
            return found
    if str(text.get("Software", "")).startswith("NovelAI") or _novelai_comment(text.get("Comment")) is not None:
        return read_novelai(text)
    return None


# --- NovelAI --------------------------------------------------------------------------------------------------

_NOVELAI_USED = {"prompt", "uc", "steps", "scale", "sampler", "noise_schedule", "seed", "strength", "width",
                 "height", "v4_prompt", "v4_negative_prompt"}
_NOVELAI_QUIET = {"n_samples", "signed_hash", "request_type", "hide_debug_overlay", "legacy_v3_extend",
                  "legacy", "legacy_uc", "params_version"}


def _novelai_comment(comment: Any) -> dict | None:
    data = _json(comment)
    if isinstance(data, dict) and "uc" in data and ("scale" in data or "sampler" in data):
        return data
    return None


def _v4_caption(value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("caption"), dict):
        return str(value["caption"].get("base_caption") or "")
    return ""


def read_novelai(text: Mapping[str, Any]) -> ParsedParameters:
    data = _json(text.get("Comment"))
    if not isinstance(data, dict):
        raise RecipeError("a NovelAI image whose Comment chunk holds no settings JSON; nothing was loaded")
    r = _Reader("NovelAI")
    r.number("steps", data.get("steps"), "steps")
    r.number("guidance", data.get("scale"), "scale")
    r.number("width", data.get("width"), "width")
    r.number("height", data.get("height"), "height")
    r.set_seed(data.get("seed"))
    r.sampler(data.get("sampler"), data.get("noise_schedule"), "noise_schedule")
    if data.get("strength") is not None and data.get("request_type") != "PromptGenerateRequest":
        r.number("strength", data.get("strength"), "strength")
    for key, value in data.items():
        if key not in _NOVELAI_USED and key not in _NOVELAI_QUIET and value not in (None, "", [], {}):
            r.keep(key, value)
    prompt = data.get("prompt") or _v4_caption(data.get("v4_prompt")) or text.get("Description", "")
    negative = data.get("uc") or _v4_caption(data.get("v4_negative_prompt"))
    if text.get("Source"):
        r.keep("Source", text["Source"])
        r.notes.append(f"Made with NovelAI's own model ({text['Source']}): your model is kept.")
    return r.result(prompt, negative)


# --- ComfyUI --------------------------------------------------------------------------------------------------

_SAMPLER_NODES = ("KSampler", "KSamplerAdvanced")
_LATENT_NODES = ("EmptyLatentImage", "EmptySD3LatentImage", "EmptyHunyuanLatentVideo")
_CHECKPOINT_NODES = ("CheckpointLoaderSimple", "CheckpointLoader", "unCLIPCheckpointLoader", "UNETLoader")
_TEXT_KEYS = ("text", "text_g", "string", "value", "prompt")
_CONDITIONING_KEYS = ("conditioning", "conditioning_1", "conditioning_to", "positive", "base_conditioning")
_MODEL_KEYS = ("model",)


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))


class _Graph:
    """ComfyUI's API graph: node id -> {"class_type", "inputs"}; an input that is [id, index] is a link."""

    def __init__(self, nodes: Mapping[str, Any]) -> None:
        self.nodes = {str(k): v for k, v in nodes.items() if isinstance(v, dict)}
        self.used: set[str] = set()

    def node(self, link: Any) -> tuple[str, dict] | None:
        if _is_link(link) and str(link[0]) in self.nodes:
            return str(link[0]), self.nodes[str(link[0])]
        return None

    def inputs(self, node: dict) -> dict:
        inputs = node.get("inputs")
        return inputs if isinstance(inputs, dict) else {}

    def value(self, value: Any, keys: tuple[str, ...], depth: int = 0) -> Any:
        """A plain input value, following links to primitive/text nodes."""
        while _is_link(value) and depth < 16:
            found = self.node(value)
            if found is None:
                return None
            self.used.add(found[0])
            inputs = self.inputs(found[1])
            value = next((inputs[k] for k in keys if k in inputs), None)
            depth += 1
        return None if _is_link(value) else value

    def text(self, link: Any, depth: int = 0) -> str:
        """The prompt text behind a conditioning input: a text-encode node, through combine/ControlNet nodes."""
        found = self.node(link)
        if found is None or depth > 16:
            return ""
        node_id, node = found
        inputs = self.inputs(node)
        for key in _TEXT_KEYS:
            if key in inputs:
                value = self.value(inputs[key], _TEXT_KEYS)
                if isinstance(value, str):
                    self.used.add(node_id)  # a ControlNet or combine node on the way is left out, and said
                    return value
        for key in _CONDITIONING_KEYS:
            if key in inputs:
                return self.text(inputs[key], depth + 1)
        return ""

    def upstream(self, link: Any, classes: tuple[str, ...], keys: tuple[str, ...]) -> dict | None:
        for _ in range(32):
            found = self.node(link)
            if found is None:
                return None
            node_id, node = found
            if node.get("class_type") in classes:
                self.used.add(node_id)  # pass-through nodes (a LoRA loader) are not read: they are left out
                return node
            inputs = self.inputs(node)
            link = next((inputs[k] for k in keys if k in inputs), None)
        return None

    def first(self, classes: tuple[str, ...]) -> tuple[str, dict] | None:
        for node_id in sorted(self.nodes, key=lambda k: (len(k), k)):
            if self.nodes[node_id].get("class_type") in classes:
                return node_id, self.nodes[node_id]
        return None


def read_comfyui(text: Mapping[str, Any]) -> ParsedParameters | None:
    graph = _json(text.get("prompt"))
    if isinstance(graph, dict) and any(isinstance(n, dict) and "class_type" in n for n in graph.values()):
        return _read_comfy_api_graph(_Graph(graph))
    workflow = _json(text.get("workflow"))
    if isinstance(workflow, dict) and isinstance(workflow.get("nodes"), list):
        return _read_comfy_workflow(workflow)
    return None


def _read_comfy_api_graph(graph: _Graph) -> ParsedParameters:
    r = _Reader("ComfyUI")
    found = graph.first(_SAMPLER_NODES)
    if found is None:
        raise RecipeError("a ComfyUI image whose graph has no KSampler node; nothing was loaded")
    sampler_id, sampler = found
    graph.used.add(sampler_id)
    inputs = graph.inputs(sampler)
    others = [k for k, n in graph.nodes.items() if n.get("class_type") in _SAMPLER_NODES and k != sampler_id]
    if others:
        r.notes.append(f"The graph has {len(others) + 1} sampler nodes: node {sampler_id} was read.")
    seed_key = "noise_seed" if "noise_seed" in inputs else "seed"
    r.set_seed(graph.value(inputs.get(seed_key), ("seed", "noise_seed", "value", "int")), seed_key)
    r.number("steps", graph.value(inputs.get("steps"), ("steps", "value", "int")), "steps")
    r.number("guidance", graph.value(inputs.get("cfg"), ("cfg", "value", "float")), "cfg")
    r.sampler(graph.value(inputs.get("sampler_name"), ("sampler_name", "value")),
              graph.value(inputs.get("scheduler"), ("scheduler", "value")))
    denoise = graph.value(inputs.get("denoise"), ("denoise", "value", "float"))
    if denoise is not None and denoise != 1:
        r.number("strength", denoise, "denoise")
    prompt = graph.text(inputs.get("positive"))
    negative = graph.text(inputs.get("negative"))
    latent = graph.upstream(inputs.get("latent_image"), _LATENT_NODES, ("samples", "latent_image", "latent"))
    if latent is not None:
        size = graph.inputs(latent)
        r.number("width", graph.value(size.get("width"), ("width", "value", "int")), "width")
        r.number("height", graph.value(size.get("height"), ("height", "value", "int")), "height")
        r.number("batch_size", graph.value(size.get("batch_size"), ("batch_size", "value", "int")), "batch_size")
    else:
        r.notes.append("The latent does not come from an empty latent (img2img or a chain): no size was read.")
    checkpoint = graph.upstream(inputs.get("model"), _CHECKPOINT_NODES, _MODEL_KEYS)
    if checkpoint is None:
        first = graph.first(_CHECKPOINT_NODES)
        checkpoint = first[1] if first else None
    model = ""
    if checkpoint is not None:
        ckpt = graph.inputs(checkpoint)
        model = graph.value(ckpt.get("ckpt_name", ckpt.get("unet_name")), ("ckpt_name", "value")) or ""
    left = sorted({str(n.get("class_type")) for k, n in graph.nodes.items() if k not in graph.used}
                  - {"VAEDecode", "SaveImage", "PreviewImage"})
    if left:
        r.notes.append("Left out (no setting here): " + ", ".join(left[:12]) + (" …" if len(left) > 12 else "") + ".")
    return r.result(prompt, negative, model)


# The editor's graph: each node's widgets_values in the order ComfyUI shows them.
_WIDGETS = {
    "KSampler": ("seed", None, "steps", "cfg", "sampler_name", "scheduler", "denoise"),
    "KSamplerAdvanced": (None, "seed", None, "steps", "cfg", "sampler_name", "scheduler"),
    "EmptyLatentImage": ("width", "height", "batch_size"),
    "CheckpointLoaderSimple": ("ckpt_name",),
}


def _read_comfy_workflow(workflow: Mapping[str, Any]) -> ParsedParameters:
    """Only the editor's graph (no API graph): the sampler's widgets, the texts wired to it, size and checkpoint."""
    nodes = {n.get("id"): n for n in workflow["nodes"] if isinstance(n, dict)}
    links = {item[0]: item[1] for item in workflow.get("links") or [] if isinstance(item, list) and len(item) >= 5}

    def widgets(node: dict) -> dict:
        names = _WIDGETS.get(str(node.get("type")), ())
        values = node.get("widgets_values") if isinstance(node.get("widgets_values"), list) else []
        return {name: value for name, value in zip(names, values, strict=False) if name}

    def source(node: dict, name: str) -> dict | None:
        for slot in node.get("inputs") or []:
            if isinstance(slot, dict) and slot.get("name") == name and slot.get("link") in links:
                return nodes.get(links[slot["link"]])
        return None

    def text(node: dict | None) -> str:
        values = (node or {}).get("widgets_values")
        return str(values[0]) if isinstance(values, list) and values and isinstance(values[0], str) else ""

    sampler = next((n for n in nodes.values() if n.get("type") in _SAMPLER_NODES), None)
    if sampler is None:
        raise RecipeError("a ComfyUI image whose workflow has no KSampler node; nothing was loaded")
    r = _Reader("ComfyUI")
    w = widgets(sampler)
    r.set_seed(w.get("seed"))
    r.number("steps", w.get("steps"), "steps")
    r.number("guidance", w.get("cfg"), "cfg")
    r.sampler(w.get("sampler_name"), w.get("scheduler"))
    latent = source(sampler, "latent_image")
    if latent is not None and latent.get("type") == "EmptyLatentImage":
        size = widgets(latent)
        r.number("width", size.get("width"), "width")
        r.number("height", size.get("height"), "height")
    checkpoint = next((n for n in nodes.values() if n.get("type") == "CheckpointLoaderSimple"), None)
    r.notes.append("Only the editor's workflow was in the file (no API graph): read from its widgets.")
    return r.result(text(source(sampler, "positive")), text(source(sampler, "negative")),
                    widgets(checkpoint).get("ckpt_name", "") if checkpoint else "")


# --- InvokeAI -------------------------------------------------------------------------------------------------

_INVOKE_USED = {"positive_prompt", "negative_prompt", "seed", "steps", "cfg_scale", "scheduler", "width", "height",
                "model", "clip_skip", "strength", "app_version", "generation_mode", "rand_device"}


def read_invokeai(text: Mapping[str, Any]) -> ParsedParameters:
    data = _json(text.get("invokeai_metadata"))
    if isinstance(data, dict):
        return _read_invokeai_metadata(data)
    legacy = _json(text.get("sd-metadata"))
    if isinstance(legacy, dict):
        return _read_sd_metadata(legacy)
    raise RecipeError("an InvokeAI image whose metadata is not readable JSON; nothing was loaded")


def _read_invokeai_metadata(data: Mapping[str, Any]) -> ParsedParameters:
    r = _Reader("InvokeAI")
    r.set_seed(data.get("seed"))
    r.number("steps", data.get("steps"), "steps")
    r.number("guidance", data.get("cfg_scale"), "cfg_scale")
    r.number("width", data.get("width"), "width")
    r.number("height", data.get("height"), "height")
    if data.get("clip_skip"):
        r.number("clip_skip", data.get("clip_skip"), "clip_skip")
    if data.get("generation_mode") not in (None, "txt2img") and data.get("strength") is not None:
        r.number("strength", data.get("strength"), "strength")
    r.sampler(data.get("scheduler"))
    model = data.get("model")
    name = ""
    if isinstance(model, dict):
        name = model.get("model_name") or model.get("name") or ""
    elif isinstance(model, str):
        name = model
    for key, value in data.items():
        if key not in _INVOKE_USED and value not in (None, "", [], {}):
            r.keep(key, value)
    return r.result(data.get("positive_prompt"), data.get("negative_prompt"), name)


def _read_sd_metadata(data: Mapping[str, Any]) -> ParsedParameters:
    """InvokeAI 2.x: {"model_weights", "model_hash", "app_version", "image": {"prompt": [{"prompt", "weight"}],
    "steps", "cfg_scale", "sampler", "seed", "width", "height", …}}; the negative is [bracketed] in the prompt."""
    image = data.get("image") if isinstance(data.get("image"), dict) else {}
    r = _Reader("InvokeAI")
    r.set_seed(image.get("seed"))
    r.number("steps", image.get("steps"), "steps")
    r.number("guidance", image.get("cfg_scale"), "cfg_scale")
    r.number("width", image.get("width"), "width")
    r.number("height", image.get("height"), "height")
    r.sampler(image.get("sampler"))
    prompt = image.get("prompt", "")
    if isinstance(prompt, list):
        prompt = " ".join(str(p.get("prompt", "")) for p in prompt if isinstance(p, dict))
    prompt = str(prompt)
    negative = " ".join(m.strip() for m in re.findall(r"\[([^\[\]]*)\]", prompt))
    prompt = re.sub(r"\s*\[[^\[\]]*\]", "", prompt).strip()
    for key in ("type", "strength", "variations", "postprocessing", "hires_fix", "seamless"):
        if image.get(key) not in (None, "", [], {}, False, "txt2img"):
            r.keep(key, image[key])
    return r.result(prompt, negative, data.get("model_weights", ""), data.get("model_hash", ""))
