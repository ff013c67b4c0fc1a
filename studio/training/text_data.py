"""The text corpus for the built-in text models: Debian's fortune cookies and the Jargon File.

Both come inside Debian packages, so the corpus rebuilds offline on any Debian machine:
  fortunes, fortunes-min  /usr/share/games/fortunes/*   BSD licence (fortune-mod, The Regents of the
                          University of California); `fortunes-off` (the offensive set) is not used.
  jargon-text             /usr/share/doc/jargon-text/jargon.txt.gz   The Jargon File 4.4.7, public domain.

An *entry* is one fortune cookie, one Jargon File lexicon entry or one Jargon File chapter. Entries are
the unit of the held-out split (about 5 %, chosen by a hash of the text, so the split never changes and
the same cookie never lands on both sides).
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

FORTUNES_DIR = Path("/usr/share/games/fortunes")
JARGON_FILE = Path("/usr/share/doc/jargon-text/jargon.txt.gz")

# Sets we leave out: ascii-art is pictures, not prose; "ethnic" is jokes about groups of people,
# which a demo model that writes on its own should not learn to produce.
SKIPPED_FORTUNE_SETS = {"ascii-art", "ethnic"}

LICENCES = {
    "fortunes": "BSD licence (fortune-mod; Copyright (c) 1991 The Regents of the University of California), "
    "Debian packages `fortunes` and `fortunes-min`",
    "jargon": "Public domain (The Jargon File 4.4.7, Eric S. Raymond), Debian package `jargon-text`",
}

HELD_OUT_PERCENT = 5


@dataclass(frozen=True)
class Entry:
    source: str  # "fortunes/<set>" or "jargon"
    text: str


def clean_text(text: str) -> str:
    """Strip trailing spaces on every line and blank lines at both ends; keep tabs and inner layout."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).strip("\n")


def looks_like_prose(text: str) -> bool:
    """Drop drawings made of punctuation: prose is mostly letters and spaces."""
    if not text.strip():
        return False
    letters = sum(ch.isalpha() or ch.isspace() for ch in text)
    return letters / len(text) > 0.8


def read_fortune_file(path: Path) -> list[str]:
    """A fortune file is a list of cookies separated by lines holding just `%`."""
    raw = path.read_text(encoding="utf-8", errors="replace")
    return [clean_text(part) for part in re.split(r"^%$", raw, flags=re.MULTILINE)]


def fortune_entries(folder: Path = FORTUNES_DIR) -> list[Entry]:
    entries = []
    if not folder.is_dir():
        return entries
    for path in sorted(folder.iterdir()):
        # The .dat files are indexes; the .u8 names are symlinks to the same text.
        if path.suffix in (".dat", ".u8") or path.is_symlink() or path.is_dir() or path.name in SKIPPED_FORTUNE_SETS:
            continue
        entries += [Entry(f"fortunes/{path.name}", text) for text in read_fortune_file(path)]
    return entries


def _dedent(lines: list[str]) -> str:
    return clean_text("\n".join(line[3:] if line.startswith("   ") else line for line in lines))


def jargon_entries(path: Path = JARGON_FILE) -> list[Entry]:
    """The Jargon File's chapters (before the lexicon) and its lexicon entries (`:term: n. ...`)."""
    if not path.exists():
        return []
    # The file uses no-break spaces in headings ("Part\xa0II."); plain spaces read the same and train better.
    lines = gzip.open(path, "rt", encoding="utf-8", errors="replace").read().replace("\xa0", " ").split("\n")
    entries: list[Entry] = []
    # Front chapters: from "Chapter 1." to the start of Part II, one entry per chapter.
    lexicon_start = next((i for i, line in enumerate(lines) if line.strip() == "Part II. The Jargon Lexicon"), None)
    starts = [i for i, line in enumerate(lines[: lexicon_start or 0]) if line.startswith("Chapter ")]
    if starts and lexicon_start:
        bounds = starts + [lexicon_start]
        for begin, end in zip(bounds, bounds[1:], strict=False):
            entries.append(Entry("jargon", _dedent(lines[begin:end])))
    # Lexicon: each entry starts with an indented `:term:` line; the glossary index before it is skipped.
    entry_start = re.compile(r"^   :[^:]+:")
    current: list[str] = []
    for line in lines[lexicon_start or 0 :]:
        if entry_start.match(line):
            if current:
                entries.append(Entry("jargon", _dedent(current)))
            current = [line]
        elif current:
            if line.strip() == "Part III. Appendices":
                break  # the appendices (folklore, a hacker portrait, the book list) close the lexicon
            else:
                current.append(line)
    if current:
        entries.append(Entry("jargon", _dedent(current)))
    return entries


def load_entries() -> list[Entry]:
    """All clean, distinct entries, in a fixed order."""
    seen: set[str] = set()
    entries = []
    for entry in fortune_entries() + jargon_entries():
        if entry.text in seen or not looks_like_prose(entry.text):
            continue
        seen.add(entry.text)
        entries.append(entry)
    return entries


def is_held_out(text: str) -> bool:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little") % 100 < HELD_OUT_PERCENT


def split_entries(entries: list[Entry]) -> tuple[list[str], list[str]]:
    """(train texts, held-out texts), decided per entry by a hash of its text."""
    train = [e.text for e in entries if not is_held_out(e.text)]
    held_out = [e.text for e in entries if is_held_out(e.text)]
    return train, held_out


def corpus_summary(entries: list[Entry]) -> dict:
    train, held_out = split_entries(entries)
    by_source: dict[str, int] = {}
    for e in entries:
        key = e.source.split("/")[0]
        by_source[key] = by_source.get(key, 0) + len(e.text.encode("utf-8"))
    return {
        "entries": len(entries),
        "train_entries": len(train),
        "held_out_entries": len(held_out),
        "train_bytes": sum(len(t.encode("utf-8")) for t in train),
        "held_out_bytes": sum(len(t.encode("utf-8")) for t in held_out),
        "bytes_by_source": by_source,
        "skipped_fortune_sets": sorted(SKIPPED_FORTUNE_SETS),
    }


if __name__ == "__main__":
    import json

    all_entries = load_entries()
    print(json.dumps(corpus_summary(all_entries), indent=2))
