"""Text generation with a causal language model: every sampling control, streaming, stop sequences.

One sampling loop of our own (not `model.generate`) so that we control streaming, per-token cancel and
the token inspector. It drives any `TextModel` (models.py: a transformers causal LM or an n-gram model), which
hands the loop one row of logits per step; the sampling maths (sampling.py) are pure functions over that row.

No Qt here; torch and transformers are imported inside functions (start-up time).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

from studio.core import adapters as lora
from studio.core import catalog
from studio.core.jobs import Artifact, Cancelled, Job, Progress, Result, TaskContext, UserError
from studio.core.recipe import Recipe
from studio.engine.text.chain import SamplerChain
from studio.engine.text.llama import choose_runtime, load_for_runtime, runtime_for_adapters
from studio.engine.text.models import PLAIN_ANSWER_CUE, TextModel, load_text_model  # noqa: F401 - re-exported
from studio.engine.text.sampling import Candidates, inspect_candidates
from studio.engine.text.settings import DEFAULT_MODEL, PRESET_KEYS, PRESETS, TextSettings  # noqa: F401 - re-exported

# ----------------------------------------------------------------------------------------------- settings
# TextSettings, the presets and the default model live in settings.py (the panel's light face); here, the help.


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

# ----------------------------------------------------------------------------------------------- sampling maths
# Each takes a 1-D float logits tensor and returns a new one; removed tokens get -inf.


# ----------------------------------------------------------------------------------------------- models


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
    import numpy as np

    mask = np.full(final.shape, -np.inf, dtype=np.float32)
    mask[np.asarray(allowed_ids, dtype=np.int64)] = 0.0
    restricted = final + mask
    return restricted if np.isfinite(restricted).any() else np.asarray(raw, dtype=np.float32) + mask


MAX_BANS_PER_POSITION = 32  # a position where this many tokens all led into banned strings keeps the last one


def banned_at(text: str, banned: tuple[str, ...]) -> int | None:
    """Where the earliest banned string (case-insensitive) starts in `text`, or None."""
    lowered = text.lower()
    hits = [lowered.find(b.lower()) for b in banned if b and b.lower() in lowered]
    return min(hits) if hits else None


class _Writer:
    """One generation's state, for the loop in `generate`: the tokens so far, the text, the inspector entries."""

    def __init__(self, model: TextModel, settings: TextSettings, prompt_ids: list[int], heal) -> None:
        self.model, self.settings, self.prompt_ids, self.heal = model, settings, prompt_ids, heal
        self.generated: list[int] = []
        self.history = list(prompt_ids)  # prompt + generated: what the penalties look at
        self.ends: list[int] = []  # the text's length after each token (where a banned string began)
        self.text = ""
        self.inspector: list[dict] | None = [] if settings.inspect else None
        self.bans: dict[int, set[int]] = {}  # position -> tokens that led into a banned string there
        self._pieces: dict[int, str] = {}  # token id -> its text (the inspector names 20 candidates a token)

    def add(self, token: int, raw, final) -> None:
        if self.inspector is not None:
            # start/end: the characters of the output this token produced (what the cursor points at)
            entry = {"token": self.piece([token]), "id": token, "start": len(self.text)}
            self.inspector.append({**entry, **inspect_candidates(raw, final, self.piece)})
        self.generated.append(token)
        self.history.append(token)
        text = self.model.decode(self.generated)
        self.text = text[1:] if self.heal and text.startswith(" ") else text
        self.ends.append(len(self.text))
        if self.inspector is not None:
            self.inspector[-1]["end"] = len(self.text)

    def piece(self, ids: list[int]) -> str:
        token = ids[0]
        if token not in self._pieces:
            self._pieces[token] = self.model.decode([token])
        return self._pieces[token]

    def back_up_before_banned(self) -> bool:
        """A banned string appeared: forget the tokens from the one that began it and ban that token there."""
        where = banned_at(self.text, self.settings.banned_strings) if self.settings.banned_strings else None
        if where is None:
            return False
        position = next(i for i, end in enumerate(self.ends) if end > where)
        refused = self.bans.setdefault(position, set())
        if len(refused) >= MAX_BANS_PER_POSITION:
            return False  # every way on from here led into one; keep what was written
        refused.add(self.generated[position])
        del self.generated[position:], self.ends[position:], self.history[len(self.prompt_ids) + position:]
        if self.inspector is not None:
            del self.inspector[position:]
        text = self.model.decode(self.generated)
        self.text = text[1:] if self.heal and text.startswith(" ") else text
        return True

    def shown(self, stops: tuple[str, ...]) -> str:
        """The text with a tail held back that might begin a stop or a banned string (neither ever flashes)."""
        text = visible_text(self.text, stops)
        if self.settings.banned_strings:
            lowered = visible_text(text.lower(), tuple(b.lower() for b in self.settings.banned_strings))
            text = text[: len(lowered)]
        return text


def generate(
    model: TextModel, prompt: str, settings: TextSettings, seed: int, report=None, cancelled=None
) -> Generation:
    """The sampling loop. report(Progress) after every token (preview = text so far); cancelled() checked per token."""
    stops = tuple(settings.stop)
    if settings.mode == "chat":
        messages = list(settings.messages) or [{"role": "user", "content": prompt}]
        prompt, chat_stops = model.render_chat(messages)
        stops = stops + tuple(s for s in chat_stops if s not in stops)
    chain = SamplerChain(settings, model, seed)
    # Token healing for the common case of a prompt ending in one space: BPE models learned spaces glued to the
    # next word ("Ġcat"), so a lone trailing space token makes them write odd text with doubled spaces.
    # Feed the prompt without it and make the first token one that starts with a space; that space is the
    # user's own, so it is not repeated in the output.
    heal = model.space_led_tokens() if prompt.endswith(" ") and not prompt.endswith("  ") else None
    prompt_ids = model.encode(prompt[:-1] if heal else prompt)
    started = time.perf_counter()
    state, logits = model.start(prompt_ids) if settings.max_new_tokens > 0 else (None, None)
    out = _Writer(model, settings, prompt_ids, heal)
    answer_on_cue_line = settings.mode == "chat" and prompt.endswith(PLAIN_ANSWER_CUE)
    finish, first_token_s, tokens_made = "length", 0.0, 0
    while len(out.generated) < settings.max_new_tokens:
        if cancelled is not None and cancelled():
            raise Cancelled()
        final = chain.process(logits, out.history, frozenset(refused_here(out, model, answer_on_cue_line)))
        if heal and not out.generated:
            final = Candidates(only_these_tokens(final.full(), logits, heal), None, logits.numel())
        token = chain.choose(final)
        tokens_made += 1
        if tokens_made == 1:
            first_token_s = time.perf_counter() - started
        if token == model.eos_id:
            if out.inspector is not None:
                out.inspector.append({"token": out.piece([token]), "id": token, "start": len(out.text),
                                      "end": len(out.text), **inspect_candidates(logits, final, out.piece)})
            finish = "eos"
            break
        out.add(token, logits, final)
        if out.back_up_before_banned():
            state, logits = model.start(prompt_ids + out.generated)  # re-read up to where it backed up to
            continue
        hit = find_stop(out.text, stops)
        if hit:
            position, stop = hit
            out.text = out.text[: position + (len(stop) if settings.include_stop else 0)]
            finish = "stop"
            break
        if report is not None:
            report(Progress(len(out.generated), settings.max_new_tokens, preview=out.shown(stops)))
        if len(out.generated) < settings.max_new_tokens:
            state, logits = model.step(state, token)
    return _finished(out, prompt, finish, started, first_token_s, report)


def refused_here(out: _Writer, model: TextModel, answer_on_cue_line: bool) -> set[int]:
    """Tokens the next position may not take: those that led into a banned string here; the end before
    min_new_tokens (a Continue after an end would add nothing); and, in a plain chat transcript while the answer is
    still blank, the end, a line break or more space after the first (see models.PLAIN_ANSWER_CUE)."""
    refused = out.bans.get(len(out.generated), set())
    blank = answer_on_cue_line and not out.text.strip()
    if model.eos_id is not None and (len(out.generated) < out.settings.min_new_tokens or blank):
        refused = refused | {model.eos_id}
    if blank:
        refused = refused | model.line_break_tokens() | (model.blank_tokens() if out.generated else frozenset())
    return refused


def _finished(out: _Writer, prompt: str, finish: str, started: float, first_token_s: float, report) -> Generation:
    elapsed = time.perf_counter() - started
    text, total = out.text, out.settings.max_new_tokens
    for entry in out.inspector or []:  # a cut stop sequence takes its tokens' characters with it
        entry["start"], entry["end"] = min(entry["start"], len(text)), min(entry["end"], len(text))
    if report is not None:
        # The last preview is always the final text (the stop cut off, a held-back tail released).
        report(Progress(total, total, preview=text, message=finish))
    rate = len(out.generated) / elapsed if elapsed > 0 and out.generated else 0.0
    return Generation(text, prompt, out.generated, finish, rate, first_token_s, out.inspector)


def resolve_seed(seed: int | None) -> int:
    """-1 or None = a fresh random seed; the recipe records the one used."""
    if seed is None or seed < 0:
        return random.SystemRandom().randrange(2**31)
    return int(seed)


def model_key(source: catalog.ModelSource, device: str, dtype: str, runtime: str = "auto") -> tuple:
    return (source.kind, str(source.path or source.ref), device, dtype, runtime)


def source_hash(source: catalog.ModelSource, runtime: str = "auto") -> str:
    if source.path is None:
        return ""
    if runtime == "llama.cpp" and source.kind != "gguf":  # a built-in's GGUF: the file that ran
        from studio.engine.text.llama import builtin_gguf

        return catalog.content_hash(builtin_gguf(source.path))
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
    adapters = lora.resolve(settings.adapters, "text")  # checked, with their hashes: the recipe records them
    settings = replace(settings, adapters=tuple(adapters))
    device = recipe.device or ctx.device.device
    # fp16 matmuls on CPU are slow and not always available: CPU always computes in fp32.
    dtype = "float32" if device == "cpu" else (recipe.dtype or ctx.device.dtype)
    runtime = choose_runtime(source, runtime_for_adapters(settings.runtime, adapters))
    model = ctx.models.get(
        "text",
        model_key(source, device, dtype, runtime) + lora.cache_key(adapters),
        lambda: load_for_runtime(source, device, dtype, bool(job.args.get("online")), runtime, adapters),
    )
    seed = resolve_seed(recipe.seed)
    result = generate(model, recipe.prompt, settings, seed, report=ctx.report, cancelled=ctx.cancelled)
    complete = replace(
        recipe,
        model=recipe.model or DEFAULT_MODEL,
        model_hash=source_hash(source, runtime),
        seed=seed,
        params=replace(settings, runtime=runtime).to_params(),
        device=device,
        dtype=dtype,
    )
    info = {
        "prompt": result.prompt,
        "tokens_per_s": result.tokens_per_s,
        "first_token_s": result.first_token_s,
        "tokens": len(result.token_ids),
        "finish_reason": result.finish_reason,
        "runtime": runtime,
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
