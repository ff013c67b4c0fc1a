"""Notes <-> tokens: the REMI-like vocabulary both built-in music models read and write.

    BOS Style_folk Key_G_major Metre_6/8 Tempo_fast  Bar Pos_0 Pitch_67 Dur_2 Pos_2 Pitch_71 Dur_2 …  Bar … EOS

Inside a bar each note is `[Pos_p] [Voice_v] [Vel_b] Pitch_x Dur_d` on a 16th-note grid; Pos is left out
when a note starts where the previous one did, Voice and Vel only when they change. Voice and velocity
reset at each Bar (voice 0, velocity 80), so any bar can start a training window or a continuation on its own.

The vocabulary ships beside each model as `music_vocab.json`, so a model folder is self-contained.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.jobs import UserError
from studio.engine.music.piece import (
    DEFAULT_VELOCITY,
    MAX_BAR_STEPS,
    MAX_DURATION_STEPS,
    MAX_VOICES,
    METRES,
    MODES,
    NOTE_NAMES,
    PITCH_HIGH,
    PITCH_LOW,
    STEPS_PER_BEAT,
    STYLES,
    TEMPI,
    VELOCITY_BUCKET,
    MusicPiece,
    Note,
    key_name,
    metre_beats,
    parse_key,
    tempo_bucket,
)

VOCAB_FILE = "music_vocab.json"


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
