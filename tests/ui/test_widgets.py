"""Small widgets: the piano roll's geometry and clicks, gallery tiles, slider special values."""

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QPixmap

from studio.panels.gallery import ICON_SIZE, tile
from studio.widgets.piano_roll import GUTTER, PianoRoll


def test_clicking_a_note_emits_its_pitch_and_the_keyboard_gutter_does_not(qtbot):
    roll = PianoRoll()
    qtbot.addWidget(roll)
    roll.resize(600, 300)
    roll.set_notes([(60, 0.0, 1.0, 80, 0), (67, 2.0, 1.0, 80, 1)], beats_per_bar=3)
    roll.show()
    centre = roll._note_rect(roll.notes[1], *roll._pitch_range()).center().toPoint()
    assert centre.x() > GUTTER
    with qtbot.waitSignal(roll.note_clicked) as blocker:
        qtbot.mouseClick(roll, Qt.MouseButton.LeftButton, pos=centre)
    assert blocker.args == [67]
    heard = []
    roll.note_clicked.connect(heard.append)
    qtbot.mouseClick(roll, Qt.MouseButton.LeftButton, pos=QPoint(GUTTER // 2, centre.y()))
    assert heard == [], "a click on the keyboard gutter is not a note"


def test_notes_start_right_of_the_keyboard(qtbot):
    roll = PianoRoll()
    qtbot.addWidget(roll)
    roll.resize(400, 200)
    roll.set_notes([(60, 0.0, 1.0, 80, 0)])
    rect = roll._note_rect(roll.notes[0], *roll._pitch_range())
    assert rect.left() == GUTTER and rect.width() == roll.pixels_per_beat - 1


def test_every_bar_line_is_drawn_in_a_metre_whose_bar_is_not_whole_beats(qtbot):
    roll = PianoRoll()
    qtbot.addWidget(roll)
    roll.resize(600, 200)
    roll.set_notes([(60, 0.0, 0.5, 80, 0), (62, 6.0, 0.5, 80, 0)], beats_per_bar=1.5)  # 3/8
    bars = roll.visible_bars()
    assert [number for number, _ in bars[:5]] == [1, 2, 3, 4, 5]
    assert [start for _, start in bars[:5]] == [0.0, 1.5, 3.0, 4.5, 6.0]


def test_gallery_tiles_are_one_size_whatever_the_thumbnail(qtbot):
    for width, height in ((64, 64), (160, 110), (300, 40)):
        source = QPixmap(width, height)
        source.fill(Qt.GlobalColor.red)
        assert tile(source).size().width() == ICON_SIZE and tile(source).size().height() == ICON_SIZE
    small = tile(QPixmap(64, 64))
    assert small.width() == ICON_SIZE


def test_slider_shows_what_its_minimum_means(qtbot):
    from studio.state import PanelState
    from studio.widgets.controls import ParamSlider

    values = PanelState("text", {"top_k": 0})
    slider = ParamSlider(values, "top_k", "Top-k", 0, 200, special="off")
    qtbot.addWidget(slider)
    assert slider.box.text() == "off"
    values.set("top_k", 40)
    assert slider.box.text() == "40"


def test_a_long_piece_is_zoomed_out_to_fit_and_a_short_one_is_not_stretched(qtbot):
    from studio.widgets.piano_roll import DEFAULT_PIXELS_PER_BEAT

    roll = PianoRoll()
    qtbot.addWidget(roll)
    roll.resize(500, 200)
    roll.set_notes([(60, float(beat), 1.0, 80, 0) for beat in range(32)])  # 8 bars of 4/4
    last = roll._note_rect(roll.notes[-1], *roll._pitch_range())
    assert last.right() <= roll.width()
    roll.set_notes([(60, 0.0, 1.0, 80, 0)])
    assert roll.pixels_per_beat == DEFAULT_PIXELS_PER_BEAT


def test_model_picker_offers_builtins_then_hub_models_and_remembers_what_was_added(qtbot):
    from PySide6.QtCore import QCoreApplication

    from studio.state import PanelState
    from studio.widgets.model_picker import ModelPicker

    QCoreApplication.setOrganizationName("LatentStudioTests")  # recent models live in QSettings
    values = PanelState("music", {"model": "builtin:music-gpt"})
    picker = ModelPicker(values)
    qtbot.addWidget(picker)
    refs = [picker.combo.itemData(i) for i in range(picker.combo.count())]
    assert refs.index("builtin:music-gpt") < refs.index("facebook/musicgen-small")
    assert picker.combo.currentData() == "builtin:music-gpt"
    picker.combo.setCurrentIndex(refs.index("facebook/musicgen-small"))
    assert values.get("model") == "facebook/musicgen-small"
    picker.use("someone/my-musicgen")
    assert values.get("model") == "someone/my-musicgen" and picker.combo.currentData() == "someone/my-musicgen"
    assert picker.recent()[0] == "someone/my-musicgen"
    picker.remember("builtin:music-gpt")  # leave the shared settings tidy for the other tests


def test_jobs_list_titles_say_what_a_prompt_less_job_does():
    from studio.core.jobs import Job, JobEvent
    from studio.core.recipe import Recipe
    from studio.core.tasks import TASKS
    from studio.state import JOB_TITLES, JobInfo

    assert JobInfo(Job("latent.melody_interpolate"), JobEvent.QUEUED).title == "latent: melody interpolation"
    prompted = Job("image.generate", recipe=Recipe("image", prompt="a red heart"))
    assert JobInfo(prompted, JobEvent.QUEUED).title == "image: a red heart"
    assert set(JOB_TITLES) <= set(TASKS)  # no title for a task that no longer exists
    page = Job("text.generate", recipe=Recipe("text", prompt="Dear diary,\n\n  today the   cat " + "x" * 60))
    title = JobInfo(page, JobEvent.QUEUED).title
    assert "\n" not in title and title.startswith("text: Dear diary, today the cat") and title.endswith("…")
    assert len(title) == len("text: ") + 40


def test_a_second_player_takes_the_one_sound_stream_and_the_first_lets_go(qtbot, monkeypatch):
    import numpy as np

    from studio.widgets import playback
    from studio.widgets.audio_player import AudioPlayer

    calls = []
    monkeypatch.setattr(playback, "play", lambda samples, rate: calls.append("play"))
    monkeypatch.setattr(playback, "stop", lambda: calls.append("stop"))
    music, melodies = AudioPlayer(), AudioPlayer()
    states = []
    music.playing_changed.connect(states.append)
    music.play(np.zeros(44100, np.float32), 44100)
    melodies.play(np.zeros(44100, np.float32), 44100)
    assert states == [True, False] and not music.playing and melodies.playing
    music.stop()  # already let go: must not stop the stream the melodies now own
    assert calls == ["play", "play"]
    melodies.stop()
    assert calls[-1] == "stop" and not melodies.playing


def test_a_slider_survives_values_it_cannot_show(qtbot):
    from studio.state import PanelState
    from studio.widgets.controls import ParamSlider

    values = PanelState("image", {"variation_seed": 0})
    slider = ParamSlider(values, "variation_seed", "Variation seed", 0, 2**31 - 1)
    qtbot.addWidget(slider)
    values.set("variation_seed", 3_000_000_000)  # A1111 draws variation seeds up to 2**32 - 1
    assert values.get("variation_seed") == 3_000_000_000 and slider.box.value() == 2**31 - 1
    values.set("variation_seed", "x")  # a hand-edited recipe
    slider.box.setValue(1234)  # and the control still works
    assert values.get("variation_seed") == 1234 and slider.slider.value() == 1234


def test_after_a_random_seed_generation_the_seed_box_shows_it_and_lock_keeps_it(qtbot):
    from studio.state import RANDOM_SEED, State
    from studio.widgets.controls import SeedBox

    state = State()
    state.text.update({"model": "builtin:text-markov", "seed": RANDOM_SEED})
    box = SeedBox(state.text)
    qtbot.addWidget(box)
    job = state.generate("text")
    assert box.spin.value() == job.recipe.seed and not box.lock.isChecked()
    box.lock.setChecked(True)
    assert state.text.get("seed") == job.recipe.seed


def test_the_gallery_pages_through_older_outputs(qtbot, tmp_path, monkeypatch):
    from studio.core.jobs import Artifact
    from studio.core.recipe import Recipe
    from studio.library.history import History
    from studio.panels import gallery
    from studio.state import State

    monkeypatch.setattr(gallery, "GALLERY_LIMIT", 3)
    history = History(tmp_path / "h.sqlite3", tmp_path / "out")
    for index in range(5):
        history.save_artifact(Artifact("text", Recipe("text", prompt=f"note {index}"), "x"))
    panel = gallery.GalleryPanel(State(), history)
    qtbot.addWidget(panel)
    assert panel.grid.count() == 3 and not panel.older.isHidden() and "newest 3" in panel.count.text()
    panel.older.click()
    assert panel.grid.count() == 5 and panel.older.isHidden()
    panel.search.setText("note")  # a new query starts from the newest page again
    assert panel.grid.count() == 3
