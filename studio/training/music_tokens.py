"""The music GPT's data: cached pieces -> note-event tokens (tokens.npz in the run folder), and training windows.

Training windows are CONTEXT tokens packed from pieces: each piece contributes its tags plus its tokens from a
random bar on (bar 0 half of the time), transposed by a random interval with the key tag moved to match
(transposition augmentation: 12x the data for free). Held-out pieces (5 %, by a hash of their id) are
scored in their own key on their first CONTEXT tokens.
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from studio.data import music as music_data
from studio.engine.music.piece import METRES, PITCH_HIGH, PITCH_LOW, Note, tempo_bucket
from studio.engine.music.tokenizer import MusicTokenizer, Tags
from studio.training import run as run_files

CONTEXT = 512
MODEL_NAME = "music-gpt"


def run_dir() -> Path:
    """$STUDIO_RUNS_DIR/music-gpt (default runs/music-gpt), outside the repository."""
    return run_files.run_dir(MODEL_NAME)


def piece_tags(piece: dict) -> Tags | None:
    if piece["metre"] not in METRES:
        return None
    return Tags(music_data.refine_style(piece), piece["tonic"], piece["mode"], piece["metre"], tempo_bucket(piece["tempo"]))


def tokenize_piece(tok: MusicTokenizer, piece: dict) -> tuple[list[int], list[int]] | None:
    """(tag ids, event ids) of one cached piece; None when its metre or range does not fit."""
    tags = piece_tags(piece)
    if tags is None:
        return None
    notes = [Note(int(p), float(s), float(d), int(v), int(voice)) for p, s, d, v, voice in piece["notes"]]
    if any(n.start < 0 for n in notes) or not all(PITCH_LOW <= n.pitch <= PITCH_HIGH for n in notes):
        return None
    return tok.tag_ids(tags), tok.encode_notes(notes, tags.metre)


def build_tokens(corpus: Path, out: Path) -> dict:
    tok = MusicTokenizer()
    pieces = music_data.load_pieces(corpus)
    tags, events, ids, held, collections, styles = [], [], [], [], [], []
    skipped = Counter()
    for piece in pieces:
        encoded = tokenize_piece(tok, piece)
        if encoded is None:
            skipped[piece["metre"]] += 1
            continue
        tags.append(encoded[0])
        events.append(np.asarray(encoded[1], dtype=np.int16))
        ids.append(piece["id"])
        held.append(music_data.is_held_out(piece["id"]))
        collections.append(piece["collection"])
        styles.append(music_data.refine_style(piece))
    lengths = np.asarray([len(e) for e in events])
    np.savez_compressed(
        out, tags=np.asarray(tags, dtype=np.int16), events=np.concatenate(events),
        offsets=np.concatenate([[0], np.cumsum(lengths)]), held=np.asarray(held),
        ids=np.asarray(ids), collections=np.asarray(collections), styles=np.asarray(styles),
    )
    tok.save(out.parent)
    stats = {"pieces": len(ids), "tokens": int(lengths.sum() + 5 * len(ids)), "skipped_metres": dict(skipped),
             "held_out_pieces": int(sum(held)), "collections": dict(Counter(collections)), "styles": dict(Counter(styles))}
    (out.parent / "tokens_stats.json").write_text(json.dumps(stats, indent=1))
    run_files.log(f"tokens: {stats}")
    return stats


class TokenData:
    """Pieces as token arrays, with the split, bar positions and transposition tables."""

    def __init__(self, path: Path) -> None:
        data = np.load(path)
        self.tok = MusicTokenizer()
        self.tags = data["tags"].astype(np.int64)
        events = data["events"].astype(np.int64)
        offsets = data["offsets"]
        self.events = [events[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
        self.held = data["held"]
        self.ids = data["ids"]
        self.styles = data["styles"]
        self.train_index = np.flatnonzero(~self.held)
        self.held_index = np.flatnonzero(self.held)
        self.bar_starts = [np.flatnonzero(e == self.tok.bar_id) for e in self.events]
        pitch_ids = np.asarray(self.tok.ids_of("Pitch"))
        self.pitch_range = []
        for e in self.events:
            pitches = e[np.isin(e, pitch_ids)] - pitch_ids[0] + PITCH_LOW
            self.pitch_range.append((int(pitches.min()), int(pitches.max())) if len(pitches) else (60, 60))
        self.tables = {s: np.asarray(self.tok.transpose_table(s)) for s in range(-6, 7)}

    def sequence(self, i: int) -> np.ndarray:
        return np.concatenate([self.tags[i], self.events[i]])

    def random_shift(self, i: int, rng: random.Random) -> int:
        low, high = self.pitch_range[i]
        options = [s for s in range(-6, 6) if low + s >= PITCH_LOW and high + s <= PITCH_HIGH]
        return rng.choice(options) if options else 0

    def window_part(self, i: int, rng: random.Random, augment: bool) -> np.ndarray:
        bars = self.bar_starts[i]
        start = 0 if rng.random() < 0.5 or len(bars) == 0 else int(bars[rng.randrange(len(bars))])
        seq = np.concatenate([self.tags[i], self.events[i][start:start + CONTEXT]])
        if augment:
            seq = self.tables[self.random_shift(i, rng)][seq]
        return seq

    def batch(self, size: int, rng: random.Random, augment: bool = True) -> np.ndarray:
        rows = np.empty((size, CONTEXT), dtype=np.int64)
        for r in range(size):
            parts, filled = [], 0
            while filled < CONTEXT:
                part = self.window_part(int(self.train_index[rng.randrange(len(self.train_index))]), rng, augment)
                parts.append(part)
                filled += len(part)
            rows[r] = np.concatenate(parts)[:CONTEXT]
        return rows

    def held_out_windows(self, limit: int = 400) -> list[np.ndarray]:
        """The first CONTEXT tokens of up to `limit` held-out pieces, spread evenly over the collections."""
        chosen = self.held_index
        if len(chosen) > limit:
            chosen = chosen[np.linspace(0, len(chosen) - 1, limit).round().astype(int)]
        return [self.sequence(int(i))[:CONTEXT] for i in chosen]


def tokens_file() -> Path:
    return run_dir() / "tokens.npz"


def ensure_tokens() -> Path:
    out = tokens_file()
    if not out.exists():
        corpus = music_data.default_cache_file()
        if not corpus.exists():
            sys.exit(f"no parsed corpus at {corpus}: run `python -m studio.data.music` first")
        build_tokens(corpus, out)
    return out
