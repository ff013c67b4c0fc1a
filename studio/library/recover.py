"""After a kill: adopt complete outputs that have no history row, remove hidden temp files.

A save is file(s) first, then the row (history.py). A kill between the two leaves a complete file under its
visible name — written whole and renamed or linked into place (core/files.py) — that carries our recipe but has
no row. `recover` (called at every start of the window and of the CLI) gives each such orphan its row, so nothing
finished is lost, and removes the `.partial-*` temp files a killed writer left (never one being written now).
Only our own outputs are adopted: a file must carry a Latent Studio recipe; the user's own files are left alone.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from studio.core.files import PARTIAL_PREFIX, sweep_partials

log = logging.getLogger(__name__)

SUFFIXES = (".png", ".md", ".mid", ".wav", ".gif")
YOUNG = 60.0  # seconds: a music piece's .mid whose .wav is missing may still be mid-save by another process


def recover(history) -> tuple[int, int]:
    """(temp files removed, orphans adopted) in the history's output folder and its dated subfolders."""
    removed = sweep_partials(history.outputs_dir)
    known = history.all_files()
    adopted = 0
    for path in _candidates(Path(history.outputs_dir)):
        if str(path.resolve()) in known:
            continue
        try:
            found = _read_orphan(path, known)
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file is simply not ours to adopt
            log.info("not adopted: %s (%s)", path, exc)
            continue
        if found is None:
            continue
        modality, recipe, files, thumbnail, summary = found
        history.add_row(recipe, files, thumbnail, summary, modality)
        known.update(str(f.resolve()) for f in files)
        adopted += 1
    if removed or adopted:
        log.warning("recovered after a kill: %d temp file(s) removed, %d output(s) adopted", removed, adopted)
    return removed, adopted


def _candidates(folder: Path):
    for pattern in ("*", "*/*"):
        for path in sorted(folder.glob(pattern)):
            if path.suffix.lower() in SUFFIXES and not path.name.startswith(PARTIAL_PREFIX) and path.is_file():
                yield path


def _read_orphan(path: Path, known: set[str]):
    """(modality, recipe, files, thumbnail, summary) for an output of ours, or None."""
    from studio.library import export

    suffix = path.suffix.lower()
    if suffix == ".png":
        if path.stem.endswith("-sheet") and path.with_name(path.stem[: -len("-sheet")] + ".gif").exists():
            return None  # an animation's contact sheet: adopted with its GIF
        from PIL import Image

        with Image.open(path) as image:
            text = dict(getattr(image, "text", {}) or {})
            if "studio" not in text:
                return None  # not written by us (an A1111 or a user's picture)
            image.load()
            thumbnail = export.thumbnail_png(image)
        recipe = export.read_image_parameters(path).recipe
        return "image", recipe, [path], thumbnail, recipe.prompt
    if suffix == ".md":
        recipe = export.read_text_recipe(path)
        body = path.read_text(encoding="utf-8").split("\n---\n", 1)[-1]
        return "text", recipe, [path], None, body.strip()[:300]
    if suffix == ".mid":
        from studio.engine.music import midi

        recipe = midi.read_recipe_from_midi(path)
        wav = path.with_suffix(".wav")
        if recipe is None:
            return None
        if not wav.exists() and time.time() - path.stat().st_mtime < YOUNG:
            return None  # perhaps another process is between its two files: the next start adopts it
        files = [path, wav] if wav.exists() else [path]
        return "music", recipe, files, export.piano_roll_png(midi.read_midi(path).notes), recipe.prompt
    if suffix == ".wav":
        if path.with_suffix(".mid").exists():
            return None  # a music piece's audio: adopted with its MIDI
        recipe = export.read_audio_recipe(path)
        return "audio", recipe, [path], None, recipe.prompt
    if suffix == ".gif":
        recipe = export.read_gif_recipe(path)
        extra = [path.with_name(path.stem + "-sheet.png"), path.with_suffix(".mp4")]
        return "animation", recipe, [path] + [p for p in extra if p.exists()], None, recipe.prompt
    return None
