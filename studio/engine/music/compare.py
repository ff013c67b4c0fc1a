"""Compare families for music: one model's run of a side-by-side comparison, and the saving of the comparison.

Job kind "music.compare" (see studio/media.py), two uses:
  args {"family": NAME}      compose with job.recipe exactly as music.generate does (same loop, grammar and model
                             cache) and measure the piece's surprise under the model that wrote it; returns
                             Result.value {"family", "model", "notes", "key", "metre", "tempo", "tokens",
                             "tokens_per_s", "surprise_bits"} (notes as [pitch, start, duration, velocity, voice]).
  args {"columns": [...]}    the finished columns become one music Artifact: the three pieces one after another
                             (a bar's rest between them) in one MIDI file, its recipe holding the three models, the
                             shared settings and the columns, so the Gallery entry restores the whole comparison.

Surprise: the mean of -log2 P(token | all before it) over the piece's tokens, P being the model's own distribution
before the grammar and the sampling controls, in bits per token (all three families read the same tokens).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from studio.core import catalog
from studio.core import compare as comparison
from studio.core.jobs import Artifact, Job, Result, TaskContext, UserError
from studio.engine.music import musicgen
from studio.engine.music.generate import generate
from studio.engine.music.models import load_music_model
from studio.engine.music.piece import MusicPiece, Note, metre_beats

OPERATION = "music.compare"


class RecordingModel:
    """A MusicModel that scores each token it is fed under the distribution it returned the call before."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self._pending: np.ndarray | None = None
        self.bits: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def next_logits(self, state: dict, new_ids):
        if self._pending is not None and len(new_ids):
            self.bits.append(-float(self._pending[int(new_ids[0])]) / math.log(2.0))
        self._pending = self._model.next_logits(state, new_ids)
        return self._pending

    def reset_cache(self, state: dict, ids) -> None:
        self._pending = None  # the next call feeds a cropped context, not the next token
        self._model.reset_cache(state, ids)


def compare_task(job: Job, ctx: TaskContext) -> Result:
    return comparison.compare_task(job, ctx, _run, _save)


def _run(job: Job, recipe, ctx: TaskContext) -> Result:
    source = catalog.resolve(recipe.model)
    recipe = replace(recipe, params={k: v for k, v in recipe.params.items() if k not in musicgen.OWN_PARAMS})
    device = "cpu"  # as music.generate: the two share the loaded model
    model = ctx.models.get("music", (recipe.model, device), lambda: load_music_model(source, device))
    recording = RecordingModel(model)
    family = job.args.get("family", "")
    # the comparison view's preview, not the Music panel's roll (which takes only a list of notes)
    report = comparison.tagged(ctx, family, "notes", lambda preview: list(preview or []))
    result = generate(recording, recipe, report=report, cancelled=ctx.cancelled)
    piece = result.piece
    tokens = len(result.tokens)
    value = {
        "family": family, "model": recipe.model, "key": piece.key, "metre": piece.metre,
        "tempo": piece.tempo_bpm, "style": piece.style, "programs": list(piece.programs),
        "notes": [[n.pitch, n.start, n.duration, n.velocity, n.voice] for n in piece.notes],
        "tokens": tokens, "token_ids": list(result.tokens), "tokens_per_s": tokens / result.seconds if result.seconds > 0 else 0.0,
        "surprise_bits": sum(recording.bits) / len(recording.bits) if recording.bits else None,
        "seed": result.recipe.seed,
    }
    return Result(value=value)


def notes_of(column: dict) -> list[Note]:
    return [Note(int(p), float(s), float(d), int(v), int(voice)) for p, s, d, v, voice in column.get("notes", [])]


def _save(job: Job, recipe) -> Result:
    columns = list(job.args["columns"])
    if not columns:
        raise UserError("nothing to save: the comparison has no finished column")
    first = columns[0]
    bar = metre_beats(first.get("metre", "4/4"))
    notes: list[Note] = []
    offset = 0.0
    for column in columns:
        own = notes_of(column)
        notes += [Note(n.pitch, n.start + offset, n.duration, n.velocity, n.voice) for n in own]
        end = max((n.end for n in own), default=0.0)
        offset += (math.ceil(end / bar) + 1) * bar  # the next family starts a bar after this one ends
    voices = max((n.voice for n in notes), default=0) + 1
    programs = (list(first.get("programs") or [0]) * voices)[:voices]
    piece = MusicPiece(notes, float(first.get("tempo") or 100.0), first.get("key", "C major"),
                       first.get("metre", "4/4"), programs, first.get("style", "tune"))
    return Result(artifacts=[Artifact("music", recipe, piece, info={"columns": len(columns)})])
