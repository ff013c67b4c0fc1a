"""Small things from an artist's first hour: the welcome's tick box, the unlocked seed box, job titles, melody
source labels, and non-commercial models named in the exported music files."""

from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from studio.core.jobs import Artifact, Job, JobEvent
from studio.core.recipe import Recipe
from studio.state import JobInfo, State
from studio.widgets.controls import SeedBox
from studio.widgets.welcome import WelcomeDialog


def test_dont_show_again_is_not_ticked_by_default(qtbot, tmp_path):
    QApplication.setOrganizationName("LatentStudioTests")
    QApplication.setApplicationName(f"test-{tmp_path.name}")
    QSettings().clear()
    dialog = WelcomeDialog(str(tmp_path))
    qtbot.addWidget(dialog)
    assert not dialog.dont_show.isChecked()


def test_an_unlocked_seed_box_shows_random_not_a_greyed_zero(qtbot):
    state = State()
    box = SeedBox(state.image)
    qtbot.addWidget(box)
    assert not box.lock.isChecked()
    assert box.spin.lineEdit().text() == ""
    assert box.spin.lineEdit().placeholderText() == "random"
    box.show_last_seed(1234)  # after a generation the seed it used is shown
    assert box.spin.lineEdit().text() == "1234"


def test_a_continue_midi_job_has_a_real_title():
    recipe = Recipe("music", params={"continue_from": "/home/a/outputs/2026-11-25/folk tune.mid"})
    title = JobInfo(Job("music.generate", recipe=recipe), JobEvent.QUEUED).title
    assert title == "music: continue folk tune.mid"
    assert "music.generate" not in JobInfo(Job("music.generate", recipe=Recipe("music")), JobEvent.QUEUED).title


def test_melody_sources_have_distinct_labels():
    from studio.panels.latent import _distinct_labels

    items = [("Random melody (seed below)", "seed"), ("Gallery: a jig", "/o/2026-11-25/seed-1.mid"),
             ("Gallery: a jig", "/o/2026-11-25/seed-2.mid"), ("Gallery: a reel", "/o/r.mid")]
    labels = [label for label, _value in _distinct_labels(items)]
    assert len(set(labels)) == len(labels)
    assert labels[3] == "Gallery: a reel" and labels[1].endswith("seed-1")


def _music(model: str, tmp_path: Path) -> list[Path]:
    from studio.engine.music.piece import MusicPiece, Note
    from studio.library.export import write_music_files

    piece = MusicPiece(notes=[Note(60, 0, 1), Note(64, 1, 1), Note(67, 2, 2)])
    files, _thumb, _prompt = write_music_files(Artifact("music", Recipe("music", "a jig", model=model), piece),
                                               tmp_path, "piece")
    return files


def test_music_from_a_non_commercial_model_says_so_in_its_files(tmp_path):
    import mido
    import soundfile

    midi, wav = _music("builtin:music-gpt", tmp_path)
    copyright = [m.text for m in mido.MidiFile(str(midi)).tracks[0] if m.type == "copyright"]
    assert copyright and "NON-COMMERCIAL" in copyright[0] and "Music GPT" in copyright[0]
    with soundfile.SoundFile(str(wav)) as handle:
        assert "NON-COMMERCIAL" in handle.copyright


def test_music_from_other_models_carries_no_licence_line(tmp_path):
    import mido

    midi, _wav = _music("some/other-model", tmp_path)
    assert not [m for m in mido.MidiFile(str(midi)).tracks[0] if m.type == "copyright"]
