"""A piece of music as notes, and the music theory the rest of the music engine leans on.

A piece is a list of notes (pitch, start and duration in beats = quarter notes, velocity, voice) with a
key, a metre and a tempo. Here too: the names of the metres, styles and tempi the models know, metre and bar
arithmetic, key names, and the key maths (Krumhansl-Schmuckler key estimation and in-key rates), which the
corpus builder in studio/data/music.py reads as well.

Plain Python: importing this module costs nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from studio.core.jobs import UserError
from studio.core.keys import (  # noqa: F401 - the key maths and voice limits, re-exported beside the notes
    DEFAULT_VELOCITY,
    KS_MAJOR,
    KS_MINOR,
    MAJOR_SCALE,
    MAX_VOICES,
    MINOR_SCALE,
    key_of_histogram,
    pitch_class_histogram,
    scale_pitch_classes,
)

STEPS_PER_BEAT = 4  # the 16th-note grid
MAX_BAR_STEPS = 48  # 12/4 at most
MAX_DURATION_STEPS = 64

VELOCITY_BUCKET = 16  # 8 buckets: 0-15, 16-31, … 112-127
PITCH_LOW, PITCH_HIGH = 21, 108  # the piano's range

STYLES = ("chorale", "folk", "reel", "jig", "hornpipe", "strathspey", "march", "waltz", "polka", "air", "tune")
METRES = ("2/4", "3/4", "4/4", "5/4", "6/4", "3/2", "2/2", "4/2", "3/8", "6/8", "9/8", "12/8")
TEMPI = ("slow", "moderate", "fast", "unknown")
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MODES = ("major", "minor")
PITCH_CLASS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}  # of the natural note letters


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


# --- metres and bars ------------------------------------------------------------------------------


def metre_beats(metre: str) -> float:
    """Quarter notes per bar: 6/8 -> 3.0, 3/4 -> 3.0, 2/2 -> 4.0."""
    numerator, denominator = metre.split("/")
    return int(numerator) * 4.0 / int(denominator)


def continuation_bar(piece: MusicPiece, metre: str) -> int:
    """Bars (of `metre`, the one the continuation is written in) before the bar line a continuation starts on:
    the one after the bar of the last onset. A note still ringing there ties over into the new bars, as a held
    final chord would; counting endings instead cost a silent bar whenever a release came a hair late."""
    if not piece.notes:
        return 1
    last_onset = max(n.start for n in piece.notes)
    return max(1, math.floor(last_onset / metre_beats(metre) + 1e-9) + 1)


def seam_shift(prefix: MusicPiece, metre: str, prefix_bars: int) -> float:
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


def shifted(notes: list[Note], beats: float) -> list[Note]:
    return [replace(n, start=n.start + beats) for n in notes] if beats else notes


def tempo_bucket(bpm: float | None) -> str:
    if not bpm:
        return "unknown"
    return "slow" if bpm < 76 else "moderate" if bpm <= 112 else "fast"


# --- key names --------------------------------------------------------------------------------------


def key_name(tonic: int, mode: str) -> str:
    return f"{NOTE_NAMES[tonic % 12]} {mode}"


def parse_key(text: str) -> tuple[int, str]:
    """'D minor', 'F# major', 'Bb', 'eb minor', 'Am' -> (tonic pitch class, mode)."""
    match = re.fullmatch(r"\s*([A-Ga-g])\s*(#|b|♯|♭|-flat|-sharp| flat| sharp)?\s*(major|minor|maj|min|m)?\s*", text or "")
    if not match:
        raise UserError(f"not a key: {text!r} (try 'D minor' or 'G major')")
    tonic = PITCH_CLASS[match.group(1).lower()]
    accidental = (match.group(2) or "").strip(" -")
    tonic += {"#": 1, "♯": 1, "sharp": 1, "b": -1, "♭": -1, "flat": -1}.get(accidental, 0)
    mode = "minor" if (match.group(3) or "").lower() in ("minor", "min", "m") else "major"
    return tonic % 12, mode


# --- keys: estimate and measure (Krumhansl-Schmuckler; the maths itself is core/keys.py) ----------------------


def estimate_key(notes: Iterable[Note]) -> tuple[int, str]:
    """The key whose profile best correlates with the duration-weighted pitch classes of the notes."""
    return key_of_histogram(pitch_class_histogram((n.pitch, n.duration) for n in notes))


def in_key_fraction(notes: Iterable[Note], key: str) -> float:
    """Fraction of notes whose pitch class belongs to the key's scale (major, or natural + harmonic minor)."""
    tonic, mode = parse_key(key)
    scale = scale_pitch_classes(tonic, mode)
    pitches = [n.pitch for n in notes]
    return sum(1 for p in pitches if p % 12 in scale) / len(pitches) if pitches else 0.0
