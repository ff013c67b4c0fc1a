"""Restoring an output (Gallery double-click, File › Open, `python -m studio FILE`) shows the output itself: the
picture, the whole text, the piece's notes on the roll — not only the settings that made it."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from studio.core.jobs import Artifact
from studio.core.recipe import Recipe
from studio.library.export import write_image_files, write_music_files, write_text_files
from studio.state import State


def test_a_restored_picture_is_shown(qtbot, tmp_path):
    from studio.panels.image import ImagePanel

    state = State()
    panel = ImagePanel(state)
    qtbot.addWidget(panel)
    recipe = Recipe("image", prompt="red heart", seed=5, params={"width": 64, "height": 64})
    files, _, _ = write_image_files(Artifact("image", recipe, Image.new("RGB", (64, 64), (200, 0, 0))), tmp_path, "a")
    assert panel.view.pixmap() is None
    state.restore_output(recipe, files)
    assert panel.view.pixmap() is not None and panel.view.pixmap().width() == 64
    assert state.image.get("seed") == 5


def test_a_restored_text_brings_back_the_whole_page(qtbot, tmp_path):
    from studio.panels.text import TextPanel

    state = State()
    panel = TextPanel(state)
    qtbot.addWidget(panel)
    recipe = Recipe("text", prompt="The cat", seed=3, params={"mode": "completion"})
    files, _, _ = write_text_files(Artifact("text", recipe, " sat on the mat."), tmp_path, "t")
    state.restore_output(recipe, files)
    assert panel.page.toPlainText() == "The cat sat on the mat."
    assert state.text.get("prompt") == "The cat sat on the mat."


def test_a_restored_piece_shows_its_notes_on_the_roll(qtbot, tmp_path, live_state):
    from studio.engine.music.piece import MusicPiece, Note
    from studio.panels.music import MusicPanel

    panel = MusicPanel(live_state)
    qtbot.addWidget(panel)
    piece = MusicPiece([Note(60, 0.0, 1.0, 90, 0), Note(64, 1.0, 1.0, 90, 0), Note(67, 2.0, 2.0, 90, 0)], 100.0)
    recipe = Recipe("music", prompt="a chord", seed=1)
    files, _, _ = write_music_files(Artifact("music", recipe, piece), tmp_path, "m")
    assert any(Path(f).suffix == ".mid" for f in files)
    with qtbot.waitSignal(live_state.result_ready, timeout=30000):
        live_state.restore_output(recipe, files)
    assert [fields[0] for fields in panel.roll.notes] == [60, 64, 67]
