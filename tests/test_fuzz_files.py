"""Fuzzed files through every entry point: each gives a recipe or a clear message, never an exception or a hang.

A seeded generator (fixed seed: the same inputs every run) mutates valid outputs of every kind (PNG, JPEG, WebP,
WAV, FLAC, MIDI, MP4, GIF, Markdown) with bit flips, truncations, chunk duplication and huge declared lengths, and
adds hostile PNGs by hand: zip bombs in zTXt/iTXt, huge text chunks, NaN/inf/huge ints/deep nesting in the recipe
JSON. Each goes through `recipe_from_file`, the Image panel's drop (a QDropEvent with the file's URL) and
File › Open (`MainWindow.load_recipe_file`). The Gallery has no import; `python -m studio FILE` is File › Open.
"""

from __future__ import annotations

import io
import json
import random
import struct
import time
import zlib
from pathlib import Path

import pytest

from studio.core.recipe import Recipe, RecipeError

SEED = 15
MUTANTS_PER_KIND = 22
TIME_LIMIT = 2.0  # seconds per call: more is a hang


def _recipe(modality: str = "image", **params) -> Recipe:
    return Recipe(modality=modality, prompt="a red fox", model="builtin:emoji-ldm", seed=7,
                  params={"steps": 20, "guidance": 5.0, "scheduler": "dpmpp_2m", **params})


def _png_chunk(kind: bytes, data: bytes, length: int | None = None) -> bytes:
    size = len(data) if length is None else length
    return struct.pack(">I", size) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_with(*chunks: bytes) -> bytes:
    """A 1x1 PNG with `chunks` inserted before its IDAT."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    raw = buffer.getvalue()
    at = raw.index(b"IDAT") - 4
    return raw[:at] + b"".join(chunks) + raw[at:]


def _studio_png(text: str) -> bytes:
    return _png_with(_png_chunk(b"tEXt", b"studio\0" + text.encode("latin-1", "replace")))


def seed_files(folder: Path) -> dict[str, bytes]:
    """One valid file of every kind the app reads, written by the app's own writers."""
    from PIL import Image

    from studio.library import export

    picture = Image.new("RGB", (16, 16), (200, 40, 40))
    files = {".png": export.png_bytes(picture, _recipe())}
    for suffix in (".jpg", ".webp"):
        export.write_jpeg_or_webp(picture, folder / f"seed{suffix}", _recipe())
    export.write_gif([picture, picture], folder / "seed.gif", _recipe("latent"))
    export.write_text("once upon", folder / "seed.md", _recipe("text", temperature=0.8))
    from studio.engine.music import midi, synth
    from studio.engine.music.piece import MusicPiece, Note

    piece = MusicPiece(notes=[Note(pitch=60, start=0.0, duration=0.5)])
    midi.write_midi(piece, folder / "seed.mid", _recipe("music").to_json())
    import numpy as np

    samples = np.zeros(800, dtype=np.float32)
    synth.write_audio(samples, 8000, folder / "seed.wav", _recipe("music").to_json())
    synth.write_audio(samples, 8000, folder / "seed.flac", _recipe("music").to_json())
    if export.mp4_codec() is not None:
        export.write_mp4([picture, picture], folder / "seed.mp4", _recipe("latent"))
    for path in folder.glob("seed.*"):
        files[path.suffix] = path.read_bytes()
    return files


def _mutate(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    kind = rng.choice(("flip", "truncate", "duplicate", "length", "splice"))
    if kind == "flip":
        for _ in range(rng.randint(1, 12)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        data = data[: rng.randrange(1, len(data))]
    elif kind == "duplicate":  # a run of bytes (often a chunk) repeated in place
        start = rng.randrange(len(data))
        piece = data[start : start + rng.randint(8, 400)]
        data[start:start] = piece * rng.randint(1, 4)
    elif kind == "length":  # a huge declared length over 4 bytes somewhere in the first kilobyte
        at = rng.randrange(min(len(data) - 4, 1024))
        data[at : at + 4] = rng.choice((b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\xff\xff\xff"))
    else:
        at = rng.randrange(len(data))
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return bytes(data)


def hostile_files() -> dict[str, bytes]:
    """PNGs and recipes made to hurt: bombs, huge chunks, NaN, inf, huge ints, deep nesting, wrong shapes."""
    bomb = zlib.compress(b"\0" * (64 * 1024 * 1024), 9)  # 64 MB of zeros in ~64 KB
    good = json.loads(_recipe().to_json())
    files = {
        "ztxt-bomb.png": _png_with(_png_chunk(b"zTXt", b"studio\0\0" + bomb)),
        "itxt-bomb.png": _png_with(_png_chunk(b"iTXt", b"parameters\0\1\0\0\0" + bomb)),
        "huge-prompt.png": _png_with(_png_chunk(b"tEXt", b"parameters\0" + b"a" * (8 * 1024 * 1024))),
        "huge-length.png": _png_with(_png_chunk(b"tEXt", b"studio\0{}", length=0x7FFFFFFF)),
        "deep.png": _studio_png("[" * 100_000 + "]" * 100_000),
        "deep-params.png": _studio_png(json.dumps({**good, "params": {"x": 1}}).replace(
            '"x": 1', '"x": ' + "[" * 50_000 + "]" * 50_000)),
        "nan-messages.png": _studio_png(json.dumps({**good, "modality": "text", "params": {"messages": float("nan")}})),
        "inf-seed.png": _studio_png(json.dumps({**good, "seed": float("inf")})),
        "nan-seed.png": _studio_png(json.dumps({**good, "seed": float("nan")})),
        "huge-int-seed.png": _studio_png(json.dumps(good).replace('"seed": 7', '"seed": 1' + "0" * 5000)),
        "big-scheduler.png": _studio_png(json.dumps({**good, "params": {"scheduler": 11805916207174113034}})),
        "inf-steps.png": _studio_png(json.dumps({**good, "params": {"steps": float("inf"), "guidance": "x"}})),
        "list-recipe.png": _studio_png("[1, 2, 3]"),
        "params-list.png": _studio_png(json.dumps({**good, "params": [1, 2]})),
        "parents-bad.png": _studio_png(json.dumps({**good, "parents": [None, {"a": 1}]})),
        "parents-number.png": _studio_png(json.dumps({**good, "parents": 5})),
        "width-huge.png": _studio_png(json.dumps({**good, "params": {"width": 10**30, "height": -5}})),
        "a1111-junk.png": _png_with(_png_chunk(b"tEXt", b"parameters\0x\nSteps: 1e999, Seed: nan, Size: 9x")),
        "a1111-json.png": _png_with(_png_chunk(b"tEXt", b"parameters\0" + b"{" * 3000 + b"}" * 3000)),
    }
    for name, params in {"text-nan.md": {"temperature": float("nan"), "messages": [[[[]]]]},
                         "text-types.md": {"top_k": "many", "stop": 5, "max_new_tokens": 1e300}}.items():
        recipe = json.dumps({**good, "modality": "text", "params": params})
        files[name] = f"---\nstudio_recipe: {recipe}\n---\n\nbody\n".encode()
    files["deep.json"] = b"[" * 200_000
    files["bad-utf8.md"] = b"---\nstudio_recipe: \xff\xfe\n---\n"
    return files


@pytest.fixture(scope="module")
def fuzz_inputs(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("fuzz")
    rng = random.Random(SEED)
    inputs = []
    for suffix, data in sorted(seed_files(folder).items()):
        for index in range(MUTANTS_PER_KIND):
            path = folder / f"mutant-{index:02d}{suffix}"
            path.write_bytes(_mutate(data, rng))
            inputs.append(path)
    for name, data in hostile_files().items():
        path = folder / name
        path.write_bytes(data)
        inputs.append(path)
    return inputs


def _timed(call, path: Path) -> float:
    started = time.perf_counter()
    call(path)
    return time.perf_counter() - started


def test_the_fuzz_inputs_are_many_and_the_same_every_run(fuzz_inputs, tmp_path):
    assert len(fuzz_inputs) >= 200
    again = random.Random(SEED)
    data = seed_files(tmp_path)[".png"]
    assert _mutate(data, again) == _mutate(data, random.Random(SEED))


def test_recipe_from_file_gives_a_recipe_or_a_message_naming_the_file(fuzz_inputs):
    from studio.library.export import recipe_from_file

    slow = []
    for path in fuzz_inputs:
        started = time.perf_counter()
        try:
            assert isinstance(recipe_from_file(path), Recipe)
        except RecipeError as exc:
            assert path.name in str(exc) and "\n" not in str(exc).strip(), (path.name, str(exc))
        if time.perf_counter() - started > TIME_LIMIT:
            slow.append(path.name)
    assert not slow


@pytest.fixture(scope="module")
def fuzz_window(tmp_path_factory):
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from studio.app import create_window
    from tests import fakes

    app = QApplication.instance() or QApplication([])
    QApplication.setOrganizationName("LatentStudioTests")
    QApplication.setApplicationName("test-fuzz-files")
    QSettings().clear()
    fakes.register_fakes()
    window = create_window(app, warm_up=False)
    for name in window.tab_names:  # each panel's first build (~1 s for some) is not the file's time
        window.panel(name)
    yield window
    window.worker.stop()
    window.close()
    window.deleteLater()


def _drop(panel, path: Path) -> None:
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    panel.dropEvent(event)


def _entry_points(window):
    image = window.panel("image")
    return {"drop": lambda path: _drop(image, path), "file-open": window.load_recipe_file}


@pytest.mark.parametrize("entry", ["drop", "file-open"])
def test_every_fuzzed_file_through_the_window_gives_a_recipe_or_a_message(fuzz_window, fuzz_inputs, entry,
                                                                          monkeypatch):
    import sys

    raised = []
    monkeypatch.setattr(sys, "excepthook", lambda *info: raised.append(info))  # a slot's exception lands here
    messages = []
    fuzz_window.state.error_raised.connect(lambda _m, text: messages.append(text))
    call = _entry_points(fuzz_window)[entry]
    crashes, hangs = [], []
    for path in fuzz_inputs:
        try:
            if _timed(call, path) > TIME_LIMIT:
                hangs.append(path.name)
        except Exception as exc:  # noqa: BLE001 - what we count
            crashes.append(f"{path.name}: {type(exc).__name__}")
    crashes += [f"{info[1]!r}" for info in raised]
    assert (crashes, hangs) == ([], [])
    assert all("\n" not in m.strip() or "Also in the file" in m for m in messages)


def test_a_poisoned_file_then_a_restart_still_starts_with_the_defaults(fuzz_window, tmp_path):
    """Issue 15 item 10: a NaN for the chat messages, loaded with the Text tab active, then a restart."""
    from studio.app import MainWindow

    window = fuzz_window
    good = json.loads(_recipe("text").to_json())
    path = tmp_path / "poison.json"
    path.write_text(json.dumps({**good, "params": {"messages": float("nan"), "temperature": float("inf")}}))
    window.show_panel("text")
    window.load_recipe_file(path)
    assert window.state.text.get("messages") == []
    assert window.state.text.get("temperature") == 0.8 or window.state.text.get("temperature") == pytest.approx(0.8)
    window.save_settings()
    again = MainWindow(window.state.__class__(), window.history, window.worker)
    again.restore_settings()
    assert again.state.text.get("messages") == []
    again.deleteLater()


def test_a_poisoned_saved_setting_is_dropped_and_the_app_starts(qtbot, tmp_path):
    """Issue 15 item 10: the saved panel settings hold a NaN (and worse): the window starts with the defaults."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from studio.app import create_window
    from tests import fakes

    QApplication.setOrganizationName("LatentStudioTests")
    QApplication.setApplicationName(f"test-{tmp_path.name}")
    settings = QSettings()
    settings.clear()
    settings.setValue("window/tab", 1)  # the Text tab: its panel is built at start-up on the saved values
    settings.setValue("panels/text", '{"messages": NaN, "temperature": Infinity, "top_k": "many", "stop": 5, '
                                     '"mode": 11805916207174113034, "top_p": 0.5}')
    settings.setValue("panels/image", '{"scheduler": 11805916207174113034, "steps": 1e999, "width": -Infinity}')
    settings.setValue("panels/music", "[[[[")
    fakes.register_fakes()
    window = create_window(QApplication.instance(), warm_up=False)
    qtbot.addWidget(window)
    window.panel("image")
    text, image = window.state.text, window.state.image
    assert (text.get("messages"), text.get("temperature"), text.get("top_k"), text.get("mode")) == \
        ([], 0.8, 40, "completion")
    assert text.get("top_p") == 0.5  # the good value is kept
    assert (image.get("scheduler"), image.get("steps"), image.get("width")) == ("dpmpp_2m", 20, 64)
    assert "saved setting" in window.statusBar().currentMessage()
    window.worker.stop()


def test_a_huge_scheduler_number_in_a_combo_raises_nothing(qtbot):
    """Issue 15 item 11: findData raised OverflowError on an int beyond 64 bits."""
    from studio.state import PanelState
    from studio.widgets.controls import bound_combo

    state = PanelState("image", {"scheduler": "euler"})
    combo = bound_combo(state, "scheduler", [("Euler", "euler"), ("DDIM", "ddim")])
    qtbot.addWidget(combo)
    state.set("scheduler", 11805916207174113034)
    state.set("scheduler", float("nan"))
    state.set("scheduler", "ddim")
    assert combo.currentData() == "ddim"


def test_a_recipe_with_out_of_range_values_loads_the_rest_and_says_what_was_left_out(qtbot):
    from studio.state import State

    state = State()
    messages = []
    state.error_raised.connect(lambda _m, text: messages.append(text))
    recipe = Recipe(modality="image", prompt="fox", model="builtin:emoji-ldm", seed=3,
                    params={"scheduler": 11805916207174113034, "steps": float("nan"), "guidance": 6.5})
    state.restore(recipe)
    assert (state.image.get("scheduler"), state.image.get("steps"), state.image.get("guidance")) == \
        ("dpmpp_2m", 20, 6.5)
    assert any("scheduler" in m and "left out" in m for m in messages)


def test_a_png_with_a_30_mb_prompt_is_refused_quickly_with_a_message(tmp_path):
    """Issue 15 item 12: parsed and shown, an 8 MB prompt held the GUI thread ~12 s (30 MB: ~30 s, 1.4 GB)."""
    from studio.library.export import read_image_parameters

    path = tmp_path / "huge.png"
    path.write_bytes(_png_with(_png_chunk(b"tEXt", b"parameters\0" + b"a fox, " * (30 * 2**20 // 7)
                                          + b"\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64")))
    started = time.perf_counter()
    with pytest.raises(RecipeError, match="huge.png: its parameters text is over 1 MB"):
        read_image_parameters(path)
    assert time.perf_counter() - started < 1.5


@pytest.mark.parametrize("name", ["ztxt-bomb.png", "itxt-bomb.png", "deep.png", "inf-seed.png", "huge-int-seed.png",
                                  "list-recipe.png", "parents-bad.png"])
def test_each_hostile_png_is_one_recipe_error_naming_the_file(tmp_path, name):
    """Issue 15 item 9: ValueError, RecursionError, OverflowError… escaped read_image_parameters (the drop)."""
    from studio.library.export import read_image_parameters

    path = tmp_path / name
    path.write_bytes(hostile_files()[name])
    with pytest.raises(RecipeError) as raised:
        read_image_parameters(path)
    assert str(raised.value).startswith(name) and "\n" not in str(raised.value)


def test_a1111_text_that_only_looks_like_json_is_read_as_a_prompt(tmp_path):
    """Wildcards such as {red|blue} start A1111 prompts with "{": text, not broken JSON (and 3,000 braces don't
    recurse)."""
    from studio.library.export import read_image_parameters

    path = tmp_path / "a1111-json.png"
    path.write_bytes(hostile_files()["a1111-json.png"])
    assert read_image_parameters(path).recipe.prompt.startswith("{{{")
