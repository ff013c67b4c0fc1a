"""Musical keys from pitch classes (Krumhansl-Schmuckler): the maths the music engine and the corpus reader
(studio/data/music.py) share, so the dataset builders need nothing from the engine. Pure Python."""

from __future__ import annotations

import math
from collections.abc import Iterable

MAX_VOICES = 4  # the music models write at most four voices (the corpus reader leaves out pieces with more)
DEFAULT_VELOCITY = 80

KS_MAJOR = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
KS_MINOR = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10, 11)  # natural minor + the raised leading tone of harmonic minor


def pitch_class_histogram(pitches_and_durations: Iterable[tuple[int, float]]) -> list[float]:
    """How long each of the 12 pitch classes sounds, from (MIDI pitch, duration) pairs."""
    hist = [0.0] * 12
    for pitch, duration in pitches_and_durations:
        hist[int(pitch) % 12] += float(duration)
    return hist


def _correlation(a: list[float], b: tuple[float, ...]) -> float | None:
    """Pearson's r of two 12-vectors; None when either is flat (r undefined)."""
    mean_a, mean_b = sum(a) / 12, sum(b) / 12
    num = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b, strict=True))
    den = math.sqrt(sum((x - mean_a) ** 2 for x in a) * sum((y - mean_b) ** 2 for y in b))
    return num / den if den else None


def key_of_histogram(hist: list[float], candidates: set[tuple[int, str]] | None = None) -> tuple[int, str]:
    """The (tonic pitch class, mode) whose rotated profile correlates best with the histogram, among
    `candidates` when given. C major when nothing sounds or nothing correlates (a flat histogram)."""
    best, best_score = (0, "major"), -2.0
    if not any(hist):
        return best
    for tonic in range(12):
        for mode, profile in (("major", KS_MAJOR), ("minor", KS_MINOR)):
            if candidates is not None and (tonic, mode) not in candidates:
                continue
            score = _correlation(hist, profile[-tonic:] + profile[:-tonic] if tonic else profile)
            if score is not None and score > best_score:
                best, best_score = (tonic, mode), score
    return best


def scale_pitch_classes(tonic: int, mode: str) -> set[int]:
    return {(tonic + s) % 12 for s in (MINOR_SCALE if mode == "minor" else MAJOR_SCALE)}
