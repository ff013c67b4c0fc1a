"""The prompt parser: style, key, metre and tempo words read from what the user typed.

Whatever it does not understand is reported back (`PromptTags.ignored`), so the panel can say which words had
no effect; the built-in models know only the tags of their vocabulary (see tokenizer.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from studio.engine.music.piece import METRES, NOTE_NAMES, PITCH_CLASS, tempo_bucket

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
        tonic = PITCH_CLASS[letter.lower()]
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

