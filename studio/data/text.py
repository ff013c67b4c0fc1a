"""The text corpus for the built-in text models: fortune cookies and hacker dictionaries.

Every part comes inside a Debian package, so the corpus rebuilds offline on any Debian machine:
  fortunes, fortunes-min  /usr/share/games/fortunes/<set>   BSD licence (fortune-mod, The Regents of the
                          University of California); `fortunes-off` (the offensive set) is not used.
  fortune-anarchism       /usr/share/games/fortunes/anarchism   quotations, dedicated to the public domain.
  fortunes-bofh-excuses   /usr/share/games/fortunes/bofh-excuses   public domain.
  jargon-text             /usr/share/doc/jargon-text/jargon.txt.gz   The Jargon File 4.4.7, public domain.
  dict-devil              /usr/share/dictd/devil.dict.dz   Ambrose Bierce, The Devil's Dictionary (1911),
                          public domain.
  dict-foldoc             /usr/share/dictd/foldoc.dict.dz   The Free On-line Dictionary of Computing,
                          Editor Denis Howe, GNU FDL 1.1+ (no invariant sections); the package's own
                          Debian additions (verbatim-only licence) are left out.

An *entry* is one fortune cookie, one dictionary definition or one Jargon File chapter. Entries are
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
DICTD_DIR = Path("/usr/share/dictd")
FOLDOC_DEBIAN_ADDITIONS = Path("/usr/share/doc/dict-foldoc/Dictionary.debian")

# The fortune sets we read, named so that another package dropping files into the same folder (e.g. the
# Portuguese `fortunes-mario`) cannot silently change the corpus and its held-out split.
FORTUNE_SETS = (
    "art computers cookie debian definitions disclaimer drugs education food fortunes goedel humorists kids "
    "knghtbrd law linux linuxcookie literature love magic medicine men-women miscellaneous news paradoxum "
    "people perl pets platitudes politics pratchett riddles science songs-poems sports startrek tao "
    "translate-me wisdom work zippy anarchism bofh-excuses"
).split()

# Sets we leave out: ascii-art is pictures, not prose; "ethnic" is jokes about groups of people,
# which a demo model that writes on its own should not learn to produce.
SKIPPED_FORTUNE_SETS = {"ascii-art", "ethnic"}  # (both ship in `fortunes`; not in FORTUNE_SETS)

LICENCES = {
    "fortunes": "BSD licence (fortune-mod; Copyright (c) 1991 The Regents of the University of California), "
    "Debian packages `fortunes` and `fortunes-min`",
    "fortunes/anarchism": "Public domain (the BLAG Fortune Assortment Project), Debian package `fortune-anarchism`",
    "fortunes/bofh-excuses": "Public domain (Jeff Ballard's BOFH excuses), Debian package `fortunes-bofh-excuses`",
    "jargon": "Public domain (The Jargon File 4.4.7, Eric S. Raymond), Debian package `jargon-text`",
    "devil": "Public domain (Ambrose Bierce, The Devil's Dictionary, 1911), Debian package `dict-devil`",
    "foldoc": "GNU Free Documentation License 1.1 or later, no invariant sections (The Free On-line Dictionary "
    "of Computing, http://www.foldoc.org/, Editor Denis Howe), Debian package `dict-foldoc`; the "
    "package's Debian additions are not used",
}

# FOLDOC is under the GNU FDL, so what is trained on it is shared under the same terms; the rest of the
# corpus is public domain or BSD, which asks only for the notices above.
WEIGHTS_LICENCE = (
    "The weights are a work derived in part from FOLDOC and are distributed under the GNU Free Documentation "
    "License 1.1 or later, with the notices above; the code that made them is under the project's licence. "
    "Outputs may echo the corpus."
)

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
    parts = [clean_text(part) for part in re.split(r"^%$", raw, flags=re.MULTILINE)]
    return [part for part in parts if part]


def fortune_entries(folder: Path = FORTUNES_DIR, sets: tuple[str, ...] | list[str] = FORTUNE_SETS) -> list[Entry]:
    entries = []
    for name in sorted(sets):
        path = folder / name
        if path.is_file() and not path.is_symlink():
            entries += [Entry(f"fortunes/{name}", text) for text in read_fortune_file(path)]
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


_DICTD_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _dictd_number(text: str) -> int:
    """dictd .index files write offsets and lengths in base 64 with this alphabet."""
    value = 0
    for ch in text:
        value = value * 64 + _DICTD_DIGITS.index(ch)
    return value


def dictd_definitions(name: str, folder: Path = DICTD_DIR) -> list[str]:
    """Every distinct definition of a dictd dictionary (`<name>.index` + `<name>.dict.dz`, which gzip reads)."""
    index, data = folder / f"{name}.index", folder / f"{name}.dict.dz"
    if not (index.exists() and data.exists()):
        return []
    raw = gzip.open(data).read()
    spans: list[tuple[int, int]] = []
    for line in index.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split("\t")
        if len(fields) < 3 or fields[0].startswith("00database"):  # dictd's own header entries
            continue
        span = (_dictd_number(fields[1]), _dictd_number(fields[2]))
        if span not in spans[-1:]:
            spans.append(span)
    spans = sorted(set(spans))  # several headwords (aliases) share one definition
    return [raw[start : start + length].decode("utf-8", errors="replace") for start, length in spans]


def _squash(text: str) -> str:
    return " ".join(text.split())


def foldoc_debian_additions(path: Path = FOLDOC_DEBIAN_ADDITIONS) -> list[str]:
    """The bodies of the Debian package's own definitions (a different, verbatim-only licence)."""
    if not path.exists():
        return []
    blocks = re.split(r"\n(?=\S)", path.read_text(encoding="utf-8", errors="replace"))
    return [
        _squash(block.split("\n", 1)[1]) for block in blocks[1:] if "\n" in block and block.split("\n", 1)[1].strip()
    ]


def dictionary_entries() -> list[Entry]:
    """The Devil's Dictionary and FOLDOC, one entry per definition, indented bodies brought to the margin."""
    entries = [Entry("devil", _dedent(text.split("\n"))) for text in dictd_definitions("devil")]
    debian_additions = foldoc_debian_additions()
    for text in dictd_definitions("foldoc"):
        squashed = _squash(text)
        if any(addition and addition in squashed for addition in debian_additions):
            continue
        entries.append(Entry("foldoc", _dedent(text.split("\n"))))
    return entries


def source_files() -> dict[Path, str]:
    """Each file the corpus reads, with the Debian package that installs it."""
    files = {FORTUNES_DIR / name: "fortunes" for name in FORTUNE_SETS}
    files.update({FORTUNES_DIR / name: "fortunes-min" for name in ("fortunes", "literature", "riddles")})
    files[FORTUNES_DIR / "anarchism"] = "fortune-anarchism"
    files[FORTUNES_DIR / "bofh-excuses"] = "fortunes-bofh-excuses"
    files[JARGON_FILE] = "jargon-text"
    for name in ("devil", "foldoc"):
        files[DICTD_DIR / f"{name}.dict.dz"] = files[DICTD_DIR / f"{name}.index"] = f"dict-{name}"
    return files


def missing_packages() -> list[str]:
    """Debian packages whose files are absent: training on a partial corpus would change the held-out split."""
    return sorted({package for path, package in source_files().items() if not path.exists()})


def load_entries() -> list[Entry]:
    """All clean, distinct entries, in a fixed order."""
    seen: set[str] = set()
    entries = []
    for entry in fortune_entries() + jargon_entries() + dictionary_entries():
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


def corpus_markdown(summary: dict) -> str:
    """The card's data section: each source, its size in the corpus and its licence."""
    sizes = summary["bytes_by_source"]

    def mb(source: str) -> str:
        return f"{sizes.get(source, 0) / 1e6:.2f} MB"

    return f"""- Debian `fortunes` + `fortunes-min` (/usr/share/games/fortunes; {mb("fortunes")} with the two sets below):
  {LICENCES["fortunes"]}. Sets left out: {", ".join(summary["skipped_fortune_sets"])} (pictures; jokes about
  groups of people); the offensive set (`fortunes-off`) is not used. Also the `anarchism` set
  ({LICENCES["fortunes/anarchism"]}) and `bofh-excuses` ({LICENCES["fortunes/bofh-excuses"]}).
- Debian `jargon-text` ({mb("jargon")}): {LICENCES["jargon"]}. Chapters 1-12 and the lexicon entries; the appendices
  are not used.
- Debian `dict-devil` ({mb("devil")}): {LICENCES["devil"]}.
- Debian `dict-foldoc` ({mb("foldoc")}): {LICENCES["foldoc"]}.
- Cleaning: `%` separators split cookies, dictionary definitions are read through the dictd index (aliases
  sharing one definition count once); trailing spaces stripped; drawings (< 80 % letters/spaces) and duplicates
  dropped. {summary["entries"]:,} entries, {summary["train_bytes"]:,} training bytes, {summary["held_out_bytes"]:,}
  held-out bytes ({HELD_OUT_PERCENT} % of entries, chosen by a hash of each entry's text: see
  `studio/data/text.py`).
- To rebuild the corpus: `sudo apt-get install --no-install-recommends {" ".join(sorted(set(source_files().values())))}`
  (the dictionaries pull in `dictd`); training refuses to start on a partial corpus."""


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
