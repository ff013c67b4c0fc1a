"""The Train tab's Data and Captions steps: read a user's folder, list what is in it and what is wrong with it.

`scan_folder(folder, medium)` returns a plain dict (it crosses from the engine process to the window):
  items      one per picture / text file / piece: {"id", "file", "caption", "tags", "detail"}
  skipped    files left out, each with the reason in words
  problems   [{"level": "error" | "warning", "text"}]: an error means the run would not start
  summary    one line: "34 pictures, 64x64 to 512x512 px"
  memory     {"needed", "available"} in bytes
It reads files only (PIL, music21, text): no model is loaded. The trainers read the items back through the same
functions (`load_images`, `read_text_entries`, `read_pieces`), so what the table showed is what is trained on.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from collections import Counter
from pathlib import Path

from studio import paths
from studio.core.jobs import Cancelled, Progress, Result, UserError
from studio.data import music as music_data
from studio.data import text as text_data
from studio.engine.music.piece import MAX_VOICES, METRES, PITCH_HIGH, PITCH_LOW, STYLES, tempo_bucket
from studio.engine.train.settings import MEMORY_SHARE, MIN_ITEMS, MIN_TEXT_BYTES, SUFFIXES

MAX_FILES = 20_000  # a folder with more is a photo library, not a training set: refused before any file is read
TOO_SMALL = 0.5  # pictures under half the model's size on their short side are scaled up and come out soft
TEXT_MEMORY_FACTOR = 12  # bytes of memory per byte of text: the str, its token ids and the batches
MUSIC_MEMORY_FACTOR = 40  # music21's score of a file is ~ this many times the file; one is parsed at a time
LISTED = 4  # names listed in a problem line before "and N more"


def available_memory() -> int:
    """Bytes the system could give now (MemAvailable), or total memory when /proc is not there."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def _names(files: list[str]) -> str:
    shown = ", ".join(files[:LISTED])
    return shown + (f" and {len(files) - LISTED} more" if len(files) > LISTED else "")


def _gb(n: float) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def list_files(folder: Path, medium: str) -> tuple[list[Path], list[Path]]:
    """(files of the medium's kinds, other files), below `folder`, sorted; hidden files and sidecar captions skipped."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    wanted, other = [], []
    for path in sorted(folder.rglob("*")):
        if len(wanted) + len(other) > MAX_FILES:
            raise UserError(f"{folder} holds more than {MAX_FILES:,} files: choose a folder of training material, "
                            "not a whole library")
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if path.suffix.lower() in SUFFIXES[medium]:
            wanted.append(path)
        elif not (medium == "image" and path.suffix.lower() == ".txt"):  # an image's caption sidecar
            other.append(path)
    return wanted, other


def words_of(name: str) -> str:
    """A caption from a file name: 'red_heart-02.png' -> 'red heart'."""
    stem = re.sub(r"[_\-.]+", " ", Path(name).stem)
    return " ".join(w for w in stem.split() if not w.isdigit()).strip()


# --- pictures -------------------------------------------------------------------------------------------------------


def image_caption(path: Path) -> str:
    """The sidecar .txt's first line (kohya's convention), else the file name's words."""
    sidecar = path.with_suffix(".txt")
    if sidecar.is_file():
        text = sidecar.read_text(encoding="utf-8", errors="replace").strip()
        if text:
            return " ".join(text.splitlines()[0].split())
    return words_of(path.name)


def square_picture(path: Path, size: int):
    """An RGB picture, centre-cropped to a square and scaled to `size` (transparency on white)."""
    from PIL import Image

    with Image.open(path) as opened:
        picture = opened.convert("RGBA")
    canvas = Image.new("RGBA", picture.size, (255, 255, 255, 255))
    picture = Image.alpha_composite(canvas, picture).convert("RGB")
    side = min(picture.size)
    left, top = (picture.width - side) // 2, (picture.height - side) // 2
    picture = picture.crop((left, top, left + side, top + side))
    resample = Image.Resampling.NEAREST if side < size and size % side == 0 else Image.Resampling.LANCZOS
    return picture.resize((size, size), resample)


def load_images(folder: Path, items: list[dict], size: int):
    """The items' pictures as uint8 (N, size, size, 3), in the items' order."""
    import numpy as np

    return np.stack([np.asarray(square_picture(folder / item["file"], size)) for item in items])


def scan_images(folder: Path, files: list[Path], size: int, check) -> dict:
    from PIL import Image, UnidentifiedImageError

    items, skipped, seen, duplicates, small, stretched = [], [], {}, [], [], []
    largest = 0
    for index, path in enumerate(files):
        check(index, len(files))
        rel = str(path.relative_to(folder))
        try:
            with Image.open(path) as opened:
                width, height = opened.size
            pixels = square_picture(path, size).tobytes()
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            skipped.append({"file": rel, "why": f"not a readable picture ({type(exc).__name__})"})
            continue
        digest = hashlib.sha256(pixels).hexdigest()
        if digest in seen:
            duplicates.append(f"{rel} = {seen[digest]}")
            continue
        seen[digest] = rel
        largest = max(largest, width * height)
        if min(width, height) < size * TOO_SMALL:
            small.append(rel)
        if max(width, height) > 2 * min(width, height):
            stretched.append(rel)
        items.append({"id": rel, "file": rel, "caption": image_caption(path), "tags": {},
                      "detail": f"{width}×{height}"})
    problems = []
    if small:
        problems.append(("warning", f"{len(small)} pictures are much smaller than the model's {size}×{size} and "
                                    f"will look soft: {_names(small)}"))
    if stretched:
        problems.append(("warning", f"{len(stretched)} pictures are more than twice as wide as tall (or the reverse): "
                                    f"only their middle square is used: {_names(stretched)}"))
    needed = len(items) * size * size * 3 * 8 + largest * 4 * 2  # the set (uint8 + float copies) + the largest file
    return {"items": items, "skipped": skipped, "duplicates": duplicates, "problems": problems, "needed": needed,
            "unit": "pictures"}


def first_draft_captions(folder: Path, items: list[dict], size: int = 64) -> list[dict]:
    """Captions from what the app can already tell: the file name's words and the picture's main colour."""
    import numpy as np

    from studio.data.emoji_words import colour_name

    drafted = []
    for item in items:
        colour = colour_name(np.asarray(square_picture(folder / item["file"], size)))
        words = words_of(item["file"])
        caption = " ".join(w for w in (colour, words) if w and not (colour and words.startswith(colour)))
        drafted.append({**item, "caption": caption or item["caption"]})
    return drafted


# --- texts ----------------------------------------------------------------------------------------------------------


def read_text_entries(path: Path) -> list[str]:
    """A text file as entries: paragraphs (split at blank lines), joined up to ~1,500 characters each, so an
    entry is a few sentences of the voice and the held-out split takes whole passages."""
    text = path.read_text(encoding="utf-8", errors="strict").replace("\r\n", "\n")
    entries, current = [], ""
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = text_data.clean_text(paragraph)
        if not paragraph:
            continue
        current = f"{current}\n\n{paragraph}" if current else paragraph
        if len(current) >= 1500:
            entries.append(current)
            current = ""
    if current:
        entries.append(current)
    return entries


def scan_texts(folder: Path, files: list[Path], size: int, check) -> dict:
    items, skipped, seen, duplicates, tiny = [], [], {}, [], []
    total = 0
    for index, path in enumerate(files):
        check(index, len(files))
        rel = str(path.relative_to(folder))
        try:
            entries = read_text_entries(path)
        except (OSError, UnicodeDecodeError) as exc:
            skipped.append({"file": rel, "why": f"not readable as UTF-8 text ({type(exc).__name__})"})
            continue
        if not entries:
            skipped.append({"file": rel, "why": "empty"})
            continue
        digest = hashlib.sha256("\n".join(entries).encode()).hexdigest()
        if digest in seen:
            duplicates.append(f"{rel} = {seen[digest]}")
            continue
        seen[digest] = rel
        length = sum(len(e.encode()) for e in entries)
        total += length
        if length < 200:
            tiny.append(rel)
        first = entries[0].split("\n", 1)[0]
        items.append({"id": rel, "file": rel, "caption": first[:80], "tags": {"bytes": length, "passages": len(entries)},
                      "detail": f"{length / 1000:.1f} kB, {len(entries)} passages"})
    problems = []
    if tiny:
        problems.append(("warning", f"{len(tiny)} files hold only a line or two: {_names(tiny)}"))
    if items and total < MIN_TEXT_BYTES:
        level = "error" if total < MIN_TEXT_BYTES // 10 else "warning"
        problems.append((level, f"Only {total / 1000:.1f} kB of text: a voice needs about {MIN_TEXT_BYTES // 1000} kB "
                                "or more, or the adapter just repeats it."))
    return {"items": items, "skipped": skipped, "duplicates": duplicates, "problems": problems,
            "needed": total * TEXT_MEMORY_FACTOR, "unit": "text files"}


# --- music ----------------------------------------------------------------------------------------------------------


def _scores(path: Path):
    """(id suffix, music21 score, source text or None) for each piece in a file: an ABC file may hold many tunes."""
    from music21 import converter

    if path.suffix.lower() == ".abc":
        text = path.read_text(encoding="latin-1")
        tunes = music_data.split_abc_tunes(text) or [text]
        for index, tune in enumerate(tunes):
            score = converter.parse(tune, format="abc")
            yield (f"#{index + 1}" if len(tunes) > 1 else ""), score
        return
    yield "", converter.parse(str(path))


def _why_not(score, piece: dict | None) -> str | None:
    """Why a parsed score can't be trained on, in words, or None."""
    parts = len(score.parts) if hasattr(score, "parts") and len(score.parts) else 1
    if parts > MAX_VOICES:
        return f"{parts} voices (the model writes at most {MAX_VOICES})"
    if piece is None:
        return "fewer than 8 notes, or a bar length the model does not write"
    if piece["metre"] not in METRES:
        return f"in {piece['metre']} (the model knows {', '.join(METRES)})"
    pitches = [note[0] for note in piece["notes"]]
    if min(pitches) < PITCH_LOW or max(pitches) > PITCH_HIGH:
        return "notes outside the piano's range"
    return None


def read_pieces(path: Path, rel: str) -> tuple[list[dict], list[str]]:
    """The pieces in one music file as the corpus builder makes them (studio/data/music.py: notes, key estimated
    from the notes where the file names none, metre, tempo), and the reasons the others were left out.
    Cached by the file's size and time, so the trainer does not parse again what the scan read."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{rel}".encode()).hexdigest()[:24]
    cache = paths.cache_dir() / "train-pieces" / f"{key}.json.gz"
    if cache.exists():
        with gzip.open(cache, "rt", encoding="utf-8") as handle:
            saved = json.load(handle)
        return saved["pieces"], saved["reasons"]
    pieces, reasons = [], []
    for suffix, score in _scores(path):
        if hasattr(score, "scores") and not hasattr(score, "parts"):
            score = score.scores[0]
        piece = music_data.piece_from_score(score, rel + suffix, "user", "tune") if len(
            getattr(score, "parts", []) or [0]) <= MAX_VOICES else None
        why = _why_not(score, piece)
        if why:
            reasons.append(f"{rel}{suffix}: {why}")
        else:
            pieces.append(piece)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(cache, "wt", encoding="utf-8") as handle:
        json.dump({"pieces": pieces, "reasons": reasons}, handle)
    return pieces, reasons


def usual_style(piece: dict) -> str:
    """A style tag the model knows for a user's piece: several voices read as a chorale, one as a tune."""
    return "chorale" if piece.get("voices", 1) > 1 else "tune"


def scan_music(folder: Path, files: list[Path], size: int, check) -> dict:
    from studio.engine.music.piece import NOTE_NAMES

    items, skipped, seen, duplicates, left_out = [], [], {}, [], []
    for index, path in enumerate(files):
        check(index, len(files))
        rel = str(path.relative_to(folder))
        try:
            pieces, reasons = read_pieces(path, rel)
        except Exception as exc:  # noqa: BLE001 - music21 raises many kinds on a broken file; each is "unreadable"
            skipped.append({"file": rel, "why": f"not readable as music ({type(exc).__name__})"})
            continue
        left_out += reasons
        for piece in pieces:
            digest = hashlib.sha256(json.dumps(piece["notes"]).encode()).hexdigest()
            if digest in seen:
                duplicates.append(f"{piece['id']} = {seen[digest]}")
                continue
            seen[digest] = piece["id"]
            key = f"{NOTE_NAMES[piece['tonic']]} {piece['mode']}"
            tempo = tempo_bucket(piece["tempo"])
            tags = {"key": key, "metre": piece["metre"], "tempo": tempo, "voices": piece["voices"],
                    "style": usual_style(piece)}
            items.append({"id": piece["id"], "file": rel, "caption": "", "tags": tags,
                          "detail": f"{key}, {piece['metre']}, {piece['voices']} voices, {len(piece['notes'])} notes"})
    problems = []
    if left_out:
        problems.append(("warning", f"{len(left_out)} pieces are left out: {_names(left_out)}"))
    needed = sum(p.stat().st_size for p in files) * MUSIC_MEMORY_FACTOR // max(1, len(files))
    return {"items": items, "skipped": skipped, "duplicates": duplicates, "problems": problems,
            "needed": needed + len(items) * 200_000, "unit": "pieces", "styles": list(STYLES)}


SCANNERS = {"image": scan_images, "text": scan_texts, "music": scan_music}


# --- the whole folder -----------------------------------------------------------------------------------------------


def memory_estimate(medium: str, files: list[Path]) -> int:
    """Bytes the data would take, from the files' sizes alone (before reading any): a first, cheap refusal."""
    total = sum(p.stat().st_size for p in files)
    if medium == "text":
        return total * TEXT_MEMORY_FACTOR
    if medium == "music":
        return max((p.stat().st_size for p in files), default=0) * MUSIC_MEMORY_FACTOR
    return total * 8  # compressed pictures decode to several times their file size


def scan_folder(folder: Path | str, medium: str, size: int = 64, available: int | None = None,
                report=None, cancelled=None) -> dict:
    """What is in the folder and what is wrong with it (see the module's docstring). Raises nothing for bad
    content: every problem is a line in the report."""
    folder = Path(folder).expanduser()
    available = available_memory() if available is None else available
    budget = int(available * MEMORY_SHARE)
    base = {"medium": medium, "folder": str(folder), "items": [], "skipped": [], "problems": [], "summary": "",
            "memory": {"needed": 0, "available": available}}
    try:
        files, other = list_files(folder, medium)
    except UserError as exc:
        return {**base, "problems": [{"level": "error", "text": str(exc)}]}
    kinds = ", ".join(SUFFIXES[medium])
    if not files:
        what = f"{len(other)} files, none of them" if other else "nothing:"
        return {**base, "problems": [{"level": "error", "text": f"The folder holds {what} {kinds}: nothing to learn "
                                                                 "from."}]}
    first_guess = memory_estimate(medium, files)
    if first_guess > budget:
        return {**base, "memory": {"needed": first_guess, "available": available}, "problems": [{
            "level": "error", "text": f"This folder is too big for this computer's memory: it needs about "
                                      f"{_gb(first_guess)} and {_gb(budget)} can be spared. Choose fewer files."}]}

    def check(index: int, total: int) -> None:
        if cancelled is not None and cancelled():
            raise Cancelled()
        if report is not None:
            report(Progress(index, total, message=f"reading {index + 1} of {total}"))

    found = SCANNERS[medium](folder, files, size, check)
    return {**base, **_verdict(medium, found, other, budget, kinds), "memory": {"needed": found["needed"],
                                                                               "available": available}}


def _verdict(medium: str, found: dict, other: list[Path], budget: int, kinds: str) -> dict:
    items, skipped, unit = found["items"], found["skipped"], found["unit"]
    problems = [{"level": level, "text": text} for level, text in found["problems"]]
    if skipped:
        level = "warning" if items else "error"
        empty = sum(1 for s in skipped if s["why"] == "empty")
        what = "can't be read" if not empty else "are empty" if empty == len(skipped) else "can't be read or are empty"
        problems.insert(0, {"level": level, "text": f"{len(skipped)} of {len(skipped) + len(items)} files {what} "
                                                    f"and are left out: {_names([s['file'] for s in skipped])}"})
    if found["duplicates"]:
        problems.append({"level": "warning", "text": f"{len(found['duplicates'])} duplicates are used once: "
                                                     f"{_names(found['duplicates'])}"})
    least = MIN_ITEMS[medium]
    if items and len(items) < least and medium != "text":
        level = "error" if len(items) < max(2, least // 2) else "warning"
        problems.append({"level": level, "text": f"Only {len(items)} {unit}: an adapter needs about {least} or more "
                                                 "to learn a style rather than copy them."})
    if found["needed"] > budget:
        problems.append({"level": "error", "text": f"This folder is too big for this computer's memory: it needs "
                                                   f"about {_gb(found['needed'])} and {_gb(budget)} can be spared."})
    if not items and not skipped:
        problems.append({"level": "error", "text": f"No usable {unit} in the folder ({kinds})."})
    summary = f"{len(items)} {unit}"
    if other:
        summary += f"; {len(other)} other files ignored"
    return {"items": items, "skipped": skipped, "problems": problems, "summary": summary,
            "styles": found.get("styles", [])}


def can_train(report: dict) -> bool:
    return bool(report["items"]) and not any(p["level"] == "error" for p in report["problems"])


def style_counts(items: list[dict]) -> Counter:
    return Counter(item["tags"].get("style", "") for item in items)


def check_styles(items: list[dict]) -> None:
    for item in items:
        style = item.get("tags", {}).get("style")
        if style is not None and style not in STYLES:
            raise UserError(f"{item['id']}: style {style!r} is not one the model knows ({', '.join(STYLES)})")


# --- the base model, as far as its files tell (no weights loaded) ---------------------------------------------------


def _parameters(files: list[Path], prefix: str = "") -> int:
    from studio.core.catalog import read_safetensors_header

    total = 0
    for file in files:
        for name, entry in read_safetensors_header(file).items():
            if name.startswith(prefix):
                count = 1
                for dim in entry["shape"]:
                    count *= dim
                total += count
    return total


def image_base_facts(ref: str) -> dict:
    """{"size": native picture size, "parameters": the UNet's} of an SD-family model, from configs and headers."""
    from studio.core import catalog

    source = catalog.resolve(ref)
    if source.kind == "single_file":
        from studio.engine.image.pipelines import detect_checkpoint_family

        family = detect_checkpoint_family(source.path)
        if not family.startswith(("sd1", "sd2")) or family.endswith("inpaint"):
            raise UserError(f"{source.name} is an {family} model: the Train tab trains SD 1.x/2.x and the built-in")
        return {"size": 768 if family == "sd2" else 512,
                "parameters": _parameters([source.path], "model.diffusion_model.")}
    if source.kind not in ("builtin", "diffusers") or not (Path(source.path) / "unet" / "config.json").exists():
        raise UserError(f"{source.name} is not a Stable Diffusion-style model (a diffusers folder with a UNet)")
    folder = Path(source.path)
    if "text_encoder_2" in catalog.read_json(folder / "model_index.json"):
        raise UserError(f"{source.name} is an SDXL model: the Train tab trains SD 1.x/2.x and the built-in")
    unet = catalog.read_json(folder / "unet" / "config.json")
    vae = catalog.read_json(folder / "vae" / "config.json")
    size = int(unet.get("sample_size", 64)) * 2 ** (len(vae.get("block_out_channels", [0, 0, 0, 0])) - 1)
    return {"size": size, "parameters": _parameters(sorted((folder / "unet").glob("*.safetensors")))}


def gpu_problem(parameters: int) -> str | None:
    """Words for a model too big for this computer's processor, when there is no CUDA GPU; None when it can train."""
    from studio.engine.train.settings import CPU_UNET_LIMIT, gpu_needs

    if parameters <= CPU_UNET_LIMIT:
        return None
    import torch

    return None if torch.cuda.is_available() else gpu_needs(parameters)


def scan_task(job, ctx) -> Result:
    """Engine job "train.scan": job.args {"folder", "medium", "model", "draft_captions"} -> Result.value."""
    from studio.engine.train.settings import BASE_MODELS

    args = job.args
    medium = str(args.get("medium", "image"))
    if medium not in SCANNERS:
        raise UserError(f"the Train tab trains images, text or music, not {medium!r}")
    size, blocked = 64, None
    if medium == "image":
        facts = image_base_facts(str(args.get("model") or BASE_MODELS["image"]))
        size, blocked = int(args.get("size") or facts["size"]), gpu_problem(facts["parameters"])
    found = scan_folder(args.get("folder", ""), medium, size, args.get("available"), ctx.report, ctx.cancelled)
    if blocked:
        found["problems"].insert(0, {"level": "error", "text": blocked})
    if medium == "image" and args.get("draft_captions") and found["items"]:
        found["items"] = first_draft_captions(Path(found["folder"]), found["items"])
    found["can_train"] = can_train(found)
    found["size"] = size
    return Result(value=found)
