"""Sampling music tokens: logit filters, one draw, the grammar that keeps every sampled piece readable, and
the draw of the tags a prompt leaves open.

numpy only, imported at the top: a sampler always runs beside a model.
"""

from __future__ import annotations

import numpy as np

from studio.engine.music.models import MusicModel
from studio.engine.music.piece import DEFAULT_VELOCITY, MAX_VOICES, NOTE_NAMES, STEPS_PER_BEAT, Note, metre_beats
from studio.engine.music.prompt import PromptTags
from studio.engine.music.tokenizer import MusicTokenizer, Tags, bucket_velocity, velocity_bucket


def filter_logits(logits, temperature: float, top_k: int, top_p: float):
    """Temperature, then top-k, then nucleus (top-p) filtering; returns probabilities (numpy)."""
    logits = np.asarray(logits, dtype=np.float64)
    allowed = np.isfinite(logits)
    if temperature <= 0:  # greedy
        probs = np.zeros_like(logits)
        probs[int(np.argmax(np.where(allowed, logits, -np.inf)))] = 1.0
        return probs
    scaled = np.where(allowed, logits / temperature, -np.inf)
    if top_k and top_k > 0 and top_k < allowed.sum():
        cutoff = np.sort(scaled[allowed])[-top_k]
        scaled = np.where(scaled >= cutoff, scaled, -np.inf)
    probs = np.exp(scaled - np.max(scaled))
    probs /= probs.sum()
    if 0 < top_p < 1:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        keep = cumulative - probs[order] < top_p  # always keeps the most likely token
        mask = np.zeros_like(probs, dtype=bool)
        mask[order[keep]] = True
        probs = np.where(mask, probs, 0.0)
        probs /= probs.sum()
    return probs


def sample(probs, rng) -> int:
    """One draw from (unnormalised) probabilities with a numpy Generator: one rng.random() per draw."""
    return int(np.searchsorted(np.cumsum(probs), rng.random() * probs.sum(), side="right").clip(0, len(probs) - 1))


def choose_tags(model: MusicModel, state: dict, wanted: PromptTags, key_override: tuple[int, str] | None,
                rng, temperature: float) -> tuple[Tags, list[int]]:
    """Sample each tag the prompt leaves open; force the ones it names (a draw is spent either way,
    so a recipe that names the tag the model had picked reproduces the same notes)."""
    tok = model.tokenizer
    ids = [tok.bos_id]
    logits = model.next_logits(state, ids)
    for kind in ("Style", "Key", "Metre", "Tempo"):
        mask = np.zeros(len(tok), dtype=bool)
        mask[tok.ids_of(kind)] = True
        if kind == "Key":
            tonic = key_override[0] if key_override else wanted.tonic
            mode = key_override[1] if key_override else wanted.mode
            for i in tok.ids_of("Key"):
                name, m = tok.value[i].rsplit("_", 1)
                if (tonic is not None and NOTE_NAMES.index(name) != tonic) or (mode is not None and m != mode):
                    mask[i] = False
        choice = sample(filter_logits(np.where(mask, logits, -np.inf), temperature, 0, 1.0), rng)
        forced = {"Style": wanted.style and f"Style_{wanted.style}", "Metre": wanted.metre and f"Metre_{wanted.metre}",
                  "Tempo": wanted.tempo and f"Tempo_{wanted.tempo}"}.get(kind)
        if forced:
            choice = tok.ids[forced]
        ids.append(choice)
        logits = model.next_logits(state, [choice])
    return tok.tags_of(ids), ids


class Grammar:
    """Which tokens may come next, so that sampled output is always a readable piece.

    Also decodes notes as tokens arrive, so previews cost nothing.
    """

    def __init__(self, tok: MusicTokenizer, metre: str, bars: int, voices: int = MAX_VOICES,
                 bar_offset: int = 0) -> None:
        self.tok = tok
        self.bar_steps = round(metre_beats(metre) * STEPS_PER_BEAT)
        self.bars_wanted = bars
        self.bar_offset = bar_offset
        self.bars_done = 0  # bars opened so far by generated Bar tokens
        self.last = "Bar"  # kind of the previous token
        self.pos, self.voice, self.vel, self.pitch = -1, 0, velocity_bucket(DEFAULT_VELOCITY), None
        self.notes: list[Note] = []
        self.finished = False
        self.notes_at_pos = 0
        size = len(tok)
        kinds = np.asarray(tok.kind)
        self.kind_mask = {k: kinds == k for k in set(tok.kind)}
        self.pos_value = np.full(size, -1)
        self.pos_value[tok.ids_of("Pos")] = [int(tok.value[i]) for i in tok.ids_of("Pos")]
        self.voice_ok = np.zeros(size, dtype=bool)
        self.voice_ok[[i for i in tok.ids_of("Voice") if int(tok.value[i]) < max(1, voices)]] = True

    def allowed(self) -> np.ndarray:
        k = self.kind_mask
        zero = np.zeros(len(self.tok), dtype=bool)
        if self.last in ("Bar", "Dur"):
            mask = zero.copy()
            mask |= (self.pos_value > self.pos) & (self.pos_value < self.bar_steps)
            if self.last == "Dur":
                if self.notes_at_pos < 2 * MAX_VOICES:  # at most 8 notes start together
                    mask |= self.voice_ok | k["Vel"] | k["Pitch"]
            mask[self.tok.bar_id] = True
            return mask
        if self.last == "Pos":
            return self.voice_ok | k["Vel"] | k["Pitch"]
        if self.last == "Voice":
            return k["Vel"] | k["Pitch"]
        if self.last == "Vel":
            return k["Pitch"].copy()
        if self.last == "Pitch":
            return k["Dur"].copy()
        return zero

    def feed(self, token: int) -> None:
        kind, value = self.tok.kind[token], self.tok.value[token]
        if kind == "Bar":
            self.bars_done += 1
            self.pos, self.voice, self.vel, self.notes_at_pos = -1, 0, velocity_bucket(DEFAULT_VELOCITY), 0
            if self.bars_done > self.bars_wanted:
                self.finished = True  # the Bar that would open one bar too many ends the piece
        elif kind == "Pos":
            self.pos, self.notes_at_pos = int(value), 0
        elif kind == "Voice":
            self.voice = int(value)
        elif kind == "Vel":
            self.vel = int(value)
        elif kind == "Pitch":
            self.pitch = int(value)
        elif kind == "Dur":
            bar = self.bar_offset + self.bars_done - 1
            start = (bar * self.bar_steps + max(self.pos, 0)) / STEPS_PER_BEAT
            self.notes.append(Note(self.pitch, start, int(value) / STEPS_PER_BEAT, bucket_velocity(self.vel), self.voice))
            self.notes_at_pos += 1
            if self.pos < 0:
                self.pos = 0
        elif kind == "EOS":
            self.finished = True
        self.last = kind

