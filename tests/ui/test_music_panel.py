"""Music panel alone: a MusicGen model hides what it cannot use, shows guidance + duration, plays its audio."""

import json

import numpy as np

from studio.core.jobs import Artifact
from studio.core.recipe import Recipe
from studio.panels.music import MusicPanel, export_music_file
from studio.state import State


def musicgen_folder(tmp_path):
    folder = tmp_path / "my-musicgen"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "musicgen", "architectures": ["MusicgenForConditionalGeneration"]}))
    return folder


def shown(panel, widgets) -> list[bool]:
    return [not w.isHidden() for w in widgets]


def test_picking_musicgen_swaps_the_controls_and_back(qtbot, tmp_path):
    state = State()
    panel = MusicPanel(state)
    qtbot.addWidget(panel)
    notes_only = panel.notes_only + [panel.roll, panel.continue_button]
    audio_only = [panel.guidance, panel.duration, panel.top_k_audio, panel.wave]
    assert not panel.makes_audio and all(shown(panel, notes_only)) and not any(shown(panel, audio_only))

    state.music.set("model", str(musicgen_folder(tmp_path)))
    assert panel.makes_audio and not any(shown(panel, notes_only)) and all(shown(panel, audio_only))
    assert "MusicGen" in panel.understood.text()

    state.music.set("model", "builtin:music-gpt")
    assert not panel.makes_audio and all(shown(panel, notes_only)) and not any(shown(panel, audio_only))


def test_a_restored_musicgen_recipe_fills_guidance_and_duration(qtbot, tmp_path):
    state = State()
    panel = MusicPanel(state)
    qtbot.addWidget(panel)
    state.restore(Recipe("music", prompt="calm piano", model=str(musicgen_folder(tmp_path)), seed=3,
                         params={"guidance": 4.5, "duration": 12.0, "top_k": 250, "temperature": 1.0, "top_p": 1.0}))
    assert panel.makes_audio
    assert panel.guidance.box.value() == 4.5 and panel.duration.box.value() == 12
    assert panel.top_k_audio.box.value() == 250


def test_an_audio_result_shows_its_waveform_plays_and_exports(qtbot, tmp_path, monkeypatch):
    from studio.engine.music import synth

    state = State()
    panel = MusicPanel(state)
    qtbot.addWidget(panel)
    state.music.set("model", str(musicgen_folder(tmp_path)))
    rate = 3200
    samples = np.sin(np.linspace(0, 200, rate)).astype(np.float32) * 0.5
    recipe = Recipe("music", prompt="calm piano", model="x", seed=1, params={"duration": 1.0})
    wav = synth.write_audio(samples, rate, tmp_path / "out.wav", recipe.to_json())
    artifact = Artifact("audio", recipe, (samples, rate), files=[wav])
    state.output_added.emit(artifact)
    assert panel.current is artifact and not panel.wave.pixmap().isNull()

    played = []
    monkeypatch.setattr(panel.player, "play", lambda s, r, *a: played.append((s, r)) or True)
    panel.toggle_play()
    assert played and played[0][0] is samples and played[0][1] == rate

    exported = export_music_file(artifact, tmp_path / "mine.mid")  # no MIDI behind audio: a WAV instead
    assert exported.suffix == ".wav" and synth.read_recipe_from_audio(exported) == recipe
    flac = export_music_file(artifact, tmp_path / "mine.flac")
    assert synth.read_recipe_from_audio(flac) == recipe


def test_export_reads_a_dot_in_the_name_as_part_of_the_name(qtbot, tmp_path):
    from studio.engine.music.midi import read_recipe_from_midi

    recipe = Recipe("music", prompt="reel", model="builtin:music-markov", seed=2, params={"bars": 2})
    midi = tmp_path / "saved.mid"
    import mido

    track = mido.MidiTrack([mido.MetaMessage("text", text=recipe.to_json())])
    mido.MidiFile(tracks=[track]).save(midi)
    artifact = Artifact("music", recipe, None, files=[midi])
    exported = export_music_file(artifact, tmp_path / "Reel v1.2", "MIDI (*.mid)")
    assert exported.name == "Reel v1.2.mid" and read_recipe_from_midi(exported) == recipe


def test_a_melody_strip_saved_in_the_latent_explorer_does_not_replace_the_music_panels_piece(qtbot, tmp_path):
    state = State()
    panel = MusicPanel(state)
    qtbot.addWidget(panel)
    piece = Artifact("music", Recipe("music", prompt="jig", seed=1), None, files=[tmp_path / "jig.mid"])
    state.output_added.emit(piece)
    strip = Artifact("music", Recipe("music", seed=0, params={"operation": "latent.melody_interpolate"}), None,
                     files=[tmp_path / "strip.mid"])
    state.output_added.emit(strip)
    assert panel.current is piece


def test_a_clicked_note_does_not_take_over_the_compose_bar(qtbot):
    from studio.core.jobs import Job, JobEvent
    from studio.state import JobInfo

    state = State()
    panel = MusicPanel(state)
    qtbot.addWidget(panel)
    compose = Job("music.generate", recipe=Recipe("music", prompt="jig", seed=1))
    state.job_changed.emit(JobInfo(compose, JobEvent.QUEUED))
    note = Job("music.note", args={"pitch": 60}, save=False)
    state.job_changed.emit(JobInfo(note, JobEvent.QUEUED))
    state.job_changed.emit(JobInfo(note, JobEvent.FINISHED))
    assert panel.bar.current_job_id == compose.id and panel.bar.cancel.isEnabled()


def test_continue_offers_a_midi_file_even_with_a_piece_on_the_roll(qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    state = State()
    panel = MusicPanel(state)
    qtbot.addWidget(panel)
    state.music.set("model", "builtin:music-markov")
    state.output_added.emit(Artifact("music", Recipe("music", prompt="jig", seed=1), None, files=[tmp_path / "jig.mid"]))
    submitted = []
    state.submit_requested.connect(submitted.append)
    chosen = tmp_path / "theirs.mid"
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(chosen), "MIDI (*.mid *.midi)"))
    actions = {a.text(): a for a in panel.continue_button.menu().actions()}
    actions["Continue a MIDI file…"].trigger()
    actions["Continue this piece"].trigger()
    assert [job.recipe.param("continue_from") for job in submitted] == [str(chosen), str(tmp_path / "jig.mid")]


def test_compose_after_restoring_a_continuation_makes_it_again_then_composes_fresh(qtbot, tmp_path):
    import mido

    state = State()
    source = tmp_path / "theirs.mid"
    mido.MidiFile(tracks=[mido.MidiTrack()]).save(source)
    state.restore(Recipe("music", prompt="jig", model="builtin:music-markov", seed=4,
                         params={"bars": 2, "continue_from": str(source)}))
    panel = MusicPanel(state)  # built after the restore, as when the gallery opens the Music panel
    qtbot.addWidget(panel)
    assert "theirs.mid" in panel.message.text()
    submitted = []
    state.submit_requested.connect(submitted.append)
    panel.generate()
    panel.generate()
    assert [job.recipe.param("continue_from") for job in submitted] == [str(source), ""]


def test_continue_itself_does_not_announce_a_restored_continuation(qtbot, tmp_path, monkeypatch):
    state = State()
    panel = MusicPanel(state)
    qtbot.addWidget(panel)
    state.music.set("model", "builtin:music-markov")
    panel.continue_from(tmp_path / "mine.mid")
    assert "restored" not in panel.message.text()


def test_the_understood_line_is_said_for_every_piece_and_names_what_was_ignored(qtbot):
    from types import SimpleNamespace

    state = State()
    panel = MusicPanel(state)
    qtbot.addWidget(panel)

    def piece(prompt, understood, ignored):
        artifact = Artifact("music", Recipe("music", prompt=prompt), SimpleNamespace(notes=[], beats_per_bar=4),
                            info={"understood": understood, "ignored": ignored})
        state.output_added.emit(artifact)
        return panel.understood.text()

    first = piece("jig in A minor please", ["style jig", "key A minor"], ["please"])
    assert "understood style jig, key A minor" in first and "ignored: please" in first
    second = piece("purple elephants", [], ["purple", "elephants"])
    assert "Nothing in “purple elephants” was understood" in second and "purple, elephants" in second
    assert "A minor" not in second  # the first piece's line is gone
