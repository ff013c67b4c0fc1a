"""The emoji data set for the built-in image model: Noto Color Emoji glyphs with their names.

Everything comes inside Debian/PyPI packages, so the data set rebuilds offline on any Debian machine:
  fonts-noto-color-emoji  /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf   SIL Open Font License 1.1
  unicode-data            /usr/share/unicode/emoji/emoji-test.txt             Unicode licence (group/subgroup)
  emoji (PyPI)            names and aliases                                    BSD licence

Each glyph is drawn at the font's only bitmap size (109 pt, 136x128 px), centred on a white square and
shrunk to 64x64 RGB. Glyphs the font draws as two pictures (advance wider than one em) or not at all
are skipped. About 10 % of the emoji are held out for evaluation, chosen by a hash of the name without
its skin tone, so the skin-tone variants of one emoji always land on the same side.

`load_dataset()` renders once (~10 s) and caches the result as an .npz (no pickles) in the cache dir.
"""

from __future__ import annotations

import collections
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FONT_PATH = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_TEST_PATH = Path("/usr/share/unicode/emoji/emoji-test.txt")
FONT_SIZE = 109  # the only size of the font's colour bitmaps (CBDT strikes)
EM_PX = 136  # a glyph's advance at that size; wider ones are drawn as two glyphs side by side
IMAGE_SIZE = 64
BACKGROUND = (255, 255, 255)
HELD_OUT_PERCENT = 10
CACHE_VERSION = 2

LICENCES = {
    "images": "Noto Color Emoji, SIL Open Font License 1.1 (Debian package fonts-noto-color-emoji)",
    "groups": "Unicode emoji-test.txt, Unicode License v3 (Debian package unicode-data)",
    "names": "PyPI package `emoji` (BSD licence), names from the Unicode CLDR",
}

# A curated set of visual classes for evaluation, each a rule on (group, subgroup).
# Emoji outside every class are still trained on; they just are not scored.
EVAL_CLASSES = ("face", "heart", "flag", "animal", "food", "plant", "vehicle", "clock", "hand", "symbol")

SKIN_TONE = re.compile(r"[:,]?\s*(light|medium-light|medium|medium-dark|dark) skin tone", re.IGNORECASE)


@dataclass(frozen=True)
class EmojiEntry:
    char: str
    name: str  # "red heart"
    aliases: tuple[str, ...]  # ("heart",)
    group: str  # "Smileys & Emotion"
    subgroup: str  # "heart"


def eval_class(group: str, subgroup: str) -> str | None:
    """The curated visual class of an emoji, or None when it belongs to none."""
    if group == "Smileys & Emotion" and subgroup.startswith("face-") and subgroup != "face-costume":
        return "face"
    if subgroup == "heart":
        return "heart"
    if group == "Flags":
        return "flag"
    if subgroup.startswith("animal-"):
        return "animal"
    if group == "Food & Drink" and subgroup != "dishware":
        return "food"
    if subgroup.startswith("plant-"):
        return "plant"
    if subgroup in ("transport-ground", "transport-water", "transport-air"):
        return "vehicle"
    if subgroup == "time":
        return "clock"
    if subgroup.startswith("hand") or subgroup == "hands":
        return "hand"
    if subgroup in ("arrow", "av-symbol", "keycap", "alphanum", "geometric", "zodiac", "religion", "math"):
        return "symbol"
    return None


def read_emoji_groups(path: Path = EMOJI_TEST_PATH) -> dict[str, tuple[str, str]]:
    """Map each fully-qualified emoji string to its (group, subgroup) from Unicode's emoji-test.txt."""
    groups: dict[str, tuple[str, str]] = {}
    group = subgroup = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#") and "; fully-qualified" in line:
            codepoints = line.split(";", 1)[0].split()
            groups["".join(chr(int(cp, 16)) for cp in codepoints)] = (group, subgroup)
    return groups


def clean_name(short_code: str) -> str:
    """':red_heart:' -> 'red heart'; also drops parentheses and underscores the way a user would type it."""
    text = short_code.strip(":").replace("_", " ").replace("\u2019", "'")  # one o’clock -> one o'clock
    text = re.sub(r"[()]", " ", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def list_emoji() -> list[EmojiEntry]:
    """Every fully-qualified emoji that has a Unicode group, in a fixed order."""
    import emoji

    groups = read_emoji_groups()
    entries = []
    for char, data in emoji.EMOJI_DATA.items():
        if data.get("status") != emoji.STATUS["fully_qualified"] or char not in groups:
            continue
        group, subgroup = groups[char]
        if group == "Component":  # bare skin-tone swatches and hair pieces
            continue
        name = clean_name(data["en"])
        aliases = tuple(dict.fromkeys(a for a in (clean_name(x) for x in data.get("alias", [])) if a != name))
        entries.append(EmojiEntry(char, name, aliases, group, subgroup))
    entries.sort(key=lambda e: [ord(c) for c in e.char])
    return entries


def load_font(path: Path = FONT_PATH):
    from PIL import ImageFont

    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: install the Debian package fonts-noto-color-emoji")
    return ImageFont.truetype(str(path), FONT_SIZE)


def render_glyph(char: str, font, size: int = IMAGE_SIZE) -> np.ndarray | None:
    """One emoji as a size x size RGB uint8 array on white, or None if the font cannot draw it as one glyph."""
    from PIL import Image, ImageDraw

    if font.getlength(char) > EM_PX + 2:
        return None
    canvas = Image.new("RGBA", (EM_PX, EM_PX), (0, 0, 0, 0))
    # The bitmap is 136 wide and 128 tall; drawing at y=4 centres it vertically in the square.
    ImageDraw.Draw(canvas).text((0, 4), char, font=font, embedded_color=True)
    alpha = np.asarray(canvas)[:, :, 3]
    if (alpha > 16).sum() < 50:  # blank or a tofu-sized speck: the font has no picture for it
        return None
    background = Image.new("RGBA", canvas.size, BACKGROUND + (255,))
    picture = Image.alpha_composite(background, canvas).convert("RGB")
    return np.asarray(picture.resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)


def base_name(name: str) -> str:
    """The name without a skin tone, so all variants of one emoji share a split."""
    return SKIN_TONE.sub("", name).strip(" :,")


def is_held_out(name: str) -> bool:
    digest = hashlib.sha256(base_name(name).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 100 < HELD_OUT_PERCENT


@dataclass
class EmojiDataset:
    images: np.ndarray  # (N, 64, 64, 3) uint8
    chars: list[str]
    names: list[str]
    aliases: list[tuple[str, ...]]
    groups: list[str]
    subgroups: list[str]
    held_out: np.ndarray  # (N,) bool

    def __len__(self) -> int:
        return len(self.names)

    def classes(self) -> list[str | None]:
        return [eval_class(g, s) for g, s in zip(self.groups, self.subgroups, strict=False)]

    def per_emoji_weights(self) -> np.ndarray:
        """Sampling probabilities under which each emoji counts once, however many skin tones it comes in.

        Drawn uniformly, the 1,610 skin-tone variants make People & Body 59 % of the training steps and leave a
        plant 0.8 %; shared among its variants, one emoji's weight no longer depends on how many tones it has.
        """
        bases = [base_name(n) for n in self.names]
        counts = collections.Counter(bases)
        weights = np.array([1.0 / counts[b] for b in bases])
        return weights / weights.sum()

    def split(self, held_out: bool) -> EmojiDataset:
        keep = np.flatnonzero(self.held_out == held_out)
        return self.subset(keep)

    def subset(self, indices) -> EmojiDataset:
        idx = [int(i) for i in indices]
        return EmojiDataset(
            images=self.images[idx],
            chars=[self.chars[i] for i in idx],
            names=[self.names[i] for i in idx],
            aliases=[self.aliases[i] for i in idx],
            groups=[self.groups[i] for i in idx],
            subgroups=[self.subgroups[i] for i in idx],
            held_out=self.held_out[idx],
        )


def render_dataset(entries: list[EmojiEntry], size: int = IMAGE_SIZE) -> EmojiDataset:
    font = load_font()
    kept, images = [], []
    for entry in entries:
        image = render_glyph(entry.char, font, size)
        if image is not None:
            kept.append(entry)
            images.append(image)
    return EmojiDataset(
        images=np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8),
        chars=[e.char for e in kept],
        names=[e.name for e in kept],
        aliases=[e.aliases for e in kept],
        groups=[e.group for e in kept],
        subgroups=[e.subgroup for e in kept],
        held_out=np.array([is_held_out(e.name) for e in kept], dtype=bool),
    )


def default_cache_path(size: int = IMAGE_SIZE) -> Path:
    from studio import paths

    return paths.cache_dir() / f"emoji_{size}px_v{CACHE_VERSION}.npz"


def save_dataset(data: EmojiDataset, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp,
        images=data.images,
        chars=np.array(data.chars, dtype=str),
        names=np.array(data.names, dtype=str),
        aliases=np.array(["|".join(a) for a in data.aliases], dtype=str),
        groups=np.array(data.groups, dtype=str),
        subgroups=np.array(data.subgroups, dtype=str),
        held_out=data.held_out,
    )
    tmp.replace(path)


def read_dataset(path: Path) -> EmojiDataset:
    with np.load(path, allow_pickle=False) as f:
        return EmojiDataset(
            images=f["images"],
            chars=[str(x) for x in f["chars"]],
            names=[str(x) for x in f["names"]],
            aliases=[tuple(a for a in str(x).split("|") if a) for x in f["aliases"]],
            groups=[str(x) for x in f["groups"]],
            subgroups=[str(x) for x in f["subgroups"]],
            held_out=f["held_out"].astype(bool),
        )


def load_dataset(cache_path: Path | None = None, size: int = IMAGE_SIZE) -> EmojiDataset:
    """The whole rendered data set (both splits), from the cache or rendered and cached now."""
    path = cache_path or default_cache_path(size)
    if path.exists():
        return read_dataset(path)
    data = render_dataset(list_emoji(), size)
    save_dataset(data, path)
    return data


def main() -> None:
    import collections
    import time

    start = time.time()
    data = load_dataset()
    counts = collections.Counter(c for c in data.classes())
    print(f"{len(data)} emoji ({int(data.held_out.sum())} held out) in {time.time() - start:.1f} s")
    print("eval classes:", dict(sorted(counts.items(), key=lambda kv: str(kv[0]))))


if __name__ == "__main__":
    main()
