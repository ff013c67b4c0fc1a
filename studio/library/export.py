"""File writers that embed the recipe, and the readers that get it back.

Every writer goes through `atomic_write`: the bytes land in a hidden temp file in the same
folder, are flushed to disk, then renamed over the final name. A crash at any moment leaves
either no file or a complete one under the visible name.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import logging
import re
from collections.abc import Callable
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

from studio import media
from studio.core.catalog import licence_notice
from studio.core.files import atomic_write, atomic_write_bytes, unique_path
from studio.core.recipe import ParsedParameters, Recipe, RecipeError, a1111_parameters, parse_a1111_parameters
from studio.library import foreign

log = logging.getLogger(__name__)

FRONT_MATTER = "---"


# --- images -------------------------------------------------------------------------------


def png_bytes(image, recipe: Recipe, extra_text: dict[str, str] | None = None) -> bytes:
    """`extra_text`: more text chunks, e.g. a ComfyUI job's `prompt` and `workflow` (so ComfyUI opens the file)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", a1111_parameters(recipe))  # A1111, Civitai, image viewers
    info.add_itxt("studio", recipe.to_json())  # the full recipe, UTF-8
    for key, value in (extra_text or {}).items():
        info.add_text(key, value)  # latin-1 tEXt as ComfyUI writes it; anything else becomes iTXt
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def write_png(image, path: Path, recipe: Recipe, new: bool = False, extra_text: dict[str, str] | None = None) -> Path:
    return atomic_write_bytes(path, png_bytes(image, recipe, extra_text), new=new)


def write_jpeg_or_webp(image, path: Path, recipe: Recipe, quality: int = 92) -> Path:
    """JPEG/WebP carry the A1111 text in EXIF UserComment, where A1111 itself looks."""
    from PIL import Image

    exif = Image.Exif()
    user_comment = b"UNICODE\0" + a1111_parameters(recipe).encode("utf-16-be")
    # UserComment belongs in the Exif sub-IFD (0x8769), where A1111 and our reader look; in IFD0 it was unseen
    exif.get_ifd(0x8769)[0x9286] = user_comment
    fmt = "WEBP" if Path(path).suffix.lower() == ".webp" else "JPEG"
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=fmt, quality=quality, exif=exif.tobytes())
    return atomic_write_bytes(path, buffer.getvalue())


MAX_FILE_BYTES = 512 * 1024 * 1024  # a file this big is not read for a recipe at all
MAX_TEXT_CHARS = 1024 * 1024  # a text chunk over 1 MB is not parsed as settings (an 8 MB prompt took 3 s)


def file_errors(read: Callable[..., Any]) -> Callable[..., Any]:
    """The one place a reader's failure becomes a RecipeError naming the file, in one line: Pillow, mido,
    soundfile, PyAV and json each raise their own (ValueError, SyntaxError, OverflowError, RecursionError,
    DecompressionBombError, struct.error, zlib.error, EOFError, UnicodeDecodeError, KeyError, TypeError, …)."""

    @functools.wraps(read)
    def reader(path: Path, *args: Any, **kwargs: Any) -> Any:
        name = Path(path).name
        try:
            size = Path(path).stat().st_size
        except OSError as exc:
            raise RecipeError(f"{name}: cannot be read ({exc.strerror or exc})") from exc
        if size > MAX_FILE_BYTES:
            raise RecipeError(f"{name}: {size / 2**20:.0f} MB is too big to hold a recipe; not read")
        try:
            return read(path, *args, **kwargs)
        except RecipeError as exc:
            text = " ".join(str(exc).split())[:300]
            if text.startswith(name):
                raise RecipeError(text) from exc
            raise RecipeError(f"{name}: {text}") from exc
        except Exception as exc:  # noqa: BLE001 - third-party readers raise anything on a damaged file
            detail = " ".join(str(exc).split())[:200]
            raise RecipeError(f"{name}: not a readable file ({type(exc).__name__}: {detail})") from exc

    return reader


@file_errors
def read_image_parameters(path: Path) -> ParsedParameters:
    """The settings stored in an image: Latent Studio's recipe, else another tool's (A1111, Fooocus, NovelAI, ComfyUI,
    InvokeAI). What another tool wrote that we can't use (an Exponential schedule, hashes, …) rides along in the
    recipe's `kept` param, so our outputs made from it write it back (`a1111_parameters`)."""
    parsed = _read_image_parameters(path)
    if parsed.unknown and not parsed.recipe.param("kept"):
        kept = {str(k): str(v)[:300] for k, v in list(parsed.unknown.items())[:40]}
        return dataclasses.replace(parsed, recipe=parsed.recipe.with_params(kept=kept))
    return parsed


def _read_image_parameters(path: Path) -> ParsedParameters:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            text = dict(getattr(image, "text", {}) or {})
            exif = image.getexif()
    except (OSError, UnidentifiedImageError) as exc:
        raise RecipeError(f"{Path(path).name}: not an image this app can read ({exc})") from exc
    huge = sorted(key for key, value in text.items() if len(value) > MAX_TEXT_CHARS)
    if huge:  # parsed, an 8 MB prompt held the window 12 s: no tool writes settings this long
        raise RecipeError(f"{Path(path).name}: its {', '.join(huge)[:80]} text is over 1 MB, too long to be "
                          "generation settings; nothing was loaded")
    if "studio" in text:
        return ParsedParameters(Recipe.from_json(text["studio"]), {})
    if "parameters" in text:
        return parse_a1111_parameters(text["parameters"])
    found = foreign.read_foreign(text)  # NovelAI, ComfyUI, InvokeAI: studio/library/foreign.py
    if found is not None:
        return found
    if "Comment" in text:  # Fooocus' own scheme when it writes JPEG-like metadata in PNG
        return parse_a1111_parameters(text["Comment"])
    comment = exif.get_ifd(0x8769).get(0x9286) if exif else None
    if comment and len(comment) > MAX_TEXT_CHARS:
        raise RecipeError(f"{Path(path).name}: its EXIF comment is over 1 MB; nothing was loaded")
    if comment:
        return parse_a1111_parameters(_decode_user_comment(comment))
    raise RecipeError(f"{Path(path).name} holds no generation settings")


def _decode_user_comment(raw: Any) -> str:
    if isinstance(raw, str):
        return raw
    if raw.startswith(b"UNICODE\0"):
        body = raw[8:]
        # A1111 writes big-endian; some tools little-endian: pick the one that decodes to text
        for encoding in ("utf-16-be", "utf-16-le"):
            text = body.decode(encoding, errors="replace")
            if text.isprintable() or "\n" in text:
                return text
        return body.decode("utf-16-be", errors="replace")
    return raw[8:].decode("utf-8", errors="replace") if raw[:8] == b"ASCII\0\0\0" else raw.decode("utf-8", "replace")


def thumbnail_png(image, size: int = 160) -> bytes:
    thumb = image.convert("RGB").copy()
    thumb.thumbnail((size, size))
    buffer = io.BytesIO()
    thumb.save(buffer, format="PNG")
    return buffer.getvalue()


# --- text ---------------------------------------------------------------------------------


def text_document(text: str, recipe: Recipe, prompt_included: bool = True) -> str:
    """Markdown with the recipe as front matter; the body is prompt + generated text."""
    body = (recipe.prompt + text) if prompt_included and recipe.param("mode", "completion") == "completion" else text
    return f"{FRONT_MATTER}\nstudio_recipe: {recipe.to_json()}\n{FRONT_MATTER}\n\n{body}\n"


def write_text(text: str, path: Path, recipe: Recipe, new: bool = False) -> Path:
    return atomic_write_bytes(path, text_document(text, recipe).encode("utf-8"), new=new)


def read_text_body(path: Path) -> str:
    """A saved text's body: the page as it was (prompt and generated text), without the front matter."""
    content = Path(path).read_text(encoding="utf-8")
    match = re.match(r"---\nstudio_recipe: .*\n---\n\n?", content)
    body = content[match.end():] if match else content
    return body[:-1] if body.endswith("\n") else body


def read_text_recipe(path: Path) -> Recipe:
    content = Path(path).read_text(encoding="utf-8")
    match = re.match(r"---\nstudio_recipe: (.*)\n---\n", content)
    if not match:
        raise RecipeError(f"{Path(path).name} has no studio_recipe front matter")
    return Recipe.from_json(match.group(1))


# --- animations ---------------------------------------------------------------------------


def write_gif(frames: list, path: Path, recipe: Recipe, fps: float = 12.0, loop: bool = True, new: bool = False) -> Path:
    def write(handle):
        frames[0].save(
            handle,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=max(20, round(1000 / fps)),  # browsers slow frames under 20 ms down to 100 ms
            loop=0 if loop else 1,
            comment=recipe.to_json().encode("utf-8"),
        )

    return atomic_write(path, write, new=new)


MP4_CODECS = ("libx264", "h264", "mpeg4")  # first present wins; PyAV's PyPI wheel has libx264


def mp4_codec() -> str | None:
    """The H.264 (or MPEG-4) encoder PyAV offers here, or None: then walks export as GIF + sheet only."""
    try:
        import av
    except ImportError:
        return None
    return next((name for name in MP4_CODECS if name in av.codecs_available), None)


def write_mp4(frames: list, path: Path, recipe: Recipe, fps: float = 12.0, new: bool = False) -> Path:
    """MP4 in yuv420p (which every player reads), the recipe in the container's comment tag."""
    import av
    import numpy as np
    from PIL import Image

    codec = mp4_codec()
    if codec is None:
        raise RuntimeError("no MP4 encoder (PyAV with libx264) is installed")
    width, height = frames[0].size
    even = (width + width % 2, height + height % 2)  # yuv420p needs even sides: pad, never stretch

    def write(handle):
        with av.open(handle, "w", format="mp4") as container:
            container.metadata["comment"] = recipe.to_json()
            stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height = even
            stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                stream.options = {"crf": "18"}  # small emoji frames: keep them sharp
            for frame in frames:
                picture = frame.convert("RGB")
                if picture.size != even:
                    padded = Image.new("RGB", even, "white")
                    padded.paste(picture, (0, 0))
                    picture = padded
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(picture), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)

    return atomic_write(path, write, new=new)


def read_mp4_recipe(path: Path) -> Recipe:
    import av

    with av.open(str(path)) as container:
        comment = container.metadata.get("comment")
    if not comment:
        raise RecipeError(f"{Path(path).name} holds no Latent Studio recipe")
    return Recipe.from_json(comment)


def write_sheet(frames: list, path: Path, recipe: Recipe, cols: int | None = None, new: bool = False) -> Path:
    from PIL import Image

    cols = cols or len(frames)
    rows = -(-len(frames) // cols)
    width, height = frames[0].size
    sheet = Image.new("RGB", (cols * width, rows * height), "white")
    for index, frame in enumerate(frames):
        sheet.paste(frame, ((index % cols) * width, (index // cols) * height))
    return write_png(sheet, path, recipe, new=new)


# --- dispatch -----------------------------------------------------------------------------


def write_artifact(artifact, folder: Path, stem: str) -> tuple[list[Path], bytes | None, str]:
    """Write one artifact's files with its kind's writer (studio/media.py). Returns (files, thumbnail PNG, summary)."""
    output = media.outputs().get(artifact.modality)
    if output is None:
        raise ValueError(f"no writer for modality {artifact.modality!r}")
    folder.mkdir(parents=True, exist_ok=True)  # the music writers open their own temp files in it
    return media.load(output.writer)(artifact, folder, stem)


@contextmanager
def _removed_on_error(written: list[Path]):
    """One output is all its files or none: when a later file fails, the ones already written go too."""
    try:
        yield
    except BaseException:
        for path in written:
            Path(path).unlink(missing_ok=True)
        raise


def write_image_files(artifact, folder: Path, stem: str) -> tuple[list[Path], bytes | None, str]:
    extra = (getattr(artifact, "info", None) or {}).get("png_text")  # a ComfyUI job's workflow
    path = write_png(artifact.payload, unique_path(folder, stem, ".png"), artifact.recipe, new=True, extra_text=extra)
    return [path], thumbnail_png(artifact.payload), artifact.recipe.prompt


def write_text_files(artifact, folder: Path, stem: str) -> tuple[list[Path], bytes | None, str]:
    path = write_text(artifact.payload, unique_path(folder, stem, ".md"), artifact.recipe, new=True)
    return [path], None, artifact.payload.strip()[:300]


def write_animation_files(artifact, folder: Path, stem: str) -> tuple[list[Path], bytes | None, str]:
    """A GIF, a contact sheet and, when PyAV has an encoder, an MP4."""
    frames, recipe = artifact.payload, artifact.recipe
    fps = float((getattr(artifact, "info", None) or {}).get("fps") or 12.0)
    gif = write_gif(frames, unique_path(folder, stem, ".gif"), recipe, fps=fps, new=True)
    with _removed_on_error([gif]):
        sheet = write_sheet(frames, gif.with_name(gif.stem + "-sheet.png"), recipe, new=True)
    files = [gif, sheet]
    if mp4_codec() is not None:
        try:
            files.append(write_mp4(frames, gif.with_suffix(".mp4"), recipe, fps=fps, new=True))
        except Exception:  # an encoder that fails must not cost the GIF and sheet already written
            log.warning("MP4 export failed; GIF and sheet kept", exc_info=True)
    return files, thumbnail_png(frames[len(frames) // 2]), recipe.prompt


def write_music_files(artifact, folder: Path, stem: str) -> tuple[list[Path], bytes | None, str]:
    # The music module owns MIDI and the synth; imported here, lazily, so export stays light.
    from studio.engine.music import midi as music
    from studio.engine.music import synth

    piece, recipe = artifact.payload, artifact.recipe
    notice = licence_notice(recipe.model)  # non-commercial models say so in the files themselves
    midi = music.write_midi(piece, unique_path(folder, stem, ".mid"), recipe.to_json(), new=True, copyright=notice)
    heard = piece
    if recipe.param("operation") == "latent.melody_interpolate":
        # A melody strip's steps are voices only to colour them apart; heard, it is one centred melody (as the
        # Latent Explorer plays it), not steps hopping between the speakers.
        heard = dataclasses.replace(piece, notes=[dataclasses.replace(n, voice=0) for n in piece.notes])
    with _removed_on_error([midi]):  # a full disk at the WAV: no .mid left visible without its row
        audio = synth.render_piece(heard, synth.SAMPLE_RATE, timbre=recipe.param("instrument") or "piano")
        wav = synth.write_audio(audio, synth.SAMPLE_RATE, midi.with_suffix(".wav"), recipe.to_json(), new=True,
                                copyright=notice)
    return [midi, Path(wav)], piano_roll_png(piece.notes), recipe.prompt


def write_audio_files(artifact, folder: Path, stem: str) -> tuple[list[Path], bytes | None, str]:
    """Sampled audio (MusicGen, a ComfyUI server): payload (samples [n] or [n, channels], rate) -> WAV, or FLAC when
    the artifact asks (info["audio_format"]), with the recipe inside."""
    from studio.engine.music import synth

    (samples, rate), recipe = artifact.payload, artifact.recipe
    suffix = ".flac" if (getattr(artifact, "info", None) or {}).get("audio_format") == "flac" else ".wav"
    wav = synth.write_audio(samples, int(rate), unique_path(folder, stem, suffix), recipe.to_json(), new=True,
                            copyright=licence_notice(recipe.model))
    return [Path(wav)], waveform_png(samples), recipe.prompt


WAVE_COLOUR = (122, 165, 216)


def convert_audio(source: Path, target: Path, recipe_json: str | None = None) -> Path:
    """An audio output copied to another format (WAV -> FLAC), with the recipe inside the new file too."""
    import soundfile

    from studio.engine.music import synth

    samples, rate = soundfile.read(str(source), dtype="float32")
    return synth.write_audio(samples, rate, target, recipe_json)


def waveform_png(samples, width: int = 160, height: int = 110) -> bytes:
    """A small picture of the waveform (the peak per pixel column, all channels mixed), for the gallery."""
    import numpy as np
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (27, 29, 35))
    mono = np.asarray(samples, dtype=np.float32)
    mono = np.abs(mono.mean(axis=1) if mono.ndim == 2 else mono)
    if mono.size:
        columns = np.array_split(mono, min(width, mono.size))
        peaks = np.array([c.max() for c in columns])
        peaks = peaks / max(float(peaks.max()), 1e-6)  # quiet output still draws a readable shape
        draw = ImageDraw.Draw(image)
        middle, scale = height / 2, height / 2 - 4
        step = width / len(peaks)
        for i, peak in enumerate(peaks):
            x = i * step
            draw.rectangle([x, middle - peak * scale, x + max(step - 1, 0), middle + peak * scale], fill=WAVE_COLOUR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


VOICE_COLOURS = [(224, 122, 95), (129, 178, 154), (242, 204, 143), (122, 165, 216), (195, 139, 217)]


def piano_roll_png(notes, width: int = 160, height: int = 110) -> bytes:
    """A small piano-roll picture of the notes, one colour per voice, for the gallery."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (27, 29, 35))
    if notes:
        low = min(n.pitch for n in notes) - 1
        high = max(n.pitch for n in notes) + 1
        end = max(n.start + n.duration for n in notes) or 1.0
        row = height / (high - low + 1)
        draw = ImageDraw.Draw(image)
        for note in notes:
            x0 = note.start / end * (width - 4) + 2
            x1 = max(x0 + 1, (note.start + note.duration) / end * (width - 4) + 1)
            y = (high - note.pitch) * row
            draw.rectangle([x0, y, x1, y + max(1.0, row - 1)], fill=VOICE_COLOURS[note.voice % len(VOICE_COLOURS)])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@file_errors
def recipe_from_file(path: Path) -> Recipe:
    """Open any exported file (or a .json recipe) and return its recipe; a file that can't be read, whatever
    its reader raised (mido, soundfile, PyAV, Pillow each have their own errors), is a RecipeError (file_errors)."""
    return _recipe_from_file(Path(path))


def _recipe_from_file(path: Path) -> Recipe:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return Recipe.from_json(path.read_text(encoding="utf-8"))
    reader = media.readers().get(suffix)  # each kind of output names the readers of its files
    if reader is None:
        raise RecipeError(f"{path.name}: no recipe reader for {suffix or 'files without an extension'}")
    return media.load(reader)(path)


def read_image_recipe(path: Path) -> Recipe:
    return read_image_parameters(path).recipe


def read_midi_recipe(path: Path) -> Recipe:
    from studio.engine.music import midi

    return _found(midi.read_recipe_from_midi(path), path)


def read_audio_recipe(path: Path) -> Recipe:
    from studio.engine.music import synth

    return _found(synth.read_recipe_from_audio(path), path)


def read_gif_recipe(path: Path) -> Recipe:
    from PIL import Image

    with Image.open(path) as image:
        comment = image.info.get("comment", b"")
    return Recipe.from_json(comment.decode("utf-8") if isinstance(comment, bytes) else comment)


def _found(recipe: Recipe | None, path: Path) -> Recipe:
    if recipe is None:
        raise RecipeError(f"{path.name} holds no Latent Studio recipe")
    return recipe


def dumps_pretty(recipe: Recipe) -> str:
    return json.dumps(recipe.to_dict(), indent=2, ensure_ascii=False)
