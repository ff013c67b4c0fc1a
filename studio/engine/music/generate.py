"""Symbolic music: the note-event tokenizer, prompt tags, the built-in music models and sampling.

A piece is a list of notes (pitch, start and duration in beats = quarter notes, velocity, voice) with a
key, a metre and a tempo. Models see it as REMI-like tokens:

    BOS Style_folk Key_G_major Metre_6/8 Tempo_fast  Bar Pos_0 Pitch_67 Dur_2 Pos_2 Pitch_71 Dur_2 …  Bar … EOS

Inside a bar each note is `[Pos_p] [Voice_v] [Vel_b] Pitch_x Dur_d` on a 16th-note grid; Pos is left out
when a note starts where the previous one did, Voice and Vel only when they change. Voice and velocity
reset at each Bar (voice 0, velocity 80), so any bar can start a training window or a continuation on its own.

Two kinds of model generate these tokens: a small GPT-2 (transformers layout, `models/music-gpt/`) and an
n-gram baseline (`models/music-markov/`, config.json model_type "studio-markov"). Both ship the vocabulary
as `music_vocab.json`, so each folder is self-contained.

torch and transformers are imported inside functions: importing this module must stay cheap.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from studio.core.jobs import Artifact, Cancelled, Progress, Result, UserError
from studio.core.recipe import Recipe

VOCAB_FILE = "music_vocab.json"
STEPS_PER_BEAT = 4  # the 16th-note grid
MAX_BAR_STEPS = 48  # 12/4 at most
MAX_DURATION_STEPS = 64
MAX_VOICES = 4
DEFAULT_VELOCITY = 80
VELOCITY_BUCKET = 16  # 8 buckets: 0-15, 16-31, … 112-127
PITCH_LOW, PITCH_HIGH = 21, 108  # the piano's range

STYLES = ("chorale", "folk", "reel", "jig", "hornpipe", "strathspey", "march", "waltz", "polka", "air", "tune")
METRES = ("2/4", "3/4", "4/4", "5/4", "6/4", "3/2", "2/2", "4/2", "3/8", "6/8", "9/8", "12/8")
TEMPI = ("slow", "moderate", "fast", "unknown")
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MODES = ("major", "minor")


# --- the piece ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Note:
    pitch: int  # MIDI number, 60 = middle C
    start: float  # beats (quarter notes) from the start of the first full bar
    duration: float  # beats
    velocity: int = DEFAULT_VELOCITY
    voice: int = 0

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass
class MusicPiece:
    notes: list[Note]
    tempo_bpm: float = 100.0
    key: str = "C major"  # "<tonic> <major|minor>"
    metre: str = "4/4"
    programs: list[int] = field(default_factory=lambda: [0])  # General MIDI program per voice
    style: str = "tune"

    @property
    def beats_per_bar(self) -> float:
        return metre_beats(self.metre)

    @property
    def end_beats(self) -> float:
        return max((n.end for n in self.notes), default=0.0)

    @property
    def seconds(self) -> float:
        return self.end_beats * 60.0 / self.tempo_bpm

    @property
    def voices(self) -> int:
        return max((n.voice for n in self.notes), default=0) + 1

    def bars(self) -> int:
        return math.ceil(self.end_beats / self.beats_per_bar - 1e-9) if self.notes else 0


def continuation_bar(piece: MusicPiece, metre: str) -> int:
    """Bars (of `metre`, the one the continuation is written in) before the bar line a continuation starts on:
    the one after the bar of the last onset. A note still ringing there ties over into the new bars, as a held
    final chord would; counting endings instead cost a silent bar whenever a release came a hair late."""
    if not piece.notes:
        return 1
    last_onset = max(n.start for n in piece.notes)
    return max(1, math.floor(last_onset / metre_beats(metre) + 1e-9) + 1)


def _seam_shift(prefix: MusicPiece, metre: str, prefix_bars: int) -> float:
    """Beats to move a continuation by so that it starts on the prefix's own next bar line.

    The model writes on a grid of bars of `metre`; when the piece's own metre is one the model doesn't write
    (7/8 going on in 4/4), that grid's next bar line can fall up to a bar after the piece's: a silent gap.
    """
    if prefix.metre == metre or not prefix.notes:
        return 0.0
    try:
        own_bar = metre_beats(prefix.metre)
    except (ValueError, ZeroDivisionError):
        return 0.0  # an unreadable metre: keep the model's grid
    return continuation_bar(prefix, prefix.metre) * own_bar - prefix_bars * metre_beats(metre)


def _shifted(notes: list[Note], beats: float) -> list[Note]:
    return [replace(n, start=n.start + beats) for n in notes] if beats else notes


def metre_beats(metre: str) -> float:
    """Quarter notes per bar: 6/8 -> 3.0, 3/4 -> 3.0, 2/2 -> 4.0."""
    numerator, denominator = metre.split("/")
    return int(numerator) * 4.0 / int(denominator)


def key_name(tonic: int, mode: str) -> str:
    return f"{NOTE_NAMES[tonic % 12]} {mode}"


_PITCH_CLASS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}


def parse_key(text: str) -> tuple[int, str]:
    """'D minor', 'F# major', 'Bb', 'eb minor', 'Am' -> (tonic pitch class, mode)."""
    match = re.fullmatch(r"\s*([A-Ga-g])\s*(#|b|♯|♭|-flat|-sharp| flat| sharp)?\s*(major|minor|maj|min|m)?\s*", text or "")
    if not match:
        raise UserError(f"not a key: {text!r} (try 'D minor' or 'G major')")
    tonic = _PITCH_CLASS[match.group(1).lower()]
    accidental = (match.group(2) or "").strip(" -")
    tonic += {"#": 1, "♯": 1, "sharp": 1, "b": -1, "♭": -1, "flat": -1}.get(accidental, 0)
    mode = "minor" if (match.group(3) or "").lower() in ("minor", "min", "m") else "major"
    return tonic % 12, mode


# --- tokenizer -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tags:
    style: str = "tune"
    tonic: int = 0
    mode: str = "major"
    metre: str = "4/4"
    tempo: str = "unknown"

    @property
    def key(self) -> str:
        return key_name(self.tonic, self.mode)


def tempo_bucket(bpm: float | None) -> str:
    if not bpm:
        return "unknown"
    return "slow" if bpm < 76 else "moderate" if bpm <= 112 else "fast"


def velocity_bucket(velocity: int) -> int:
    return max(0, min(127, int(velocity))) // VELOCITY_BUCKET


def bucket_velocity(bucket: int) -> int:
    return max(1, bucket * VELOCITY_BUCKET)


def default_vocab() -> list[str]:
    tokens = ["PAD", "BOS", "EOS", "Bar"]
    tokens += [f"Style_{s}" for s in STYLES]
    tokens += [f"Key_{NOTE_NAMES[t]}_{m}" for m in MODES for t in range(12)]
    tokens += [f"Metre_{m}" for m in METRES]
    tokens += [f"Tempo_{t}" for t in TEMPI]
    tokens += [f"Pos_{p}" for p in range(MAX_BAR_STEPS)]
    tokens += [f"Voice_{v}" for v in range(MAX_VOICES)]
    tokens += [f"Vel_{b}" for b in range(128 // VELOCITY_BUCKET)]
    tokens += [f"Pitch_{p}" for p in range(PITCH_LOW, PITCH_HIGH + 1)]
    tokens += [f"Dur_{d}" for d in range(1, MAX_DURATION_STEPS + 1)]
    return tokens


class MusicTokenizer:
    """Notes <-> token ids. The vocabulary is a list of token names saved as JSON beside the model."""

    def __init__(self, tokens: Sequence[str] | None = None) -> None:
        self.tokens = list(tokens or default_vocab())
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.pad_id, self.bos_id, self.eos_id, self.bar_id = (self.ids[t] for t in ("PAD", "BOS", "EOS", "Bar"))
        self.kind = [t.split("_", 1)[0] for t in self.tokens]  # "Pos", "Pitch", "Style", …
        self.value = [t.split("_", 1)[1] if "_" in t else "" for t in self.tokens]
        self._kind_ids: dict[str, list[int]] = {}
        for i, k in enumerate(self.kind):
            self._kind_ids.setdefault(k, []).append(i)

    def __len__(self) -> int:
        return len(self.tokens)

    def ids_of(self, kind: str) -> list[int]:
        return self._kind_ids.get(kind, [])

    # --- save / load ---
    def save(self, folder: Path) -> None:
        data = {"format": "studio-music-remi", "version": 1, "steps_per_beat": STEPS_PER_BEAT, "tokens": self.tokens}
        (Path(folder) / VOCAB_FILE).write_text(json.dumps(data, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> MusicTokenizer:
        path = Path(folder) / VOCAB_FILE
        if not path.exists():
            raise UserError(f"{folder} has no {VOCAB_FILE}: it is not a Latent Studio music model")
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != "studio-music-remi":
            raise UserError(f"{path}: unknown music vocabulary format {data.get('format')!r}")
        return cls(data["tokens"])

    # --- tags ---
    def tag_ids(self, tags: Tags) -> list[int]:
        metre = tags.metre if tags.metre in METRES else "4/4"
        return [
            self.bos_id,
            self.ids[f"Style_{tags.style if tags.style in STYLES else 'tune'}"],
            self.ids[f"Key_{NOTE_NAMES[tags.tonic % 12]}_{tags.mode}"],
            self.ids[f"Metre_{metre}"],
            self.ids[f"Tempo_{tags.tempo if tags.tempo in TEMPI else 'unknown'}"],
        ]

    def tags_of(self, ids: Sequence[int]) -> Tags:
        found: dict[str, Any] = {}
        for i in ids[:8]:
            kind, value = self.kind[i], self.value[i]
            if kind == "Style":
                found["style"] = value
            elif kind == "Key":
                name, mode = value.rsplit("_", 1)
                found["tonic"], found["mode"] = NOTE_NAMES.index(name), mode
            elif kind == "Metre":
                found["metre"] = value
            elif kind == "Tempo":
                found["tempo"] = value
        return Tags(**found)

    # --- notes -> tokens ---
    def encode_notes(self, notes: Iterable[Note], metre: str, end_with_eos: bool = True,
                     bars: int | None = None) -> list[int]:
        """Bar/Pos/Voice/Vel/Pitch/Dur tokens for notes (start in beats >= 0). Notes off the grid are rounded."""
        bar_steps = round(metre_beats(metre) * STEPS_PER_BEAT)
        events = []
        for n in notes:
            onset = max(0, round(n.start * STEPS_PER_BEAT))
            events.append((onset // bar_steps, onset % bar_steps, n.voice, -n.pitch, n))
        events.sort(key=lambda e: e[:4])
        last_bar = max((e[0] for e in events), default=-1)
        if bars is not None:
            last_bar = max(last_bar, bars - 1)
        out: list[int] = []
        index = 0
        for bar in range(last_bar + 1):
            out.append(self.bar_id)
            pos, voice, vel = -1, 0, velocity_bucket(DEFAULT_VELOCITY)
            while index < len(events) and events[index][0] == bar:
                _, p, v, _, n = events[index]
                index += 1
                if p != pos:
                    out.append(self.ids[f"Pos_{min(p, MAX_BAR_STEPS - 1)}"])
                    pos = p
                if n.voice != voice:
                    voice = min(n.voice, MAX_VOICES - 1)
                    out.append(self.ids[f"Voice_{voice}"])
                if velocity_bucket(n.velocity) != vel:
                    vel = velocity_bucket(n.velocity)
                    out.append(self.ids[f"Vel_{vel}"])
                pitch = min(PITCH_HIGH, max(PITCH_LOW, n.pitch))
                steps = min(MAX_DURATION_STEPS, max(1, round(n.duration * STEPS_PER_BEAT)))
                out += [self.ids[f"Pitch_{pitch}"], self.ids[f"Dur_{steps}"]]
        if end_with_eos:
            out.append(self.eos_id)
        return out

    def encode_piece(self, piece: MusicPiece, tags: Tags | None = None, end_with_eos: bool = True) -> list[int]:
        if tags is None:
            tonic, mode = parse_key(piece.key)
            tags = Tags(piece.style, tonic, mode, piece.metre, tempo_bucket(piece.tempo_bpm))
        return self.tag_ids(tags) + self.encode_notes(piece.notes, piece.metre, end_with_eos)

    # --- tokens -> notes ---
    def decode_notes(self, ids: Sequence[int], metre: str | None = None) -> list[Note]:
        """Read notes back; tokens out of grammar are skipped rather than fatal (a model may emit them)."""
        if metre is None:
            metre = self.tags_of(ids).metre
        bar_steps = round(metre_beats(metre) * STEPS_PER_BEAT)
        notes: list[Note] = []
        bar, pos, voice, vel, pitch = -1, 0, 0, velocity_bucket(DEFAULT_VELOCITY), None
        for i in ids:
            kind, value = self.kind[i], self.value[i]
            if kind == "Bar":
                bar, pos, voice, vel, pitch = bar + 1, 0, 0, velocity_bucket(DEFAULT_VELOCITY), None
            elif kind == "EOS":
                break
            elif kind == "Pos":
                pos = int(value)
            elif kind == "Voice":
                voice = int(value)
            elif kind == "Vel":
                vel = int(value)
            elif kind == "Pitch":
                pitch = int(value)
            elif kind == "Dur" and pitch is not None and bar >= 0:
                start = (bar * bar_steps + pos) / STEPS_PER_BEAT
                notes.append(Note(pitch, start, int(value) / STEPS_PER_BEAT, bucket_velocity(vel), voice))
                pitch = None
        return notes

    def decode_piece(self, ids: Sequence[int], tempo_bpm: float | None = None) -> MusicPiece:
        tags = self.tags_of(ids)
        notes = self.decode_notes(ids, tags.metre)
        voices = max((n.voice for n in notes), default=0) + 1
        return MusicPiece(notes, tempo_bpm or default_tempo(tags), tags.key, tags.metre, [0] * voices, tags.style)

    # --- augmentation ---
    def transpose_table(self, semitones: int) -> list[int]:
        """id -> id after transposing by `semitones`; -1 where a pitch falls off the piano."""
        table = list(range(len(self.tokens)))
        for i, (kind, value) in enumerate(zip(self.kind, self.value, strict=False)):
            if kind == "Pitch":
                p = int(value) + semitones
                table[i] = self.ids[f"Pitch_{p}"] if PITCH_LOW <= p <= PITCH_HIGH else -1
            elif kind == "Key":
                name, mode = value.rsplit("_", 1)
                table[i] = self.ids[f"Key_{NOTE_NAMES[(NOTE_NAMES.index(name) + semitones) % 12]}_{mode}"]
        return table


def default_tempo(tags: Tags) -> float:
    by_style = {"chorale": 72, "air": 70, "reel": 116, "jig": 112, "hornpipe": 100, "polka": 120, "march": 108,
                "waltz": 96, "strathspey": 90, "folk": 100, "tune": 100}
    base = by_style.get(tags.style, 100)
    return {"slow": min(base, 66), "fast": max(base, 126), "moderate": min(max(base, 84), 108)}.get(tags.tempo, base)


# --- the n-gram baseline model -------------------------------------------------------------------


class NGramModel:
    """Interpolated n-gram over token ids, counted with numpy: absolute discounting, or Kneser-Ney once
    `use_kneser_ney()` has turned lower-order counts into continuation counts (how many distinct tokens
    precede an n-gram, which predicts how readily it appears in a new context) with D = n1 / (n1 + 2 n2).

    A context of up to 6 ids is packed into one int64 (9 bits per id, vocabularies up to 512), and each
    order keeps a sorted array of (context << 9 | next) keys with their counts: counting is a sort, a
    look-up is a binary search, and the file is two arrays per order (safetensors, no pickle).
    """

    BITS = 9
    DISCOUNT = 0.75
    PAD = 0  # the tokenizer's PAD id
    FILE = "ngrams.safetensors"

    def __init__(self, order: int, vocab_size: int) -> None:
        if not 1 <= order <= 7 or vocab_size > 2**self.BITS:
            raise ValueError("order must be 1..7 and the vocabulary at most 512 tokens")
        self.order, self.vocab_size = order, vocab_size
        self._pending: list[list[Any]] = [[] for _ in range(order)]
        self._pending_count = 0
        self.discounts = [self.DISCOUNT] * order
        self.smoothing = "absolute-discounting"
        self.keys: list[Any] = []
        self.counts: list[Any] = []
        self._index: list[tuple] = []

    # --- counting ---
    def _codes(self, seq, k: int):
        """Context code of length k for every position t >= k of seq (numpy int64 array)."""
        import numpy as np

        seq = np.asarray(seq, dtype=np.int64)
        code = np.zeros(max(0, len(seq) - k), dtype=np.int64)
        for j in range(k):
            code = (code << self.BITS) | seq[j:len(seq) - k + j]
        return code

    def add(self, seq: Sequence[int]) -> None:

        seq = self._padded(seq)
        skip = self.order - 1  # the pads themselves are context, never targets
        for k in range(self.order):
            self._pending[k].append(((self._codes(seq, k) << self.BITS) | seq[k:])[skip - k:])
        self._pending_count += len(seq)
        if self._pending_count > 5_000_000:  # merge now and then: bounded memory for big corpora
            self._flush()

    def _padded(self, seq):
        """PAD (id 0) in front: a piece's first tokens get full-length contexts, as a piece start."""
        import numpy as np

        return np.concatenate([np.full(self.order - 1, self.PAD, dtype=np.int64), np.asarray(seq, dtype=np.int64)])

    def _flush(self) -> None:
        import numpy as np

        for k in range(self.order):
            if not self._pending[k]:
                continue
            new_keys, new_counts = np.unique(np.concatenate(self._pending[k]), return_counts=True)
            if k < len(self.keys):
                merged = np.concatenate([self.keys[k], new_keys])
                weights = np.concatenate([self.counts[k], new_counts])
                keys, inverse = np.unique(merged, return_inverse=True)
                self.keys[k], self.counts[k] = keys, np.bincount(inverse, weights=weights).astype(np.int64)
            else:
                self.keys.append(new_keys)
                self.counts.append(new_counts.astype(np.int64))
            self._pending[k] = []
        self._pending_count = 0
        self._index = []

    def prune(self, min_count: int) -> None:
        """Drop rare highest-order n-grams (they barely move the loss and fill the file)."""
        self._flush()
        for k in range(self.order - 1, self.order):  # the top order only: lower ones hold continuation counts
            keep = self.counts[k] >= min_count
            self.keys[k], self.counts[k] = self.keys[k][keep], self.counts[k][keep]
        self._index = []

    def use_kneser_ney(self) -> None:
        """Replace lower-order counts by continuation counts and set per-order discounts (after all add())."""
        import numpy as np

        self._flush()
        for k in range(self.order - 1):
            low_bits = self.BITS * (k + 1)  # a (k+1)-token key: k context tokens + the next one
            suffixes = self.keys[k + 1] & ((1 << low_bits) - 1)  # drop the oldest context token
            self.keys[k], self.counts[k] = np.unique(suffixes, return_counts=True)
            self.counts[k] = self.counts[k].astype(np.int64)
        for k in range(self.order):
            n1, n2 = int((self.counts[k] == 1).sum()), int((self.counts[k] == 2).sum())
            self.discounts[k] = min(max(n1 / (n1 + 2 * n2), 0.05), 0.95) if n1 else 0.5
        self.smoothing = "kneser-ney"
        self._index = []

    def _contexts(self):
        """Per order: unique context codes, their total count and number of distinct next tokens."""
        import numpy as np

        if not self._index:
            self._flush()
            for keys, counts in zip(self.keys, self.counts, strict=False):
                contexts, starts = np.unique(keys >> self.BITS, return_index=True)
                totals = np.add.reduceat(counts, starts) if len(starts) else np.zeros(0, np.int64)
                distinct = np.diff(np.append(starts, len(keys)))
                self._index.append((contexts, totals, distinct, starts))
        return self._index

    # --- scoring ---
    def token_probabilities(self, seq: Sequence[int]):
        """P(seq[t] | seq[:t]) for t >= 1 (numpy array of len(seq) - 1)."""
        import numpy as np

        skip = self.order - 1
        seq = self._padded(seq)
        n = len(seq) - skip
        prob = np.full(n, 1.0 / self.vocab_size)
        for k, (contexts, totals, distinct, _) in enumerate(self._contexts()):
            targets = seq[skip:]
            ctx = self._codes(seq, k)[skip - k:]
            where = np.searchsorted(contexts, ctx)
            where = np.minimum(where, len(contexts) - 1)
            seen = contexts[where] == ctx if len(contexts) else np.zeros(len(ctx), bool)
            pair = (ctx << self.BITS) | targets
            at = np.minimum(np.searchsorted(self.keys[k], pair), len(self.keys[k]) - 1)
            count = np.where(self.keys[k][at] == pair, self.counts[k][at], 0)
            total = np.where(seen, totals[where], 1)
            d = self.discounts[k]
            mixed = (np.maximum(count - d, 0) + d * distinct[where] * prob) / total
            prob = np.where(seen, mixed, prob)
        return prob[1:]

    def mean_loss(self, sequences: Iterable[Sequence[int]]) -> float:
        import numpy as np

        total, count = 0.0, 0
        for seq in sequences:
            p = self.token_probabilities(seq)
            total += float(-np.log(p).sum())
            count += len(p)
        return total / max(1, count)

    def next_distribution(self, history: Sequence[int]):
        """P(next | history) over the whole vocabulary (numpy float64, sums to 1)."""
        import numpy as np

        history = [self.PAD] * (self.order - 1) + [int(t) for t in history[-(self.order - 1):]]
        prob = np.full(self.vocab_size, 1.0 / self.vocab_size)
        for k, (contexts, totals, distinct, starts) in enumerate(self._contexts()):
            code = 0
            for token in history[len(history) - k:] if k else []:
                code = (code << self.BITS) | int(token)
            where = np.searchsorted(contexts, code)
            if where >= len(contexts) or contexts[where] != code:
                continue
            start, stop = starts[where], starts[where] + distinct[where]
            counts = np.zeros(self.vocab_size)
            counts[self.keys[k][start:stop] & ((1 << self.BITS) - 1)] = self.counts[k][start:stop]
            d = self.discounts[k]
            prob = (np.maximum(counts - d, 0) + d * distinct[where] * prob) / totals[where]
        return prob / prob.sum()

    # --- files ---
    def save(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        self._flush()
        folder = Path(folder)
        tensors = {}
        for k in range(self.order):
            tensors[f"keys_{k}"] = self.keys[k].astype("int64")
            tensors[f"counts_{k}"] = self.counts[k].astype("int32")
        save_file(tensors, str(folder / self.FILE))
        (folder / self.FILE).chmod(0o644)  # safetensors writes 0600; the file ships with the app
        config = {"model_type": "studio-markov", "order": self.order, "vocab_size": self.vocab_size,
                  "discounts": self.discounts, "smoothing": self.smoothing, "bits": self.BITS, "weights": self.FILE, "vocab": VOCAB_FILE,
                  "tokens": "studio-music-remi"}
        (folder / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> NGramModel:
        from safetensors.numpy import load_file

        from studio.core.catalog import check_weights_file

        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        weights = folder / config.get("weights", cls.FILE)
        check_weights_file(weights)
        model = cls(int(config["order"]), int(config["vocab_size"]))
        model.discounts = [float(d) for d in config.get("discounts", model.discounts)]
        model.smoothing = config.get("smoothing", model.smoothing)
        tensors = load_file(str(weights))
        model.keys = [tensors[f"keys_{k}"] for k in range(model.order)]
        model.counts = [tensors[f"counts_{k}"].astype("int64") for k in range(model.order)]
        return model


# --- keys: estimate and measure ------------------------------------------------------------------

KS_MAJOR = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
KS_MINOR = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10, 11)  # natural minor + the raised leading tone of harmonic minor


def estimate_key(notes: Iterable[Note]) -> tuple[int, str]:
    """Krumhansl-Schmuckler: the key whose profile best correlates with the duration-weighted pitch classes."""
    hist = [0.0] * 12
    for n in notes:
        hist[n.pitch % 12] += n.duration
    if not any(hist):
        return 0, "major"

    def correlation(a, b):
        ma, mb = sum(a) / 12, sum(b) / 12
        num = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=False))
        den = math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))
        return num / den if den else 0.0

    best = max(((correlation(hist, profile[-t:] + profile[:-t] if t else profile), t, mode)
                for mode, profile in (("major", KS_MAJOR), ("minor", KS_MINOR)) for t in range(12)))
    return best[1], best[2]


def scale_pitch_classes(tonic: int, mode: str) -> set[int]:
    return {(tonic + s) % 12 for s in (MINOR_SCALE if mode == "minor" else MAJOR_SCALE)}


def in_key_fraction(notes: Iterable[Note], key: str) -> float:
    """Fraction of notes whose pitch class belongs to the key's scale (major, or natural + harmonic minor)."""
    tonic, mode = parse_key(key)
    scale = scale_pitch_classes(tonic, mode)
    pitches = [n.pitch for n in notes]
    return sum(1 for p in pitches if p % 12 in scale) / len(pitches) if pitches else 0.0


# --- prompts -------------------------------------------------------------------------------------

STYLE_WORDS = {
    "chorale": "chorale", "chorales": "chorale", "hymn": "chorale", "bach": "chorale", "choral": "chorale",
    "folk": "folk", "folksong": "folk", "lied": "folk", "song": "folk", "songs": "folk",
    "reel": "reel", "reels": "reel", "jig": "jig", "jigs": "jig", "slide": "jig", "hornpipe": "hornpipe",
    "clog": "hornpipe", "strathspey": "strathspey", "march": "march", "waltz": "waltz", "mazurka": "waltz",
    "polka": "polka", "air": "air", "ballad": "air", "lament": "air", "tune": "tune", "dance": "tune",
}
STYLE_PRIORITY = ("reel", "jig", "hornpipe", "strathspey", "march", "waltz", "polka", "chorale", "air", "folk", "tune")
RARE_STYLES = ("waltz", "polka")
STYLE_METRE = {"waltz": "3/4", "jig": "6/8", "polka": "2/4", "reel": "4/4", "hornpipe": "4/4", "chorale": "4/4"}
TEMPO_WORDS = {
    "slow": "slow", "slowly": "slow", "adagio": "slow", "largo": "slow", "lento": "slow", "gentle": "slow",
    "calm": "slow", "sad": "slow", "mournful": "slow", "peaceful": "slow", "quiet": "slow",
    "moderate": "moderate", "moderato": "moderate", "andante": "moderate", "walking": "moderate", "steady": "moderate",
    "fast": "fast", "lively": "fast", "quick": "fast", "allegro": "fast", "presto": "fast", "brisk": "fast",
    "upbeat": "fast", "energetic": "fast", "spirited": "fast", "happy": "fast", "bright": "fast", "vivace": "fast",
}
FILLER = {"in", "a", "an", "the", "with", "and", "of", "for", "to", "piece", "music", "some", "please", "style",
          "time", "key", "like", "very", "bit", "little", "rather", "quite", "me"}
_KEY_RE = re.compile(
    r"\b(?:in\s+)?([A-Ga-g])(\s*(?:#|♯|♭|sharp\b|flat\b|-sharp\b|-flat\b)|b(?=\s|$|m\b|\s*(?:major|minor)))?"
    r"\s*(major|minor|maj\b|min\b|m\b)?",
)
_METRE_RE = re.compile(r"\b(\d{1,2})\s*/\s*(\d{1,2})\b")
_BPM_RE = re.compile(r"\b(\d{2,3})\s*(?:bpm|beats per minute)\b", re.IGNORECASE)


@dataclass(frozen=True)
class PromptTags:
    """What a prompt asks for; None where the model chooses."""

    style: str | None = None
    tonic: int | None = None
    mode: str | None = None
    metre: str | None = None
    tempo: str | None = None
    bpm: float | None = None
    understood: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()


def _find_key(text: str) -> tuple[tuple[int, str | None] | None, tuple[int, int] | None]:
    for match in _KEY_RE.finditer(text):
        letter, accidental, mode = match.group(1), (match.group(2) or "").strip(), match.group(3)
        full = match.group(0).rstrip()
        after_in = full.lower().startswith("in ")
        # "a slow chorale", "A jig": a lone a/A is an article, not a key, unless "in", a mode or an accidental says so
        if not (after_in or mode or accidental or (letter.isupper() and letter != "A")):
            continue
        end = match.start() + len(full)
        if end < len(text) and (text[end].isalnum() or text[end] == "'"):
            continue  # part of a word ("Bach", "Dance")
        tonic = _PITCH_CLASS[letter.lower()]
        acc = accidental.lower().strip(" -")
        tonic += 1 if acc in ("#", "♯", "sharp") else -1 if acc in ("b", "♭", "flat") else 0
        mode_name = None if not mode else ("minor" if mode.lower().startswith("m") and mode.lower() != "major"
                                           and mode.lower() != "maj" else "major")
        return (tonic % 12, mode_name), match.span()
    return None, None


def parse_prompt(prompt: str) -> PromptTags:
    """Read style, key, metre and tempo words from a prompt; report what was understood and what was not."""
    text = prompt or ""
    understood: list[str] = []
    found: dict[str, Any] = {}
    spans: list[tuple[int, int]] = []
    metre = _METRE_RE.search(text)
    if metre and f"{metre.group(1)}/{metre.group(2)}" in METRES:
        found["metre"] = f"{metre.group(1)}/{metre.group(2)}"
        spans.append(metre.span())
    bpm = _BPM_RE.search(text)
    if bpm:
        found["bpm"] = float(bpm.group(1))
        found["tempo"] = tempo_bucket(found["bpm"])
        spans.append(bpm.span())
    key, span = _find_key(_blank(text, spans))
    if key:
        found["tonic"], found["mode"] = key
        spans.append(span)
    ignored: list[str] = []
    styles: list[str] = []
    for word_match in re.finditer(r"[A-Za-z']+", _blank(text, spans)):
        word = word_match.group(0).lower()
        if word in ("major", "minor") and "mode" not in found:
            found["mode"] = word
        elif word in STYLE_WORDS:
            styles.append(STYLE_WORDS[word])
        elif word in TEMPO_WORDS and "tempo" not in found:
            found["tempo"] = TEMPO_WORDS[word]
        elif word not in FILLER and word not in STYLE_WORDS and word not in TEMPO_WORDS:
            ignored.append(word_match.group(0))
    if found.get("tonic") is not None and not found.get("mode"):
        found["mode"] = "major"  # "in G" means G major, as musicians say it
    if styles:  # "folk reel": the most specific word wins
        found["style"] = min(styles, key=STYLE_PRIORITY.index)
    if "metre" not in found and found.get("style") in STYLE_METRE:
        found["metre"] = STYLE_METRE[found["style"]]
    if found.get("style") in RARE_STYLES:
        # The corpus has almost no waltzes or polkas: ask for a tune in their metre instead.
        understood.append(f"style: {found['style']} (as a {found['metre']} tune)")
        found["style"] = "tune"
    elif found.get("style"):
        understood.append(f"style: {found['style']}")
    if found.get("tonic") is not None:
        understood.append(f"key: {NOTE_NAMES[found['tonic']]} {found.get('mode') or '(mode free)'}")
    elif found.get("mode"):
        understood.append(f"mode: {found['mode']}")
    if found.get("metre"):
        understood.append(f"metre: {found['metre']}")
    if found.get("tempo"):
        understood.append(f"tempo: {found['tempo']}" + (f" ({found['bpm']:g} bpm)" if found.get("bpm") else ""))
    return PromptTags(understood=tuple(understood), ignored=tuple(ignored), **found)


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for start, stop in spans:
        for i in range(start, stop):
            chars[i] = " "
    return "".join(chars)


# --- models --------------------------------------------------------------------------------------


class MusicModel:
    """A loaded music model: a GPT-2 folder or an n-gram folder, with its vocabulary."""

    def __init__(self, kind: str, tokenizer: MusicTokenizer, net: Any, path: Path, device: str = "cpu",
                 context: int = 512) -> None:
        self.kind = kind  # "gpt" | "markov"
        self.tokenizer = tokenizer
        self.net = net
        self.path = Path(path)
        self.device = device
        self.context = context
        self.fast = FastGPT2.wrap(net) if kind == "gpt" else None

    @property
    def dtype(self) -> str:
        return "float32" if self.kind == "gpt" else "counts"

    def start(self, ids: Sequence[int]) -> Any:
        """Begin a sequence; returns a state object `next_logits` advances."""
        return {"ids": list(ids), "past": None, "fed": 0}

    def next_logits(self, state: dict, new_ids: Sequence[int]) -> Any:
        """Append new_ids to the sequence and return the next-token log-probabilities (numpy float64)."""
        import numpy as np

        state["ids"].extend(new_ids)
        if self.kind == "markov":
            return np.log(np.maximum(self.net.next_distribution(state["ids"]), 1e-30))
        import torch

        feed = state["ids"] if state["past"] is None else state["ids"][state["fed"]:]
        with torch.inference_mode():
            if self.fast is not None:
                if state["past"] is None:
                    state["past"] = []
                logits = self.fast.forward(feed, state["past"])
            else:
                ids = torch.tensor([feed], dtype=torch.long, device=self.device)
                out = self.net(input_ids=ids, past_key_values=state["past"], use_cache=True)
                state["past"] = out.past_key_values
                logits = out.logits[0, -1]
            state["fed"] = len(state["ids"])
            logits = logits.float().cpu().numpy().astype(np.float64)
        return logits - np.logaddexp.reduce(logits)

    def reset_cache(self, state: dict, ids: Sequence[int]) -> None:
        state.update({"ids": list(ids), "past": None, "fed": 0})


class FastGPT2:
    """GPT-2's forward pass for sampling, one token at a time with a key/value cache, straight from the weights.

    The same maths as transformers' GPT2LMHeadModel (the tests compare logits) without its per-module
    Python overhead, which dominates at this size: about 3x more tokens per second on a CPU.
    """

    def __init__(self, net) -> None:
        config = net.config
        weights = {k: v.detach() for k, v in net.state_dict().items()}
        self.n_head, self.eps = config.n_head, config.layer_norm_epsilon
        self.wte, self.wpe = weights["transformer.wte.weight"], weights["transformer.wpe.weight"]
        self.head = weights.get("lm_head.weight", self.wte)
        names = ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                 "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                 "mlp.c_proj.weight", "mlp.c_proj.bias")
        self.layers = [[weights[f"transformer.h.{i}.{n}"] for n in names] for i in range(config.n_layer)]
        self.ln_f = (weights["transformer.ln_f.weight"], weights["transformer.ln_f.bias"])

    @classmethod
    def wrap(cls, net) -> FastGPT2 | None:
        config = net.config
        plain = (config.model_type == "gpt2" and config.activation_function in ("gelu_new", "gelu_pytorch_tanh")
                 and not getattr(config, "scale_attn_by_inverse_layer_idx", False)
                 and not getattr(config, "reorder_and_upcast_attn", False) and config.scale_attn_weights)
        return cls(net) if plain else None  # anything unusual goes through transformers itself

    def forward(self, ids: Sequence[int], cache: list):
        """Logits after the last of `ids`, which continue the sequence held in `cache` (updated in place)."""
        import torch
        import torch.nn.functional as F

        past = cache[0][0].shape[1] if cache else 0
        new = len(ids)
        x = self.wte[torch.as_tensor(ids)] + self.wpe[past:past + new]
        heads, width = self.n_head, x.shape[-1]
        mask = None
        if new > 1:  # several tokens at once (a prompt): each sees the cache and the tokens before it
            mask = torch.ones(new, past + new, dtype=torch.bool).tril(diagonal=past)
        for index, (g1, b1, w_qkv, b_qkv, w_o, b_o, g2, b2, w_fc, b_fc, w_pr, b_pr) in enumerate(self.layers):
            h = F.layer_norm(x, (width,), g1, b1, self.eps)
            q, k, v = torch.addmm(b_qkv, h, w_qkv).split(width, dim=-1)
            q, k, v = (t.view(new, heads, -1).transpose(0, 1) for t in (q, k, v))
            if index < len(cache):
                k = torch.cat([cache[index][0], k], dim=1)
                v = torch.cat([cache[index][1], v], dim=1)
                cache[index] = (k, v)
            else:
                cache.append((k, v))
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = x + torch.addmm(b_o, attended.transpose(0, 1).reshape(new, width), w_o)
            h = F.layer_norm(x, (width,), g2, b2, self.eps)
            x = x + torch.addmm(b_pr, F.gelu(torch.addmm(b_fc, h, w_fc), approximate="tanh"), w_pr)
        last = F.layer_norm(x[-1], (width,), *self.ln_f, self.eps)
        return self.head @ last


def load_music_model(source: Any, device: str = "cpu") -> MusicModel:
    """Load a built-in or user music model: a ModelSource, 'builtin:NAME', or a folder path."""
    from studio.core import catalog

    if isinstance(source, str):
        source = catalog.resolve(source)
    folder = Path(source.path)
    if source.kind == "markov":
        tokenizer = MusicTokenizer.load(folder)
        return MusicModel("markov", tokenizer, NGramModel.load(folder), folder)
    if source.kind not in ("transformers", "builtin"):
        raise UserError(f"{source.name} is not a symbolic music model (it is a {source.kind} model)")
    tokenizer = MusicTokenizer.load(folder)
    catalog.check_weights_folder(folder)
    import torch
    from transformers import AutoModelForCausalLM

    net = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, local_files_only=True)
    net.to(device).eval()
    return MusicModel("gpt", tokenizer, net, folder, device, int(getattr(net.config, "n_positions", 512)))


# --- sampling ------------------------------------------------------------------------------------


def filter_logits(logits, temperature: float, top_k: int, top_p: float):
    """Temperature, then top-k, then nucleus (top-p) filtering; returns probabilities (numpy)."""
    import numpy as np

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


class Grammar:
    """Which tokens may come next, so that sampled output is always a readable piece.

    Also decodes notes as tokens arrive, so previews cost nothing.
    """

    def __init__(self, tok: MusicTokenizer, metre: str, bars: int, voices: int = MAX_VOICES,
                 bar_offset: int = 0) -> None:
        import numpy as np

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
        self.np = np

    def allowed(self):
        np = self.np
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


@dataclass
class Generation:
    piece: MusicPiece
    recipe: Recipe  # complete: re-running it gives the same notes
    understood: tuple[str, ...]
    ignored: tuple[str, ...]
    tokens: list[int]
    seconds: float = 0.0


# The synth's timbres and the General MIDI programs written for them in exported MIDI files.
INSTRUMENT_PROGRAMS = {"piano": 0, "organ": 19, "pluck": 24}
DEFAULT_PARAMS = {"temperature": 1.0, "top_k": 0, "top_p": 0.95, "bars": 8, "tempo": None, "key": None,
                  "voices": MAX_VOICES, "instrument": "piano", "continue_from": None}


def _sample(probs, rng) -> int:
    import numpy as np

    return int(np.searchsorted(np.cumsum(probs), rng.random() * probs.sum(), side="right").clip(0, len(probs) - 1))


def _choose_tags(model: MusicModel, state: dict, wanted: PromptTags, key_override: tuple[int, str] | None,
                 rng, params: dict) -> tuple[Tags, list[int]]:
    """Sample each tag the prompt leaves open; force the ones it names (a draw is spent either way,
    so a recipe that names the tag the model had picked reproduces the same notes)."""
    import numpy as np

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
        choice = _sample(filter_logits(np.where(mask, logits, -np.inf), params["temperature"], 0, 1.0), rng)
        forced = {"Style": wanted.style and f"Style_{wanted.style}", "Metre": wanted.metre and f"Metre_{wanted.metre}",
                  "Tempo": wanted.tempo and f"Tempo_{wanted.tempo}"}.get(kind)
        if forced:
            choice = tok.ids[forced]
        ids.append(choice)
        logits = model.next_logits(state, [choice])
    return tok.tags_of(ids), ids


def generate(model: MusicModel, recipe: Recipe, report: Callable[[Progress], None] | None = None,
             cancelled: Callable[[], bool] | None = None, prefix: MusicPiece | None = None) -> Generation:
    """Compose (or continue `prefix`) by the recipe. Plain function: no worker needed."""
    import time

    import numpy as np

    started = time.perf_counter()
    params = {**DEFAULT_PARAMS, **{k: v for k, v in recipe.params.items() if v is not None or k == "continue_from"}}
    as_set = dict(params)  # what the user chose ("" key, 0 tempo/voices = from the prompt): the recipe keeps these
    params["bars"] = max(1, int(params["bars"]))
    # 0 (the panel's "auto") leaves the number to the model, which writes the style's usual texture
    # (four voices for a chorale, one for a folk tune): the grammar then only caps it at MAX_VOICES.
    params["voices"] = min(MAX_VOICES, int(params["voices"] or 0)) or MAX_VOICES
    seed = int(recipe.seed) if recipe.seed is not None and int(recipe.seed) >= 0 else random.randrange(2**31)
    rng = np.random.default_rng(seed)
    if model.kind == "gpt":
        import torch

        torch.manual_seed(seed)  # dropout is off in eval mode; this only pins any torch-side randomness
    tok = model.tokenizer
    wanted = parse_prompt(recipe.prompt)
    key_override = parse_key(params["key"]) if params.get("key") else None
    state = model.start([])
    if prefix is not None:
        tags, tag_ids = _prefix_tags(tok, prefix, wanted, key_override)
        prefix_bars = continuation_bar(prefix, tags.metre)
        seam_shift = _seam_shift(prefix, tags.metre, prefix_bars)
        body = tok.encode_notes(prefix.notes, tags.metre, end_with_eos=False, bars=prefix_bars)
        context_ids = _crop(tag_ids, body, model.context - 64)
        model.next_logits(state, context_ids[:-1])
        logits = model.next_logits(state, context_ids[-1:])
    else:
        tags, tag_ids = _choose_tags(model, state, wanted, key_override, rng, params)
        prefix_bars, seam_shift = 0, 0.0
    grammar = Grammar(tok, tags.metre, params["bars"], params["voices"], bar_offset=prefix_bars)
    generated: list[int] = []
    kept = list(prefix.notes) if prefix is not None else []  # previews show the whole piece, prefix included
    token = tok.bar_id  # every continuation and every fresh piece starts on a bar line
    while True:
        if cancelled and cancelled():
            raise Cancelled()
        grammar.feed(token)
        if grammar.finished:
            break
        generated.append(token)
        if len(state["ids"]) + 1 >= model.context:
            context_ids = _crop(tag_ids, _events_only(tok, state["ids"]) + [token], model.context // 2)
            model.reset_cache(state, [])
            logits = model.next_logits(state, context_ids)
        else:
            logits = model.next_logits(state, [token])
        mask = grammar.allowed()
        probs = filter_logits(np.where(mask, logits, -np.inf), params["temperature"], params["top_k"], params["top_p"])
        token = _sample(probs, rng)
        if report:
            report(Progress(min(grammar.bars_done, params["bars"]), params["bars"],
                            preview=kept + _shifted(grammar.notes, seam_shift),
                            message=f"bar {min(grammar.bars_done, params['bars'])} of {params['bars']}"))
        if len(generated) > 400 * params["bars"] + 1000:  # a runaway model; grammar should make this unreachable
            break
    notes = kept + _shifted(grammar.notes, seam_shift)
    voices = max((n.voice for n in notes), default=0) + 1
    tempo = float(params["tempo"] or wanted.bpm or (prefix.tempo_bpm if prefix is not None else default_tempo(tags)))
    programs = list(prefix.programs) if prefix is not None else []
    programs += [INSTRUMENT_PROGRAMS.get(str(params["instrument"]), 0)] * (voices - len(programs))
    piece = MusicPiece(notes, tempo, tags.key, tags.metre, programs[:voices], tags.style)
    # The key and tempo used are recorded beside the settings, not over them: a restored recipe must not pin a
    # key or tempo the user left to the prompt (the next prompt would then be silently overridden).
    complete = {**as_set, "bars": params["bars"], "key_used": tags.key, "tempo_used": tempo}
    full = Recipe(
        modality="music", prompt=recipe.prompt, negative_prompt=recipe.negative_prompt,
        model=recipe.model, model_hash=recipe.model_hash or _model_hash(model), seed=seed, params=complete,
        device=model.device, dtype=model.dtype, parents=recipe.parents,
    )
    return Generation(piece, full, wanted.understood, wanted.ignored, tag_ids + generated,
                      time.perf_counter() - started)


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


def _events_only(tok: MusicTokenizer, ids: Sequence[int]) -> list[int]:
    """The event tokens of a sequence: everything after BOS and the four tags."""
    return list(ids[5:]) if ids and ids[0] == tok.bos_id else list(ids)


def _crop(tag_ids: list[int], events: list[int], limit: int) -> list[int]:
    """Tags + the longest tail of events that starts on a bar line and fits in `limit` tokens.

    State (voice, velocity) resets at every Bar, so a tail that starts on a bar reads the same as in full.
    """
    room = max(1, limit - len(tag_ids))
    if len(events) <= room:
        return tag_ids + list(events)
    bar_id = 3  # "Bar" is always id 3 in the vocabulary (PAD BOS EOS Bar come first)
    start = len(events) - room
    for i in range(start, len(events)):
        if events[i] == bar_id:
            return tag_ids + list(events[i:])
    return tag_ids + list(events[start:])


def _model_hash(model: MusicModel) -> str:
    from studio.core import catalog

    try:
        return catalog.content_hash(model.path)
    except OSError:
        return ""


# --- worker task ---------------------------------------------------------------------------------

DEFAULT_MODEL = "builtin:music-gpt"


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
    device = "cpu"  # the built-in models are tiny: the CPU is faster than a round trip to a GPU
    model = ctx.models.get("music", (ref, device), lambda: load_music_model(source, device))
    prefix = load_prefix(job.args, recipe)
    result = generate(model, replace(recipe, model=ref), report=ctx.report, cancelled=ctx.cancelled, prefix=prefix)
    info = {"understood": list(result.understood), "ignored": list(result.ignored), "seconds": result.seconds,
            "music_seconds": result.piece.seconds, "notes": len(result.piece.notes),
            "prefix_notes": len(prefix.notes) if prefix is not None else 0}
    return Result(artifacts=[Artifact(modality="music", recipe=result.recipe, payload=result.piece, info=info)])


def write_midi(piece: MusicPiece, path: Path, recipe_json: str | None = None) -> Path:
    from studio.engine.music.midi import write_midi as write

    return write(piece, path, recipe_json)


def read_midi(path: Path) -> MusicPiece:
    from studio.engine.music.midi import read_midi as read

    return read(path)


def read_recipe_from_midi(path: Path) -> Recipe | None:
    from studio.engine.music.midi import read_recipe_from_midi as read

    return read(path)
