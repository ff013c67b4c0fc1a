"""A second hand: the same emoji drawn by another vendor, so one name has more than one right picture.

Noto draws "red heart" one way; a prompt naming one emoji therefore had one right picture, and every seed drew it.
EmojiOne 2.2 (Debian package ruby-gemojione, CC BY-SA 4.0, 64x64 PNGs named by code point) draws about half of
the same emoji in its own style. Each picture is matched to the Noto data set's entry by its code points (variation
selectors ignored), composited on white and shrunk to Noto's extent, and keeps that entry's held-out split, so a
held-out emoji stays unseen in either hand.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from studio.data import emoji as data_emoji

EMOJIONE_DIR = Path("/usr/share/rubygems-integration/all/gems/gemojione-3.3.0/assets/png")
LICENCE = "EmojiOne 2.2 by Ranks.com, CC BY-SA 4.0 (Debian package ruby-gemojione)"
# Noto's glyphs span a median 58 of 64 px; EmojiOne's PNGs 60 of 64. Shrinking to 0.97 gives both the same extent.
FILL = 0.97
VARIATION_SELECTOR = 0xFE0F
CACHE_VERSION = 1


def code_point_key(char: str) -> str:
    """EmojiOne's file name for an emoji: its code points in upper-case hex, dash-joined, without FE0F."""
    return "-".join(f"{ord(c):X}" for c in char if ord(c) != VARIATION_SELECTOR)


def available(directory: Path = EMOJIONE_DIR) -> bool:
    return directory.is_dir() and any(directory.glob("*.png"))


def load_picture(path: Path, size: int = data_emoji.IMAGE_SIZE, fill: float = FILL) -> np.ndarray:
    """One PNG as a size x size RGB uint8 array on white, centred at Noto's extent."""
    from PIL import Image

    with Image.open(path) as source:
        picture = source.convert("RGBA")
    background = Image.new("RGBA", picture.size, data_emoji.BACKGROUND + (255,))
    picture = Image.alpha_composite(background, picture).convert("RGB")
    inner = int(round(size * fill))
    picture = picture.resize((inner, inner), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), data_emoji.BACKGROUND)
    canvas.paste(picture, ((size - inner) // 2, (size - inner) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def second_hand(data: data_emoji.EmojiDataset, directory: Path = EMOJIONE_DIR,
                size: int = data_emoji.IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(indices into `data` that the second hand draws, their pictures): the same order and split as `data`."""
    files = {path.stem.upper(): path for path in directory.glob("*.png")} if directory.is_dir() else {}
    indices = [i for i, char in enumerate(data.chars) if code_point_key(char) in files]
    pictures = [load_picture(files[code_point_key(data.chars[i])], size) for i in indices]
    empty = np.zeros((0, size, size, 3), np.uint8)
    return np.array(indices, dtype=np.int64), np.stack(pictures) if pictures else empty


def default_cache_path(size: int = data_emoji.IMAGE_SIZE) -> Path:
    from studio import paths

    return paths.cache_dir() / f"emojione_{size}px_v{CACHE_VERSION}.npz"


def load_second_hand(data: data_emoji.EmojiDataset, cache_path: Path | None = None,
                     directory: Path = EMOJIONE_DIR) -> tuple[np.ndarray, np.ndarray]:
    """`second_hand` of the whole data set, cached as an .npz (no pickles) keyed by the characters it matched."""
    path = cache_path or default_cache_path()
    if path.exists():
        with np.load(path, allow_pickle=False) as cached:
            chars = [str(c) for c in cached["chars"]]
            indices = cached["indices"]
            if all(i < len(data.chars) and data.chars[i] == c for i, c in zip(indices, chars, strict=True)):
                return indices, cached["images"]
    if not available(directory):
        raise FileNotFoundError(f"{directory} is missing: install the Debian package ruby-gemojione")
    indices, images = second_hand(data, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, indices=indices, images=images, chars=np.array([data.chars[i] for i in indices], str))
    tmp.replace(path)
    return indices, images


def second_hand_data(data: data_emoji.EmojiDataset) -> tuple[np.ndarray, data_emoji.EmojiDataset]:
    """(indices into `data`, EmojiOne's pictures as a data set of those entries: names, groups, held-out split)."""
    indices, pictures = load_second_hand(data)
    return indices, dataclasses.replace(data.subset(indices), images=pictures)
