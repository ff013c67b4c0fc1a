"""OpenAI-compatible text servers (llama.cpp's server, llama-cpp-python's, vLLM, Ollama, LM Studio, OpenAI):
what a server accepts, the request our settings make, and the stream it answers with. No Qt, no threads: the
backend (studio/backends/openai_text.py) runs this on its worker thread.

What a server accepts is read from the server itself, not assumed from its name: a FastAPI server (llama-cpp-python,
vLLM, text-generation-webui) publishes the request schema of /v1/completions at /openapi.json; llama.cpp's own
server lists its sampling parameters at /props; Ollama (/api/version) documents a fixed set. Anything else gets the
fields of OpenAI's own API. A setting no accepted field carries is `unsupported`, with the reason, and the panel
greys it out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from studio.engine.text.settings import TextSettings

# OpenAI's own /v1/completions and /v1/chat/completions fields: what any compatible server takes.
OPENAI_FIELDS = frozenset({
    "model", "prompt", "messages", "max_tokens", "temperature", "top_p", "presence_penalty", "frequency_penalty",
    "seed", "stop", "logit_bias", "logprobs", "top_logprobs", "stream", "n",
})
# Ollama's OpenAI-compatible endpoints (its docs/openai.md): no logit bias, no log-probabilities.
OLLAMA_FIELDS = frozenset({"model", "prompt", "messages", "max_tokens", "temperature", "top_p", "presence_penalty",
                           "frequency_penalty", "seed", "stop", "stream"})
INSPECT_TOP = 10  # candidates asked per token, as the local token inspector records

# Our setting -> the server fields that carry it, first accepted wins, each with the value to send.
S = TextSettings
FIELDS: dict[str, tuple[tuple[str, Callable[[S], Any]], ...]] = {
    # dynamic: the middle of its range (llama.cpp samples temperature ± dynatemp_range; the webui ignores it)
    "temperature": (("temperature", lambda s: 0.0 if s.greedy else (s.dynatemp_low + s.dynatemp_high) / 2
                     if s.dynamic_temperature else s.temperature),),
    "top_k": (("top_k", lambda s: s.top_k),),
    "top_p": (("top_p", lambda s: s.top_p),),
    "min_p": (("min_p", lambda s: s.min_p),),
    "typical_p": (("typical_p", lambda s: s.typical_p),),
    "repetition_penalty": (("repeat_penalty", lambda s: s.repetition_penalty),
                           ("repetition_penalty", lambda s: s.repetition_penalty)),
    "repetition_window": (("repeat_last_n", lambda s: s.repetition_window or -1),
                          ("repetition_penalty_range", lambda s: s.repetition_window)),
    "presence_penalty": (("presence_penalty", lambda s: s.presence_penalty),),
    "frequency_penalty": (("frequency_penalty", lambda s: s.frequency_penalty),),
    "max_new_tokens": (("max_tokens", lambda s: s.max_new_tokens),),
    "min_new_tokens": (("min_tokens", lambda s: s.min_new_tokens),),
    "stop": (("stop", lambda s: list(s.stop) or None),),
    "dry_multiplier": (("dry_multiplier", lambda s: s.dry_multiplier),),
    "dry_base": (("dry_base", lambda s: s.dry_base),),
    "dry_allowed_length": (("dry_allowed_length", lambda s: s.dry_allowed_length),),
    "dry_sequence_breakers": (("dry_sequence_breakers", lambda s: list(s.dry_sequence_breakers)),),
    "xtc_threshold": (("xtc_threshold", lambda s: s.xtc_threshold),),
    "xtc_probability": (("xtc_probability", lambda s: s.xtc_probability),),
    "mirostat": (("mirostat_mode", lambda s: 2 if s.mirostat else 0), ("mirostat", lambda s: 2 if s.mirostat else 0)),
    "mirostat_tau": (("mirostat_tau", lambda s: s.mirostat_tau),),
    "mirostat_eta": (("mirostat_eta", lambda s: s.mirostat_eta),),
    # text-generation-webui takes low/high; llama.cpp a range around the temperature (its dynatemp_range)
    "dynamic_temperature": (("dynamic_temperature", lambda s: s.dynamic_temperature),
                            ("dynatemp_range", lambda s: (s.dynatemp_high - s.dynatemp_low) / 2
                             if s.dynamic_temperature else 0.0)),
    "dynatemp_low": (("dynatemp_low", lambda s: s.dynatemp_low), ("dynatemp_range", None)),
    "dynatemp_high": (("dynatemp_high", lambda s: s.dynatemp_high), ("dynatemp_range", None)),
    "dynatemp_exponent": (("dynatemp_exponent", lambda s: s.dynatemp_exponent),),
    "banned_strings": (("banned_strings", lambda s: list(s.banned_strings)),),
    "sampler_order": (("samplers", lambda s: llama_cpp_samplers(s.sampler_order)),
                      ("sampler_priority", lambda s: list(s.sampler_order))),
    "seed": (),  # the recipe's seed, sent by `request_body` itself when "seed" is accepted
    "logit_bias": (),  # token ids from the server's own tokenizer (`request_body`)
    "inspect": (),  # logprobs (`request_body`)
}
# Settings that only ever run here.
LOCAL_ONLY = {"runtime": "the server runs the model its own way", "greedy": "", "include_stop": ""}
# Our stage -> llama.cpp server's sampler name (its `samplers` list).
LLAMA_CPP_SAMPLERS = {"dry": "dry", "top_k": "top_k", "typical_p": "typ_p", "top_p": "top_p", "min_p": "min_p",
                      "xtc": "xtc", "temperature": "temperature"}


def llama_cpp_samplers(order) -> list[str]:
    return [LLAMA_CPP_SAMPLERS[name] for name in order if name in LLAMA_CPP_SAMPLERS]


@dataclass(frozen=True)
class ServerInfo:
    """What `probe` found out about a server."""

    kind: str  # "llama-cpp-python", "llama.cpp server", "vLLM", "Ollama", "OpenAI-compatible"
    version: str = ""
    models: tuple[str, ...] = ()
    fields: frozenset[str] = OPENAI_FIELDS  # what its completion requests accept
    chat_fields: frozenset[str] = OPENAI_FIELDS
    tokenize: str = ""  # a path that turns text into the server's token ids ("" = none): logit bias by text
    detected_from: str = "OpenAI's API (the server did not describe itself)"

    def unsupported(self, chat: bool = False) -> dict[str, str]:
        """Our settings this server can't honour -> why, in words for a tooltip."""
        accepted = self.chat_fields if chat else self.fields
        missing: dict[str, str] = {}
        for name, carriers in FIELDS.items():
            if carriers and not any(f in accepted for f, _ in carriers):
                missing[name] = f"{self.kind} doesn't accept {carriers[0][0]} (read from {self.detected_from})"
        if "seed" not in accepted:
            missing["seed"] = f"{self.kind} takes no seed: its text can't be made again"
        if "logit_bias" not in accepted or not self.tokenize:
            missing["logit_bias"] = (f"{self.kind} doesn't accept logit_bias" if "logit_bias" not in accepted
                                     else f"{self.kind} can't tell us its token ids (no tokenize endpoint)")
        if "logprobs" not in accepted:
            missing["inspect"] = f"{self.kind} doesn't return log-probabilities"
        missing.update({k: why for k, why in LOCAL_ONLY.items() if why})
        return missing

    def summary(self) -> str:
        """One paragraph for Settings › Servers › Test connection."""
        name = f"{self.kind} {self.version}".strip()
        models = ", ".join(self.models[:5]) + (f" and {len(self.models) - 5} more" if len(self.models) > 5 else "")
        accepted = sorted(n for n in FIELDS if n not in self.unsupported())
        missing = sorted(self.unsupported())
        return (f"{name} · {len(self.models)} model(s): {models or 'none'} · accepts {', '.join(accepted)}"
                + (f" · not {', '.join(missing)}" if missing else ""))


def api_urls(url: str) -> tuple[str, str]:
    """(server root, API base): "http://host:8080" and "http://host:8080/v1", whichever of the two was typed."""
    root = url.strip().rstrip("/")
    if root.endswith("/v1"):
        root = root[:-3]
    return root, root + "/v1"


def _json(client, url: str) -> Any:
    """GET url as JSON, or None when the server has no such page (or answers with something else)."""
    import httpx

    try:
        response = client.get(url)
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def schema_fields(openapi: dict, path: str) -> frozenset[str]:
    """The properties of the JSON body POST `path` takes, from a FastAPI server's /openapi.json."""
    try:
        body = openapi["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    except (KeyError, TypeError):
        return frozenset()
    schemas = openapi.get("components", {}).get("schemas", {})

    def properties(schema: dict, depth: int = 0) -> set[str]:
        if depth > 5 or not isinstance(schema, dict):
            return set()
        if "$ref" in schema:
            return properties(schemas.get(schema["$ref"].rsplit("/", 1)[-1], {}), depth + 1)
        found = set(schema.get("properties", {}))
        for key in ("allOf", "anyOf", "oneOf"):
            for part in schema.get(key, []):
                found |= properties(part, depth + 1)
        return found

    return frozenset(properties(body))


def probe(client, url: str) -> ServerInfo:
    """Ask the server what it is, its models and what it accepts. Raises httpx.HTTPError when the model list can't
    be read (the server isn't there, or refuses the key)."""
    root, api = api_urls(url)
    listing = client.get(f"{api}/models")
    listing.raise_for_status()
    models = tuple(str(m.get("id")) for m in listing.json().get("data", []) if isinstance(m, dict) and m.get("id"))
    openapi = _json(client, f"{root}/openapi.json")
    if isinstance(openapi, dict) and schema_fields(openapi, "/v1/completions"):
        title = str(openapi.get("info", {}).get("title", ""))
        kind = "llama-cpp-python" if "llama.cpp" in title else "vLLM" if "vllm" in title.lower() else title or "server"
        paths = openapi.get("paths", {})
        tokenize = "/extras/tokenize" if "/extras/tokenize" in paths else "/tokenize" if "/tokenize" in paths else ""
        return ServerInfo(kind, str(openapi.get("info", {}).get("version", "")), models,
                          schema_fields(openapi, "/v1/completions"), schema_fields(openapi, "/v1/chat/completions")
                          or OPENAI_FIELDS, tokenize, "its /openapi.json")
    props = _json(client, f"{root}/props")
    if isinstance(props, dict) and isinstance(props.get("default_generation_settings"), dict):
        settings = props["default_generation_settings"]
        names = set(settings) | set(settings.get("params", {}) if isinstance(settings.get("params"), dict) else {})
        fields = frozenset(OPENAI_FIELDS | names)
        return ServerInfo("llama.cpp server", str(props.get("build_info", "")), models, fields, fields, "/tokenize",
                          "its /props")
    version = _json(client, f"{root}/api/version")
    if isinstance(version, dict) and "version" in version:
        return ServerInfo("Ollama", str(version["version"]), models, OLLAMA_FIELDS, OLLAMA_FIELDS, "",
                          "Ollama's documented OpenAI fields")
    return ServerInfo("OpenAI-compatible", "", models)


def token_ids(client, url: str, info: ServerInfo, model: str, text: str) -> list[int]:
    """`text` in the server's own tokens (llama-cpp-python /extras/tokenize, llama.cpp and vLLM /tokenize)."""
    root, _ = api_urls(url)
    body = {"input": text} if info.tokenize == "/extras/tokenize" else {"content": text, "model": model,
                                                                        "prompt": text, "add_special": False}
    response = client.post(root + info.tokenize, json=body)
    response.raise_for_status()
    return [int(t) for t in response.json().get("tokens", [])]


def request_body(settings: TextSettings, prompt: str, model: str, seed: int, info: ServerInfo,
                 bias_ids: dict[int, float] | None = None) -> tuple[dict, list[str]]:
    """The JSON body of a streamed completion (or chat) and the settings left out because the server can't take
    them (only those changed from their defaults are worth a word)."""
    chat = settings.mode == "chat"
    accepted = info.chat_fields if chat else info.fields
    body: dict[str, Any] = {"model": model, "stream": True}
    if chat:
        body["messages"] = [dict(m) for m in settings.messages] or [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    for carriers in FIELDS.values():
        for server_field, value in carriers:
            if server_field in accepted and value is not None:
                shown = value(settings)
                if shown is not None:
                    body[server_field] = shown
                break
    if "seed" in accepted:
        body["seed"] = int(seed)
    if bias_ids and "logit_bias" in accepted:
        body["logit_bias"] = {str(token): bias for token, bias in bias_ids.items()}
    if settings.inspect and "logprobs" in accepted:
        if chat:
            body.update(logprobs=True, top_logprobs=INSPECT_TOP)
        else:
            body["logprobs"] = INSPECT_TOP
    defaults = TextSettings()
    ignored = [n for n in info.unsupported(chat) if n in FIELDS and getattr(settings, n) != getattr(defaults, n)]
    return body, ignored


def server_events(lines: Iterable[str]) -> Iterator[dict]:
    """The JSON objects of a server-sent-event stream ("data: {...}" lines) up to "data: [DONE]"."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, ": keep-alive" comments, "event:" lines
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        try:
            event = json.loads(payload)
        except ValueError:
            continue
        if isinstance(event, dict):
            if "error" in event:  # llama.cpp and vLLM report a failure mid-stream as an event
                message = event["error"].get("message") if isinstance(event["error"], dict) else event["error"]
                raise ServerError(str(message))
            yield event


class ServerError(Exception):
    """The server reported an error (in its answer or mid-stream); its words, one line."""


@dataclass
class Piece:
    """What one streamed event adds: text, why it ended (if it did), and per-token candidates."""

    text: str = ""
    finish: str | None = None
    tokens: list[dict] = field(default_factory=list)  # inspector entries without start/end


def _candidates(pairs: Iterable[tuple[str, float]], numbering: dict[str, int]) -> list[dict]:
    import math

    listed = sorted(((t, lp) for t, lp in pairs if lp is not None), key=lambda p: -p[1])[:INSPECT_TOP]
    return [{"id": numbering.setdefault(t, len(numbering)), "token": t, "p": round(math.exp(lp), 5)}
            for t, lp in listed]


def read_piece(event: dict, chat: bool, numbering: dict[str, int]) -> Piece:
    """One event of /v1/completions or /v1/chat/completions. Servers give token texts, not ids: `numbering`
    numbers them per generation, so the inspector can tell which candidate was chosen."""
    choices = event.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    text = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
    piece = Piece(text or "", choice.get("finish_reason"))
    logprobs = choice.get("logprobs") or {}
    if chat:
        for entry in logprobs.get("content") or []:
            top = [(c.get("token", ""), c.get("logprob")) for c in entry.get("top_logprobs") or []]
            token = entry.get("token", "")
            piece.tokens.append({"token": token, "id": numbering.setdefault(token, len(numbering)),
                                 "before": _candidates(top, numbering), "after": [], "source": "server"})
    else:
        for token, top in zip(logprobs.get("tokens") or [], logprobs.get("top_logprobs") or [], strict=False):
            piece.tokens.append({"token": token, "id": numbering.setdefault(token, len(numbering)),
                                 "before": _candidates((top or {}).items(), numbering), "after": [],
                                 "source": "server"})
    return piece

