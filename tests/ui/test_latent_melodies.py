"""The Latent Explorer's Melodies tab with a real worker and a tiny random melody VAE."""

import pytest

from studio.engine.music.midi import write_midi
from studio.engine.music.piece import MusicPiece, Note
from studio.panels.latent import LatentPanel
from studio.widgets import playback
from tests.engine.test_melody_vae import a_tune, build_tiny_melody_vae


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_melody_vae(tmp_path_factory.mktemp("models") / "tiny-melody-vae")


@pytest.fixture
def panel(qtbot, tmp_path, tiny_model, live_state):
    state = live_state
    widget = LatentPanel(state)
    qtbot.addWidget(widget)
    state.panels["latent"].update({"melody_model": str(tiny_model), "melody_steps": 5})
    yield widget


def test_interpolating_two_seeded_melodies_shows_every_step_on_the_roll(qtbot, panel):
    panel.tabs.setCurrentIndex(1)
    with qtbot.waitSignal(panel.state.result_ready, timeout=60000) as blocker:
        panel.interpolate_melodies()
    value = blocker.args[1].value
    assert len(value.melodies) == 5
    assert len(panel.melody_roll.notes) == len(value.sequence.notes) > 0
    assert {voice for *_rest, voice in panel.melody_roll.notes} <= {0, 1}  # steps alternate colours
    assert panel.melody_play.isEnabled()
    assert "5 melodies" in panel.melody_message.text()


def test_saving_writes_the_strip_to_the_gallery_with_its_recipe(qtbot, panel):
    from studio.engine.music.midi import read_recipe_from_midi

    with qtbot.waitSignal(panel.state.result_ready, timeout=60000) as blocker:
        panel.interpolate_melodies(save=True)
    artifact = blocker.args[1].artifacts[0]
    assert [f.suffix for f in artifact.files] == [".mid", ".wav"]
    recipe = read_recipe_from_midi(artifact.files[0])
    assert recipe.param("steps") == 5 and recipe.param("a") == {"seed": 1}
    assert "Saved to the gallery" in panel.melody_message.text()


def test_a_gallery_piece_can_be_an_end_and_no_sound_card_gives_a_clear_message(qtbot, panel, tmp_path, monkeypatch):
    midi = write_midi(MusicPiece([Note(n.pitch, n.start, n.duration) for n in a_tune()]), tmp_path / "tune.mid")
    panel.values.update({"melody_a": str(midi), "melody_steps": 3})
    with qtbot.waitSignal(panel.state.result_ready, timeout=60000) as blocker:
        panel.interpolate_melodies()
    assert len(blocker.args[1].value.melodies) == 3

    def no_device(*_args, **_kwargs):
        raise playback.PlaybackUnavailable("No audio output device was found.")

    monkeypatch.setattr(playback, "play", no_device)
    panel.toggle_melody_play()
    assert not panel.melody_player.playing
    assert "No audio output device" in panel.melody_message.text()


def test_a_missing_model_is_reported_in_the_tab(qtbot, panel, tmp_path):
    panel.values.set("melody_model", str(tmp_path / "nowhere"))
    with qtbot.waitSignal(panel.state.error_raised, timeout=60000):
        panel.interpolate_melodies()
    assert "not found" in panel.melody_message.text() or "nowhere" in panel.melody_message.text()


def test_a_saved_strip_restores_into_the_melodies_tab_not_the_music_panel(qtbot, panel):
    from studio.engine.music.midi import read_recipe_from_midi

    panel.values.update({"melody_seed_a": 11, "melody_seed_b": 22, "melody_steps": 4, "melody_mode": "lerp"})
    with qtbot.waitSignal(panel.state.result_ready, timeout=60000) as blocker:
        panel.interpolate_melodies(save=True)
    recipe = read_recipe_from_midi(blocker.args[1].artifacts[0].files[0])
    panel.values.update({"melody_seed_a": 1, "melody_seed_b": 2, "melody_steps": 9, "melody_mode": "slerp"})
    panel.tabs.setCurrentIndex(0)
    music_prompt = panel.state.music.get("prompt")
    with qtbot.waitSignal(panel.state.restore_requested) as restored:
        panel.state.restore(recipe)
    assert restored.args == ["latent"] and panel.tabs.currentIndex() == 1
    assert [panel.values.get(k) for k in ("melody_seed_a", "melody_seed_b", "melody_steps", "melody_mode")] == [11, 22, 4, "lerp"]
    assert panel.state.music.get("prompt") == music_prompt  # the Music panel is left alone
