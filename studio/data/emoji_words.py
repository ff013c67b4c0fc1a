"""Words people use for an emoji beyond its name: CLDR keywords and the colour its pixels show.

  unicode-cldr-core  /usr/share/unicode/cldr/common/annotations/en.xml         Unicode-DFS-2016 licence
                     /usr/share/unicode/cldr/common/annotationsDerived/en.xml  (keywords of sequences: flags, tones)

The built-in image model learnt from names like "dog face"; people type "a cute puppy" or "a blue car".
CLDR's keywords ("dog | face | pet") and a colour read off the glyph give the captions those words.
"""

from __future__ import annotations

import colorsys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

CLDR_DIR = Path("/usr/share/unicode/cldr/common")
CLDR_FILES = (CLDR_DIR / "annotations" / "en.xml", CLDR_DIR / "annotationsDerived" / "en.xml")
LICENCE = "Unicode CLDR annotations, Unicode-DFS-2016 licence (Debian package unicode-cldr-core)"
VARIATION_SELECTOR = "\ufe0f"  # CLDR keys emoji without it; the emoji package's keys carry it

# Hue ranges (degrees) and their everyday names; checked in order, so red wraps around 0.
HUE_NAMES = ((15, "red"), (40, "orange"), (70, "yellow"), (165, "green"), (255, "blue"), (290, "purple"),
             (335, "pink"), (360, "red"))


def _key(char: str) -> str:
    return char.replace(VARIATION_SELECTOR, "")


def read_cldr_keywords(files=CLDR_FILES) -> dict[str, tuple[str, ...]]:
    """emoji (without variation selectors) -> its English keywords, lower case; {} when the package is missing."""
    keywords: dict[str, tuple[str, ...]] = {}
    for path in files:
        if not path.exists():
            continue
        for node in ElementTree.parse(path).getroot().iter("annotation"):
            if node.get("type") == "tts" or not node.text:
                continue
            words = tuple(w.strip().lower() for w in node.text.split("|") if w.strip())
            keywords.setdefault(_key(node.get("cp", "")), words)
    return keywords


def keywords_for(char: str, table: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    return table.get(_key(char), ())


def colour_name(image: np.ndarray) -> str | None:
    """The everyday name of a glyph's main colour, or None when no colour covers a fifth of its ink.

    Ink is every pixel that is not near-white background. Greys, black, white and brown are named by
    lightness and saturation; the rest by hue.
    """
    pixels = image.reshape(-1, 3).astype(np.float32) / 255.0
    ink = pixels[pixels.min(axis=1) < 0.92]
    if len(ink) < 40:
        return None
    names = [_pixel_colour(p) for p in ink[:: max(1, len(ink) // 400)]]
    values, counts = np.unique(names, return_counts=True)
    best = int(counts.argmax())
    return str(values[best]) if counts[best] >= 0.2 * len(names) else None


def _pixel_colour(rgb: np.ndarray) -> str:
    hue, lightness, saturation = colorsys.rgb_to_hls(*(float(c) for c in rgb))
    if lightness < 0.15:
        return "black"
    if saturation < 0.2 or (lightness > 0.85 and saturation < 0.5):
        return "grey" if lightness < 0.8 else "white"
    degrees = hue * 360
    if 15 <= degrees < 45 and lightness < 0.4:
        return "brown"
    return next(name for limit, name in HUE_NAMES if degrees < limit)
