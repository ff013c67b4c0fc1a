"""Composing: the recipe in, a piece out, bar by bar. The worker's `music.generate` task is `generate_task`.

A fresh piece starts by sampling the tags the prompt leaves open (style, key, metre, tempo); a continuation
starts from the tags and notes of the piece it continues. Then tokens are sampled under the grammar
(sampling.py) until the bars asked for are written, and the recipe comes back complete: re-running it gives
the same notes.

The pieces: piece.py (notes, keys), tokenizer.py (notes <-> tokens), prompt.py (what a prompt asks for),
models.py (the GPT and the n-gram behind one interface), sampling.py (filters, grammar, tag draws).
torch is imported inside functions: importing this module must stay cheap.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.jobs import Artifact, Cancelled, Progress, Result, UserError
from studio.core.recipe import Recipe
from studio.engine.music.models import MusicModel, load_music_model
from studio.engine.music.piece import (
    MAX_VOICES,
    METRES,
    STYLES,
    MusicPiece,
    Note,
    continuation_bar,
    estimate_key,
    parse_key,
    seam_shift,
    shifted,
    tempo_bucket,
)
from studio.engine.music.prompt import PromptTags, parse_prompt
from studio.engine.music.sampling import Grammar, choose_tags, filter_logits, sample
from studio.engine.music.settings import DEFAULT_MODEL, NOTE_PARAMS, MusicSettings
from studio.engine.music.tokenizer import MusicTokenizer, Tags, default_tempo

# The synth's timbres and the General MIDI programs written for them in exported MIDI files.
INSTRUMENT_PROGRAMS = {"piano": 0, "organ": 19, "pluck": 24}
# What a recipe leaves out: the panel's defaults (settings.py). 0 tempo and voices and "" key mean "from the prompt".
DEFAULT_PARAMS = {name: getattr(MusicSettings(), name) for name in NOTE_PARAMS}


@dataclass
class Generation:
    piece: MusicPiece
    recipe: Recipe  # complete: re-running it gives the same notes
    understood: tuple[str, ...]
    ignored: tuple[str, ...]
    tokens: list[int]
    seconds: float = 0.0


@dataclass(frozen=True)
class _Settings:
    """What the recipe asks for, read once."""

    as_set: dict[str, Any]  # the user's choices ("" key, 0 tempo/voices = from the prompt): the recipe keeps these
    seed: int
    wanted: PromptTags
    key_override: tuple[int, str] | None
    bars: int
    voices: int
    temperature: float
    top_k: int
    top_p: float
    tempo: float | None  # bpm; None (or 0): from the prompt, the continued piece or the style
    instrument: str


@dataclass
class _Opening:
    """Where sampling starts: the tags, and for a continuation the notes before and where the new bars go."""

    tags: Tags
    tag_ids: list[int]
    prefix_notes: list[Note] = field(default_factory=list)
    prefix_bars: int = 0  # bars of the continued piece, in the model's metre
    seam_shift: float = 0.0  # beats to move the new notes by to land on the piece's own next bar line


def generate(model: MusicModel, recipe: Recipe, report: Callable[[Progress], None] | None = None,
             cancelled: Callable[[], bool] | None = None, prefix: MusicPiece | None = None) -> Generation:
    """Compose (or continue `prefix`) by the recipe. Plain function: no worker needed."""
    started = time.perf_counter()
    settings = _read_settings(recipe)
    rng = _seeded_rng(model, settings.seed)
    state = model.start([])
    if prefix is not None:
        opening = _open_continuation(model, state, prefix, settings)
    else:
        tags, tag_ids = choose_tags(model, state, settings.wanted, settings.key_override, rng, settings.temperature)
        opening = _Opening(tags, tag_ids)
    grammar = Grammar(model.tokenizer, opening.tags.metre, settings.bars, settings.voices,
                      bar_offset=opening.prefix_bars)
    events = _sample_events(model, state, grammar, opening, settings, rng, report, cancelled)
    notes = opening.prefix_notes + shifted(grammar.notes, opening.seam_shift)
    piece = _piece(notes, opening.tags, settings, prefix)
    return Generation(piece, _complete_recipe(recipe, model, settings, piece), settings.wanted.understood,
                      settings.wanted.ignored, opening.tag_ids + events, time.perf_counter() - started)


def _read_settings(recipe: Recipe) -> _Settings:
    params = {**DEFAULT_PARAMS, **{k: v for k, v in recipe.params.items() if v is not None or k == "continue_from"}}
    seed = int(recipe.seed) if recipe.seed is not None and int(recipe.seed) >= 0 else random.randrange(2**31)
    return _Settings(
        as_set=params, seed=seed, wanted=parse_prompt(recipe.prompt),
        key_override=parse_key(params["key"]) if params.get("key") else None,
        bars=max(1, int(params["bars"])),
        # 0 (the panel's "auto") leaves the number to the model, which writes the style's usual texture
        # (four voices for a chorale, one for a folk tune): the grammar then only caps it at MAX_VOICES.
        voices=min(MAX_VOICES, int(params["voices"] or 0)) or MAX_VOICES,
        temperature=params["temperature"], top_k=params["top_k"], top_p=params["top_p"],
        tempo=params["tempo"], instrument=str(params["instrument"]),
    )


def _seeded_rng(model: MusicModel, seed: int) -> np.random.Generator:
    if model.kind == "gpt":
        import torch

        torch.manual_seed(seed)  # dropout is off in eval mode; this only pins any torch-side randomness
    return np.random.default_rng(seed)


def _open_continuation(model: MusicModel, state: dict, prefix: MusicPiece, settings: _Settings) -> _Opening:
    """Feed the tags and the prefix's last bars that fit, leaving room to write."""
    tok = model.tokenizer
    tags, tag_ids = _prefix_tags(tok, prefix, settings.wanted, settings.key_override)
    bars = continuation_bar(prefix, tags.metre)
    body = tok.encode_notes(prefix.notes, tags.metre, end_with_eos=False, bars=bars)
    context_ids = _crop(tag_ids, body, model.context - 64, tok.bar_id)
    model.next_logits(state, context_ids[:-1])
    model.next_logits(state, context_ids[-1:])
    return _Opening(tags, tag_ids, list(prefix.notes), bars, seam_shift(prefix, tags.metre, bars))


def _prefix_tags(tok: MusicTokenizer, piece: MusicPiece, wanted: PromptTags,
                 key_override: tuple[int, str] | None) -> tuple[Tags, list[int]]:
    """Tags for continuing a piece: its own key, metre and style unless the prompt or the key box say otherwise."""
    if key_override:
        tonic, mode = key_override
    else:
        try:
            tonic, mode = parse_key(piece.key)
        except UserError:
            tonic, mode = estimate_key(piece.notes)
    metre = piece.metre if piece.metre in METRES else "4/4"
    style = wanted.style or (piece.style if piece.style in STYLES else "tune")
    tags = Tags(style, tonic, mode, metre, wanted.tempo or tempo_bucket(piece.tempo_bpm))
    return tags, tok.tag_ids(tags)


def _sample_events(model: MusicModel, state: dict, grammar: Grammar, opening: _Opening, settings: _Settings,
                   rng: np.random.Generator, report: Callable[[Progress], None] | None,
                   cancelled: Callable[[], bool] | None) -> list[int]:
    """Sample tokens under the grammar until it closes the piece; returns the tokens generated."""
    generated: list[int] = []
    token = model.tokenizer.bar_id  # every continuation and every fresh piece starts on a bar line
    while True:
        if cancelled and cancelled():
            raise Cancelled()
        grammar.feed(token)
        if grammar.finished:
            return generated
        generated.append(token)
        logits = _advance(model, state, opening.tag_ids, token)
        allowed = np.where(grammar.allowed(), logits, -np.inf)
        token = sample(filter_logits(allowed, settings.temperature, settings.top_k, settings.top_p), rng)
        if report:
            report(_progress(grammar, opening, settings.bars))
        if len(generated) > 400 * settings.bars + 1000:  # a runaway model; grammar should make this unreachable
            return generated


def _advance(model: MusicModel, state: dict, tag_ids: list[int], token: int) -> np.ndarray:
    """Feed one token; when the context is full, start it again from the tags and the latest bars."""
    if len(state["ids"]) + 1 < model.context:
        return model.next_logits(state, [token])
    tok = model.tokenizer
    context_ids = _crop(tag_ids, _events_only(tok, state["ids"]) + [token], model.context // 2, tok.bar_id)
    model.reset_cache(state, [])
    return model.next_logits(state, context_ids)


def _events_only(tok: MusicTokenizer, ids: Sequence[int]) -> list[int]:
    """The event tokens of a sequence: everything after BOS and the four tags."""
    return list(ids[5:]) if ids and ids[0] == tok.bos_id else list(ids)


def _crop(tag_ids: list[int], events: list[int], limit: int, bar_id: int) -> list[int]:
    """Tags + the longest tail of events that starts on a bar line and fits in `limit` tokens.

    State (voice, velocity) resets at every Bar, so a tail that starts on a bar reads the same as in full.
    """
    room = max(1, limit - len(tag_ids))
    if len(events) <= room:
        return tag_ids + list(events)
    start = len(events) - room
    for i in range(start, len(events)):
        if events[i] == bar_id:
            return tag_ids + list(events[i:])
    return tag_ids + list(events[start:])


def _progress(grammar: Grammar, opening: _Opening, bars: int) -> Progress:
    done = min(grammar.bars_done, bars)
    preview = opening.prefix_notes + shifted(grammar.notes, opening.seam_shift)  # the whole piece, prefix included
    return Progress(done, bars, preview=preview, message=f"bar {done} of {bars}")


def _piece(notes: list[Note], tags: Tags, settings: _Settings, prefix: MusicPiece | None) -> MusicPiece:
    voices = max((n.voice for n in notes), default=0) + 1
    own_tempo = prefix.tempo_bpm if prefix is not None else default_tempo(tags)
    tempo = float(settings.tempo or settings.wanted.bpm or own_tempo)
    programs = list(prefix.programs) if prefix is not None else []
    programs += [INSTRUMENT_PROGRAMS.get(settings.instrument, 0)] * (voices - len(programs))
    return MusicPiece(notes, tempo, tags.key, tags.metre, programs[:voices], tags.style)


def _complete_recipe(recipe: Recipe, model: MusicModel, settings: _Settings, piece: MusicPiece) -> Recipe:
    # The key and tempo used are recorded beside the settings, not over them: a restored recipe must not pin a
    # key or tempo the user left to the prompt (the next prompt would then be silently overridden).
    params = {**settings.as_set, "bars": settings.bars, "key_used": piece.key, "tempo_used": piece.tempo_bpm}
    return Recipe(
        modality="music", prompt=recipe.prompt, negative_prompt=recipe.negative_prompt,
        model=recipe.model, model_hash=recipe.model_hash or _model_hash(model), seed=settings.seed, params=params,
        device=model.device, dtype=model.dtype, parents=recipe.parents,
    )


def _model_hash(model: MusicModel) -> str:
    from studio.core import catalog

    try:
        return catalog.content_hash(model.path)
    except OSError:
        return ""


# --- worker task ---------------------------------------------------------------------------------


def load_prefix(job_args: dict, recipe: Recipe) -> MusicPiece | None:
    """The piece to continue: a MusicPiece handed in job.args["piece"], else the MIDI file continue_from names."""
    piece = job_args.get("piece") if job_args else None
    if piece is not None:
        return piece
    path = recipe.param("continue_from")
    if path:
        from studio.engine.music.midi import read_midi

        if not Path(path).exists():
            raise UserError(f"cannot continue {path}: the file does not exist")
        return read_midi(Path(path))
    return None


def generate_task(job, ctx) -> Result:
    """Worker entry point: compose or continue by job.recipe, reporting notes as they come."""
    from studio.core import adapters as lora
    from studio.core import catalog
    from studio.engine.music import musicgen

    recipe = job.recipe
    if recipe is None:
        raise UserError("music generation needs a recipe")
    ref = recipe.model or DEFAULT_MODEL
    source = catalog.resolve(ref)
    if musicgen.is_musicgen(source):  # text-to-audio: another backend behind the same panel
        return musicgen.generate_task(job, ctx, source)
    recipe = replace(recipe, params={k: v for k, v in recipe.params.items() if k not in musicgen.OWN_PARAMS})
    adapters = lora.resolve(recipe.param("adapters"), "music")  # checked, with their hashes: the recipe records them
    if adapters:
        recipe = recipe.with_params(adapters=adapters)
    device = "cpu"  # the built-in models are tiny: the CPU is faster than a round trip to a GPU
    model = ctx.models.get("music", (ref, device) + lora.cache_key(adapters),
                           lambda: load_music_model(source, device, adapters))
    prefix = load_prefix(job.args, recipe)
    result = generate(model, replace(recipe, model=ref), report=ctx.report, cancelled=ctx.cancelled, prefix=prefix)
    info = {"understood": list(result.understood), "ignored": list(result.ignored), "seconds": result.seconds,
            "music_seconds": result.piece.seconds, "notes": len(result.piece.notes),
            "prefix_notes": len(prefix.notes) if prefix is not None else 0}
    return Result(artifacts=[Artifact(modality="music", recipe=result.recipe, payload=result.piece, info=info)])


# benchmarks/music_speed.py reads these two as `generate.X` (`from studio.engine.music import generate as M`);
# their home is piece.py. Drop this line once the benchmark imports them from there.
from studio.engine.music.piece import in_key_fraction, key_name  # noqa: E402, F401
