"""Text generation with a causal language model: every sampling control, streaming, stop sequences.

One sampling loop of our own (not `model.generate`) so that we control streaming, per-token cancel and
the token inspector. It drives any `TextModel`: a transformers causal-LM folder or hub id (`HFTextModel`,
with a KV cache so it runs as fast as `generate`) or an n-gram model (`MarkovTextModel`). Both hand the
loop one row of logits per step; the sampling maths below are pure functions over that row.

Order of the controls on each step (the usual one, as in transformers and llama.cpp):
  repetition penalty -> presence/frequency penalty -> temperature -> top-k -> top-p -> typical-p -> min-p
  -> sample (or argmax when greedy / temperature 0).

No Qt here; torch and transformers are imported inside functions (start-up time).
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from studio.core import catalog
from studio.core.jobs import Artifact, Cancelled, Job, Progress, Result, TaskContext, UserError
from studio.core.recipe import Recipe

DEFAULT_MODEL = "builtin:text-gpt"
INSPECT_TOP = 10  # candidates shown by the token inspector


# ----------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class TextSettings:
    """Every sampling control with its default, in one place. Recipe params use the same names."""

    # Divides the logits: < 1 sharpens the distribution (safer, more repetitive), > 1 flattens it (wilder).
    temperature: float = 0.8
    # Keep only the k most likely tokens; 0 = off. 40 cuts the long tail of nonsense a tiny model has.
    top_k: int = 40
    # Nucleus: keep the fewest tokens whose probabilities add up to p; 1.0 = off.
    top_p: float = 0.95
    # Drop tokens less likely than min_p x the best one; adapts to how sure the model is; 0 = off.
    min_p: float = 0.0
    # Locally typical sampling: keep tokens whose surprise is close to the average; 1.0 = off.
    typical_p: float = 1.0
    # > 1 makes tokens already in the recent text less likely (CTRL-style: divides positive logits).
    # 1.1 tames the loops small models fall into without forbidding the words a sentence needs.
    repetition_penalty: float = 1.1
    # How many recent tokens the penalties look at; 0 = the whole prompt + output.
    repetition_window: int = 64
    # Subtract this from the logit of every token already present (OpenAI-style); 0 = off.
    presence_penalty: float = 0.0
    # Subtract this x (times the token occurred); 0 = off.
    frequency_penalty: float = 0.0
    # Length limit of the output, in tokens (bytes for byte-level models).
    max_new_tokens: int = 200
    # Generation ends when the output contains one of these; they are cut off unless include_stop.
    stop: tuple[str, ...] = ()
    include_stop: bool = False
    # Always take the most likely token: deterministic, ignores temperature and the filters.
    greedy: bool = False
    # "completion" continues the prompt; "chat" answers `messages` with the model's chat template.
    mode: str = "completion"
    messages: tuple[dict, ...] = ()
    # Record the top-10 candidates before/after the filters for every token (the token inspector).
    inspect: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TextSettings:
        known = {f: params[f] for f in cls.__dataclass_fields__ if f in params and params[f] is not None}
        if "stop" in known:
            stop = known["stop"]
            known["stop"] = tuple(s for s in ([stop] if isinstance(stop, str) else stop) if s)
        if "messages" in known:
            known["messages"] = tuple(dict(m) for m in known["messages"])
        settings = cls(**known)
        settings.validate()
        return settings

    def to_params(self) -> dict[str, Any]:
        params = asdict(self)
        params["stop"] = list(self.stop)
        params["messages"] = [dict(m) for m in self.messages]
        return params

    def validate(self) -> None:
        problems = []
        if self.temperature < 0:
            problems.append("temperature must be 0 or more")
        if not 0 < self.top_p <= 1 or not 0 < self.typical_p <= 1:
            problems.append("top-p and typical-p must be in (0, 1]")
        if not 0 <= self.min_p <= 1:
            problems.append("min-p must be in [0, 1]")
        if self.top_k < 0 or self.max_new_tokens < 0 or self.repetition_window < 0:
            problems.append("top-k, max new tokens and the repetition window cannot be negative")
        if self.repetition_penalty <= 0:
            problems.append("repetition penalty must be above 0 (1 = off)")
        if self.mode not in ("completion", "chat"):
            problems.append(f"unknown mode {self.mode!r} (completion or chat)")
        if problems:
            raise UserError("; ".join(problems))


# One-line plain-words help for each control (tooltips), and slider ranges (min, max, step).
CONTROL_HELP: dict[str, str] = {
    "temperature": "How adventurous each word choice is: low = safe and repetitive, high = surprising and wild.",
    "top_k": "Only consider the K most likely next tokens (0 = no limit).",
    "top_p": "Only consider the most likely tokens that together make up this share of the probability (1 = off).",
    "min_p": "Drop tokens less likely than this fraction of the top choice (0 = off).",
    "typical_p": "Prefer tokens about as surprising as usual, skipping both the obvious and the bizarre (1 = off).",
    "repetition_penalty": "Make tokens already used recently less likely (1 = off).",
    "repetition_window": "How many recent tokens the repetition, presence and frequency penalties look at (0 = all).",
    "presence_penalty": "Push away from any token that has already appeared, once.",
    "frequency_penalty": "Push away from tokens in proportion to how often they have appeared.",
    "max_new_tokens": "The most tokens to write (for the Markov model, one token is one byte).",
    "seed": "The random seed: the same seed and settings write the same text.",
    "stop": "Stop writing when one of these texts appears (it is left out of the result).",
    "greedy": "Always take the single most likely token: repeatable, often dull.",
}
CONTROL_RANGES: dict[str, tuple[float, float, float]] = {
    "temperature": (0.0, 2.0, 0.05),
    "top_k": (0, 200, 1),
    "top_p": (0.05, 1.0, 0.01),
    "min_p": (0.0, 0.5, 0.01),
    "typical_p": (0.05, 1.0, 0.01),
    "repetition_penalty": (1.0, 2.0, 0.01),
    "repetition_window": (0, 1024, 16),
    "presence_penalty": (0.0, 2.0, 0.05),
    "frequency_penalty": (0.0, 2.0, 0.05),
    "max_new_tokens": (1, 2048, 1),
}

# A preset sets how to sample, never what to write or how long: these keys only.
PRESET_KEYS = (
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "greedy",
)

PRESETS: dict[str, dict[str, Any]] = {
    # Near-deterministic: facts, code, definitions.
    "Precise": {
        "temperature": 0.3,
        "top_k": 20,
        "top_p": 0.9,
        "min_p": 0.0,
        "typical_p": 1.0,
        "repetition_penalty": 1.15,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "greedy": False,
    },
    # The defaults: varied but coherent.
    "Balanced": {k: v for k, v in asdict(TextSettings()).items() if k in PRESET_KEYS},
    # Surprising: hotter, min-p instead of top-k keeps it from falling apart.
    "Creative": {
        "temperature": 1.1,
        "top_k": 0,
        "top_p": 1.0,
        "min_p": 0.05,
        "typical_p": 1.0,
        "repetition_penalty": 1.05,
        "presence_penalty": 0.3,
        "frequency_penalty": 0.1,
        "greedy": False,
    },
}


# ----------------------------------------------------------------------------------------------- sampling maths
# Each takes a 1-D float logits tensor and returns a new one; removed tokens get -inf.


def apply_temperature(logits, temperature: float):
    """temperature -> 0 approaches argmax; callers treat exactly 0 as greedy."""
    return logits / max(float(temperature), 1e-6)


def top_k_filter(logits, k: int):
    """Keep exactly the k highest (ties broken by index); k <= 0 or >= vocabulary = off."""
    import torch

    if k <= 0 or k >= logits.numel():
        return logits
    keep = torch.zeros_like(logits, dtype=torch.bool)
    keep[torch.topk(logits, k).indices] = True
    return logits.masked_fill(~keep, -math.inf)


def _keep_smallest_mass(logits, order, probs_sorted, mass: float):
    """Keep the leading tokens of `order` until their probabilities add up to at least `mass`."""
    import torch

    before = torch.cumsum(probs_sorted, 0) - probs_sorted  # mass of the tokens ranked above each one
    keep_sorted = before < mass
    keep_sorted[0] = True
    keep = torch.zeros_like(logits, dtype=torch.bool)
    keep[order[keep_sorted]] = True
    return logits.masked_fill(~keep, -math.inf)


def top_p_filter(logits, p: float):
    """Nucleus: the smallest set of most likely tokens whose mass is >= p; p >= 1 = off."""
    import torch

    if p >= 1.0:
        return logits
    probs = torch.softmax(logits, -1)
    probs_sorted, order = torch.sort(probs, descending=True)
    return _keep_smallest_mass(logits, order, probs_sorted, p)


def typical_filter(logits, mass: float):
    """Locally typical sampling (Meister et al. 2022): rank by |surprisal - entropy|, keep mass >= `mass`."""
    import torch

    if mass >= 1.0:
        return logits
    log_probs = torch.log_softmax(logits, -1)
    probs = log_probs.exp()
    entropy = -(probs * log_probs.nan_to_num(neginf=0.0)).sum()
    deviation = (-log_probs - entropy).abs()
    order = torch.argsort(deviation)
    return _keep_smallest_mass(logits, order, probs[order], mass)


def min_p_filter(logits, min_p: float):
    """Drop tokens whose probability is below min_p x the most likely token's; 0 = off."""
    import torch

    if min_p <= 0:
        return logits
    probs = torch.softmax(logits, -1)
    return logits.masked_fill(probs < min_p * probs.max(), -math.inf)


def apply_repetition_penalty(logits, previous_ids, penalty: float):
    """CTRL-style: a token seen before has its logit divided by `penalty` if positive, multiplied if negative."""
    import torch

    if penalty == 1.0 or len(previous_ids) == 0:
        return logits
    ids = torch.as_tensor(sorted(set(int(i) for i in previous_ids)), dtype=torch.long)
    chosen = logits[ids]
    logits = logits.clone()
    logits[ids] = torch.where(chosen > 0, chosen / penalty, chosen * penalty)
    return logits


def apply_presence_frequency_penalty(logits, previous_ids, presence: float, frequency: float):
    """OpenAI-style: logit -= presence x [seen] + frequency x (times seen)."""
    import torch

    if (presence == 0 and frequency == 0) or len(previous_ids) == 0:
        return logits
    counts = torch.bincount(torch.as_tensor(list(previous_ids), dtype=torch.long), minlength=logits.numel())
    counts = counts[: logits.numel()].to(logits.dtype)
    return logits - presence * (counts > 0).to(logits.dtype) - frequency * counts


def process_logits(logits, previous_ids, settings: TextSettings):
    """All the controls in order. Returns the logits the next token is drawn from."""
    window = list(previous_ids)[-settings.repetition_window :] if settings.repetition_window else list(previous_ids)
    logits = apply_repetition_penalty(logits, window, settings.repetition_penalty)
    logits = apply_presence_frequency_penalty(logits, window, settings.presence_penalty, settings.frequency_penalty)
    if settings.greedy or settings.temperature == 0:
        return logits
    logits = apply_temperature(logits, settings.temperature)
    logits = top_k_filter(logits, settings.top_k)
    logits = top_p_filter(logits, settings.top_p)
    logits = typical_filter(logits, settings.typical_p)
    logits = min_p_filter(logits, settings.min_p)
    return logits


def choose_token(logits, settings: TextSettings, generator) -> int:
    import torch

    if settings.greedy or settings.temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float(), -1)
    return int(torch.multinomial(probs, 1, generator=generator))


def inspect_candidates(raw_logits, final_logits, decode, top: int = INSPECT_TOP) -> dict[str, list]:
    """Top candidates with probabilities before any control and after all of them (what was sampled from)."""
    import torch

    def listing(logits):
        probs = torch.softmax(logits.float(), -1)
        values, indices = torch.topk(probs, min(top, probs.numel()))
        return [
            {"id": int(i), "token": decode([int(i)]), "p": round(float(v), 5)}
            for v, i in zip(values, indices, strict=False)
        ]

    return {"before": listing(raw_logits), "after": listing(final_logits)}


# ----------------------------------------------------------------------------------------------- models


class TextModel:
    """What the sampling loop needs from a model."""

    name: str = ""
    max_context: int = 1024
    eos_id: int | None = None
    chat_template: str | None = None

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    def start(self, ids: list[int]):
        """Feed the prompt; returns (state, logits of the next token as a 1-D float tensor)."""
        raise NotImplementedError

    def step(self, state, token_id: int):
        """Feed one more token; returns (state, logits of the next token)."""
        raise NotImplementedError

    def space_led_tokens(self) -> list[int] | None:
        """Ids of the tokens that begin with a space, when the tokenizer glues spaces to words (BPE); else None."""
        return None

    def render_chat(self, messages: list[dict]) -> tuple[str, tuple[str, ...]]:
        """The prompt for a chat and the stop sequences that end the assistant's turn."""
        transcript = "".join(
            f"{m.get('role', 'user').capitalize()}: {m.get('content', '').strip()}\n" for m in messages
        )
        return transcript + "Assistant:", ("\nUser:",)


class HFTextModel(TextModel):
    """A transformers causal LM + its tokenizer; KV cache between steps; crops to the model's context."""

    def __init__(self, model, tokenizer, name: str = "") -> None:
        self.model, self.tokenizer, self.name = model, tokenizer, name
        config = model.config
        self.max_context = int(
            getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", 0) or 2048
        )
        self.eos_id = tokenizer.eos_token_id
        self.chat_template = getattr(tokenizer, "chat_template", None)
        self.device = next(model.parameters()).device

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def space_led_tokens(self) -> list[int] | None:
        if not hasattr(self, "_space_led"):
            # GPT-2 byte-level BPE writes a leading space as "Ġ", SentencePiece as "▁".
            vocab = self.tokenizer.get_vocab()
            ids = [i for t, i in vocab.items() if t[:1] in ("Ġ", "▁") and len(t) > 1]
            self._space_led = ids or None
        return self._space_led

    def _forward(self, ids: list[int], past):
        import torch

        with torch.inference_mode():
            out = self.model(torch.tensor([ids], device=self.device), past_key_values=past, use_cache=True)
        return out.past_key_values, out.logits[0, -1].float().cpu()

    def start(self, ids: list[int]):
        if not ids:
            ids = [self.eos_id if self.eos_id is not None else 0]  # GPT-2 convention: start of text = end of text
        ids = ids[-(self.max_context - 1) :]  # leave room for at least one new token
        past, logits = self._forward(ids, None)
        return {"ids": list(ids), "past": past}, logits

    def step(self, state, token_id: int):
        state["ids"].append(token_id)
        if len(state["ids"]) >= self.max_context:
            # Context full (GPT-2 raises IndexError past n_positions): keep the last three quarters and
            # re-read them. Costs one prompt-sized pass every max_context/4 tokens.
            state["ids"] = state["ids"][-(self.max_context * 3 // 4) :]
            state["past"], logits = self._forward(state["ids"], None)
            return state, logits
        state["past"], logits = self._forward([token_id], state["past"])
        return state, logits

    def render_chat(self, messages: list[dict]) -> tuple[str, tuple[str, ...]]:
        if self.chat_template:
            prompt = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
            return prompt, ()
        return super().render_chat(messages)


class MarkovTextModel(TextModel):
    """The byte n-gram model: tokens are bytes, the boundary symbol ends a text."""

    def __init__(self, ngrams, name: str = "") -> None:
        from studio.core import ngram as markov

        self.ngrams, self.name = ngrams, name
        self.max_context = 1_000_000  # only the last `order` bytes matter
        self.eos_id = ngrams.boundary
        self._to_text = markov.symbols_to_text

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return self._to_text(ids)

    def _logits(self, history):
        import torch

        return torch.from_numpy(self.ngrams.log_probs(history)).float()

    def start(self, ids: list[int]):
        history = list(ids[-self.ngrams.order :]) if ids else []
        return history, self._logits(history)

    def step(self, state, token_id: int):
        state = (state + [token_id])[-self.ngrams.order :]
        return state, self._logits(state)


def load_text_model(
    source: catalog.ModelSource, device: str = "cpu", dtype: str = "float32", online: bool = False
) -> TextModel:
    """A TextModel for a built-in/transformers folder, a hub id (from the local cache) or a Markov folder."""
    if source.kind == "markov":
        from studio.core import ngram as markov

        config = json.loads((Path(source.path) / "config.json").read_text(encoding="utf-8"))
        if config.get("tokens", markov.BYTE_TOKENS) != markov.BYTE_TOKENS:
            raise UserError(f"{source.name} is an n-gram model over {config['tokens']}, not over text")
        catalog.check_weights_file(Path(source.path) / "counts.safetensors")
        try:
            return MarkovTextModel(markov.NGramModel.load(source.path), source.name)
        except (OSError, KeyError, ValueError) as exc:
            raise catalog.CorruptModelError(f"{source.path}: cannot read the n-gram model ({exc})") from exc
    if source.kind in ("builtin", "transformers"):
        catalog.check_weights_folder(source.path)
        location, local_only = str(source.path), True
    elif source.kind == "hub":
        location, local_only = source.ref, not online
    else:
        raise UserError(f"{source.ref} is a {source.kind} model, not a language model")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(
            location, local_files_only=local_only, use_safetensors=True, dtype=getattr(torch, dtype)
        )
    except OSError as exc:
        if source.kind == "hub" and local_only:
            raise UserError(f"{source.ref} is not in the Hugging Face cache and the app is offline") from exc
        raise UserError(f"cannot load the language model {source.ref}: {exc}") from exc
    model.to(device).eval()
    return HFTextModel(model, tokenizer, source.name)


# ----------------------------------------------------------------------------------------------- generation


def visible_text(text: str, stops: tuple[str, ...]) -> str:
    """Hold back a tail that might be the start of a stop sequence, so a stop never flashes on screen."""
    hold = 0
    for stop in stops:
        for length in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:length]):
                hold = max(hold, length)
                break
    return text[: len(text) - hold] if hold else text


def find_stop(text: str, stops: tuple[str, ...]) -> tuple[int, str] | None:
    """(position, stop) of the earliest stop sequence in text, if any."""
    hits = [(text.find(s), s) for s in stops if s and s in text]
    return min(hits) if hits else None


@dataclass
class Generation:
    text: str  # the generated text only (stop sequence cut unless include_stop)
    prompt: str  # the exact text fed to the model (chat transcript in chat mode)
    token_ids: list[int]
    finish_reason: str  # "stop" | "eos" | "length"
    tokens_per_s: float
    first_token_s: float
    inspector: list[dict] | None = None


def only_these_tokens(final, raw, allowed_ids):
    """Mask all but allowed_ids; if the filters already removed every allowed one, fall back to the raw logits."""
    import torch

    mask = torch.full_like(final, -math.inf)
    mask[allowed_ids] = 0.0
    restricted = final + mask
    return restricted if torch.isfinite(restricted).any() else raw + mask


def generate(
    model: TextModel, prompt: str, settings: TextSettings, seed: int, report=None, cancelled=None
) -> Generation:
    """The sampling loop. report(Progress) after every token (preview = text so far); cancelled() checked per token."""
    import torch

    stops = tuple(settings.stop)
    if settings.mode == "chat":
        messages = list(settings.messages) or [{"role": "user", "content": prompt}]
        prompt, chat_stops = model.render_chat(messages)
        stops = stops + tuple(s for s in chat_stops if s not in stops)
    generator = torch.Generator().manual_seed(int(seed))
    # Token healing for the common case of a prompt ending in one space: BPE models learned spaces glued to the
    # next word ("Ġcat"), so a lone trailing space token makes them write odd text with doubled spaces.
    # Feed the prompt without it and make the first token one that starts with a space; that space is the
    # user's own, so it is not repeated in the output.
    heal = model.space_led_tokens() if prompt.endswith(" ") and not prompt.endswith("  ") else None
    prompt_ids = model.encode(prompt[:-1] if heal else prompt)
    started = time.perf_counter()
    state, logits = model.start(prompt_ids) if settings.max_new_tokens > 0 else (None, None)
    history = list(prompt_ids)
    generated: list[int] = []
    inspector: list[dict] | None = [] if settings.inspect else None
    text, finish, first_token_s = "", "length", 0.0
    for index in range(settings.max_new_tokens):
        if cancelled is not None and cancelled():
            raise Cancelled()
        final = process_logits(logits, history, settings)
        if heal and index == 0:
            final = only_these_tokens(final, logits, heal)
        token = choose_token(final, settings, generator)
        if index == 0:
            first_token_s = time.perf_counter() - started
        if inspector is not None:
            # start/end: the characters of the output this token produced (what the cursor points at)
            entry = {"token": model.decode([token]), "id": token, "start": len(text), "end": len(text)}
            inspector.append({**entry, **inspect_candidates(logits, final, model.decode)})
        if token == model.eos_id:
            finish = "eos"
            break
        generated.append(token)
        history.append(token)
        text = model.decode(generated)
        if heal and text.startswith(" "):
            text = text[1:]
        if inspector is not None:
            inspector[-1]["end"] = len(text)
        hit = find_stop(text, stops)
        if hit:
            position, stop = hit
            text = text[: position + (len(stop) if settings.include_stop else 0)]
            finish = "stop"
            break
        if report is not None:
            report(Progress(index + 1, settings.max_new_tokens, preview=visible_text(text, stops)))
        if index + 1 < settings.max_new_tokens:
            state, logits = model.step(state, token)
    elapsed = time.perf_counter() - started
    for entry in inspector or []:  # a cut stop sequence takes its tokens' characters with it
        entry["start"], entry["end"] = min(entry["start"], len(text)), min(entry["end"], len(text))
    if report is not None:
        # The last preview is always the final text (the stop cut off, a held-back tail released).
        report(Progress(settings.max_new_tokens, settings.max_new_tokens, preview=text, message=finish))
    rate = len(generated) / elapsed if elapsed > 0 and generated else 0.0
    return Generation(text, prompt, generated, finish, rate, first_token_s, inspector)


def resolve_seed(seed: int | None) -> int:
    """-1 or None = a fresh random seed; the recipe records the one used."""
    if seed is None or seed < 0:
        return random.SystemRandom().randrange(2**31)
    return int(seed)


def model_key(source: catalog.ModelSource, device: str, dtype: str) -> tuple:
    return (source.kind, str(source.path or source.ref), device, dtype)


def source_hash(source: catalog.ModelSource) -> str:
    if source.path is None:
        return ""
    if source.kind == "markov":
        return catalog.content_hash(Path(source.path) / "counts.safetensors")
    return catalog.content_hash(source.path)


def generate_task(job: Job, ctx: TaskContext) -> Result:
    """Worker entry point: job.recipe (modality "text") -> one text Artifact with the complete recipe."""
    recipe = job.recipe
    if recipe is None:
        raise UserError("text generation needs a recipe")
    settings = TextSettings.from_params(dict(recipe.params))
    source = catalog.resolve(recipe.model or DEFAULT_MODEL)
    device = recipe.device or ctx.device.device
    # fp16 matmuls on CPU are slow and not always available: CPU always computes in fp32.
    dtype = "float32" if device == "cpu" else (recipe.dtype or ctx.device.dtype)
    model = ctx.models.get(
        "text",
        model_key(source, device, dtype),
        lambda: load_text_model(source, device, dtype, online=bool(job.args.get("online"))),
    )
    seed = resolve_seed(recipe.seed)
    result = generate(model, recipe.prompt, settings, seed, report=ctx.report, cancelled=ctx.cancelled)
    complete = replace(
        recipe,
        model=recipe.model or DEFAULT_MODEL,
        model_hash=source_hash(source),
        seed=seed,
        params=settings.to_params(),
        device=device,
        dtype=dtype,
    )
    info = {
        "prompt": result.prompt,
        "tokens_per_s": result.tokens_per_s,
        "first_token_s": result.first_token_s,
        "tokens": len(result.token_ids),
        "finish_reason": result.finish_reason,
    }
    if result.inspector is not None:
        info["inspector"] = result.inspector
    return Result(artifacts=[Artifact("text", complete, result.text, info=info)])


def generate_text(recipe: Recipe, report=None, cancelled=None, device: str = "cpu") -> tuple[str, Recipe, dict]:
    """Without the worker (CLI, benchmarks): returns (text, complete recipe, info)."""

    class _OneModel:
        def get(self, slot, key, loader):
            return loader()

    from studio.core.devices import DeviceChoice

    ctx = TaskContext(
        report=report or (lambda p: None),
        cancelled=cancelled or (lambda: False),
        models=_OneModel(),
        device=DeviceChoice(device, "float32", device.upper()),
    )
    artifact = generate_task(Job("text.generate", recipe), ctx).artifacts[0]
    return artifact.payload, artifact.recipe, artifact.info


def describe_settings() -> str:
    return json.dumps(TextSettings().to_params(), indent=2)
