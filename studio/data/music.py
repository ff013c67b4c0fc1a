"""The music corpus for the built-in music models: the scores that ship inside the music21 wheel.

Collections used (all read offline from `music21/corpus/`):
  bach/            Bach's four-part chorales (Riemenschneider edition, MusicXML)        style "chorale"
  essenFolksong/   Essen folksong collection, ABC by Seymour Schlien (German, Chinese…)  style "folk"
  oneills1850/     O'Neill's Music of Ireland (1850 tunes), ABC by J.B. Walsh et al.     style from R:/title
  ryansMammoth/    Ryan's Mammoth Collection of fiddle tunes (1883), ABC by J. Chambers  style from R:/title
  airdsAirs/       Aird's Selection of Scotch, English, Irish and Foreign Airs, ABC by Jack Campin
  miscFolk/        Northumbrian Minstrelsy and the American fife tunes

Each tune or chorale becomes one *piece*: a list of notes [pitch, onset, duration, velocity, voice] in
quarter notes from the first full bar line (a pickup starts before 0 is shifted so bar lines land on
multiples of the bar length), plus key, metre, tempo and a style tag. Parsing everything with music21
takes minutes, so the pieces are cached once as gzipped JSON lines.

    python -m studio.data.music [--out FILE] [--workers 2]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

# The key maths (Krumhansl-Schmuckler profiles, scales): studio/core/keys.py, shared with the music engine.
from studio.core.keys import (
    DEFAULT_VELOCITY,
    MAX_VOICES,
    key_of_histogram,
    pitch_class_histogram,
    scale_pitch_classes,  # noqa: F401 - training reads music_data.scale_pitch_classes
)

LICENCES = {
    "bach": "Bach chorales (Riemenschneider), encodings distributed with music21 (BSD-licensed software; the corpus "
    "is distributed with the encoders' permission; music public domain).",
    "essenFolksong": "Essen Folksong Collection (EsAC; H. Schaffrath, E. Dahlig-Turek), ABC by Seymour Schlien: "
    "permission given for NON-COMMERCIAL distribution and use in music21 (see music21/corpus/essenFolksong/license.txt).",
    "oneills1850": "O'Neill's Music of Ireland (1903, public domain tunes), ABC transcriptions by J.B. Walsh and others, "
    "distributed with music21 (music21/corpus/license.txt: encodings may restrict commercial use).",
    "ryansMammoth": "Ryan's Mammoth Collection (1883, public domain tunes), ABC contributed by John Chambers, "
    "distributed with music21 (music21/corpus/license.txt).",
    "airdsAirs": "Aird's Airs (c. 1782-1803, public domain tunes), ABC transcriptions by Jack Campin, "
    "distributed with music21 (music21/corpus/license.txt).",
    "miscFolk": "Northumbrian Minstrelsy / American fife tunes (public domain tunes), ABC distributed with music21.",
}
ABC_COLLECTIONS = ("essenFolksong", "oneills1850", "ryansMammoth", "airdsAirs", "miscFolk")
ESSEN_SKIP = {"test0.abc", "test1.abc", "testd.abc", "teste.abc"}  # music21's own test files
HELD_OUT_PERCENT = 5

# Dance and song types found in the ABC `R:` fields and titles, mapped to our style tags.
STYLE_WORDS = [
    ("slip jig", "jig"), ("slipjig", "jig"), ("double jig", "jig"), ("single jig", "jig"), ("jig", "jig"),
    ("slide", "jig"), ("reel", "reel"), ("hornpipe", "hornpipe"), ("clog", "hornpipe"), ("strathspey", "strathspey"),
    ("march", "march"), ("waltz", "waltz"), ("polka", "polka"), ("mazurka", "waltz"), ("air", "air"),
    ("song", "air"), ("lament", "air"),
]


def corpus_root() -> Path:
    import music21

    return Path(music21.__file__).resolve().parent / "corpus"


def default_cache_file() -> Path:
    from studio import paths

    return paths.runs_root() / "music-gpt" / "corpus.jsonl.gz"


# --- parsing --------------------------------------------------------------------------------------


def style_from_text(text: str) -> str | None:
    text = text.lower()
    for word, style in STYLE_WORDS:
        if re.search(r"\b" + re.escape(word) + r"\b", text):
            return style
    return None


def abc_style(collection: str, tune_text: str) -> str:
    if collection == "essenFolksong":
        return "folk"
    fields = " ".join(re.findall(r"^[RT]:(.*)$", tune_text, flags=re.MULTILINE))
    return style_from_text(fields) or "tune"


def refine_style(piece: dict) -> str:
    """O'Neill's tunes 1-625 are airs and songs; only its dance sections carry an R: field."""
    if piece["collection"] == "oneills1850" and piece["style"] == "tune":
        first = re.match(r"oneills1850/(\d+)", piece["id"])
        if first and int(first.group(1)) < 626:
            return "air"
    return piece["style"]


def split_abc_tunes(text: str) -> list[str]:
    """An ABC file is a header then tunes that each start with an `X:` line."""
    parts = re.split(r"^(?=X:)", text, flags=re.MULTILINE)
    return [p for p in parts if p.startswith("X:") and re.search(r"^K:", p, flags=re.MULTILINE)]


def _key_of(score, notes) -> tuple[int, str]:
    from music21 import key as m21key

    hist = pitch_class_histogram((note[0], note[2]) for note in notes)  # [pitch, onset, duration, …]
    for found in score.recurse().getElementsByClass(m21key.KeySignature):
        if isinstance(found, m21key.Key) and found.mode in ("major", "minor"):
            return found.tonic.pitchClass, found.mode
        if isinstance(found, m21key.Key):  # modal: dorian/phrygian/aeolian sound minor, the rest major
            mode = "minor" if found.mode in ("dorian", "phrygian", "aeolian", "locrian") else "major"
            return found.tonic.pitchClass, mode
        # A bare signature (chorales): choose between its major and its relative minor by the notes.
        major = found.asKey("major").tonic.pitchClass
        return key_of_histogram(hist, candidates={(major, "major"), ((major + 9) % 12, "minor")})
    return key_of_histogram(hist)


def _tempo_of(score) -> float | None:
    from music21 import tempo

    for mark in score.recurse().getElementsByClass(tempo.MetronomeMark):
        try:
            bpm = mark.getQuarterBPM()
        except Exception:  # music21 raises several types for marks without a number
            bpm = None
        if bpm:
            return float(bpm)
    return None


def _pickup_shift(part, bar_length: float) -> float:
    """How far to push the notes so the first full bar starts at a multiple of the bar length."""
    measures = list(part.getElementsByClass("Measure"))
    if not measures:
        return 0.0
    first = measures[0]
    if first.paddingLeft:
        return float(first.paddingLeft)
    length = float(first.duration.quarterLength)
    if 0 < length < bar_length:
        return bar_length - length
    return 0.0


def piece_from_score(score, piece_id: str, collection: str, style: str) -> dict | None:
    """Notes and tags of one parsed score, or None when it does not fit our tokens."""
    from music21 import harmony, meter

    parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
    if len(parts) > MAX_VOICES:
        return None
    ts = score.recurse().getElementsByClass(meter.TimeSignature).first()
    metre = ts.ratioString if ts is not None else "4/4"
    bar_length = float(ts.barDuration.quarterLength) if ts is not None else 4.0
    if not 0.5 <= bar_length <= 8.0:
        return None
    shift = _pickup_shift(parts[0], bar_length)
    notes = []
    for voice, part in enumerate(parts):
        flat = part.stripTies().flatten()
        for element in flat.getElementsByClass(["Note", "Chord"]):
            if isinstance(element, harmony.ChordSymbol) or element.duration.isGrace:
                continue
            duration = float(element.duration.quarterLength)
            if duration <= 0:
                continue
            velocity = element.volume.velocity if element.volume.velocity is not None else DEFAULT_VELOCITY
            for pitch in element.pitches:
                notes.append([int(pitch.midi), round(float(element.offset) + shift, 4), round(duration, 4),
                              int(velocity), voice])
    if len(notes) < 8:
        return None
    notes.sort(key=lambda n: (n[1], n[4], -n[0]))
    tonic, mode = _key_of(score, notes)
    return {
        "id": piece_id, "collection": collection, "style": style, "tonic": tonic, "mode": mode,
        "metre": metre, "bar_length": bar_length, "tempo": _tempo_of(score), "voices": len(parts), "notes": notes,
    }


def parse_abc_tune(job: tuple[str, str, str]) -> dict | None:
    piece_id, collection, text = job
    from music21 import converter

    try:
        score = converter.parse(text, format="abc")
        if hasattr(score, "scores") and not hasattr(score, "parts"):
            score = score.scores[0]
        return piece_from_score(score, piece_id, collection, abc_style(collection, text))
    except Exception as exc:  # a malformed tune is skipped, not fatal: the corpus has a few
        print(f"skip {piece_id}: {type(exc).__name__}: {str(exc)[:80]}", file=sys.stderr)
        return None


def parse_chorale(path_text: str) -> dict | None:
    from music21 import converter

    path = Path(path_text)
    try:
        score = converter.parse(str(path))
        return piece_from_score(score, f"bach/{path.stem}", "bach", "chorale")
    except Exception as exc:
        print(f"skip {path.name}: {type(exc).__name__}: {str(exc)[:80]}", file=sys.stderr)
        return None


def abc_jobs(collections=ABC_COLLECTIONS, limit: int | None = None) -> list[tuple[str, str, str]]:
    root = corpus_root()
    jobs = []
    for collection in collections:
        for path in sorted((root / collection).glob("*.abc")):
            if path.name in ESSEN_SKIP:
                continue
            text = path.read_text(encoding="latin-1")
            for index, tune in enumerate(split_abc_tunes(text)):
                jobs.append((f"{collection}/{path.stem}/{index}", collection, tune))
    # O'Neill's has overlapping files (e.g. 0626-0635 and 0626-0700): drop exact duplicate tunes.
    seen, unique = set(), []
    for job in jobs:
        body = re.sub(r"^[XZNB]:.*$", "", job[2], flags=re.MULTILINE).strip()
        if body not in seen:
            seen.add(body)
            unique.append(job)
    return unique[:limit] if limit else unique


def chorale_paths() -> list[str]:
    """One file per chorale (several ship as both .mxl and .xml)."""
    by_stem: dict[str, Path] = {}
    for path in sorted((corpus_root() / "bach").glob("*")):
        if path.suffix in (".mxl", ".xml", ".musicxml") and (path.stem not in by_stem or path.suffix == ".mxl"):
            by_stem[path.stem] = path
    return [str(p) for p in by_stem.values()]


def is_held_out(piece_id: str) -> bool:
    return int(hashlib.sha1(piece_id.encode()).hexdigest(), 16) % 100 < HELD_OUT_PERCENT


def build_cache(out: Path, workers: int = 2, limit: int | None = None) -> int:
    from multiprocessing import Pool

    started = time.time()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    count = 0
    with gzip.open(tmp, "wt", encoding="utf-8") as sink, Pool(workers) as pool:
        for piece in pool.imap(parse_chorale, chorale_paths()[:limit], chunksize=4):
            if piece:
                sink.write(json.dumps(piece) + "\n")
                count += 1
        print(f"chorales: {count} in {time.time() - started:.0f} s", flush=True)
        for index, piece in enumerate(pool.imap(parse_abc_tune, abc_jobs(limit=limit), chunksize=16)):
            if piece:
                sink.write(json.dumps(piece) + "\n")
                count += 1
            if index % 500 == 0:
                print(f"{index} tunes, {count} pieces, {time.time() - started:.0f} s", flush=True)
    os.replace(tmp, out)
    print(f"wrote {count} pieces to {out} in {time.time() - started:.0f} s", flush=True)
    return count


def load_pieces(path: Path | None = None) -> list[dict]:
    path = Path(path or default_cache_file())
    with gzip.open(path, "rt", encoding="utf-8") as source:
        return [json.loads(line) for line in source]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=default_cache_file())
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="parse only the first N files/tunes (tests)")
    args = parser.parse_args(argv)
    build_cache(args.out, args.workers, args.limit)


if __name__ == "__main__":
    main()
