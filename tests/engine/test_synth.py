"""Synth, audio files with recipes, and playback without a sound card."""

from __future__ import annotations

import importlib.abc
import sys
import types

import numpy as np
import pytest

from studio.core.recipe import Recipe
from studio.engine.music import synth
from studio.engine.music.piece import MusicPiece, Note
from studio.widgets import playback

SR = 44100


def chord_piece() -> MusicPiece:
    notes = [Note(60, 0, 1, 90, 0), Note(64, 1, 1, 70, 1), Note(67, 2, 2, 110, 2), Note(48, 0, 4, 60, 3)]
    return MusicPiece(notes, tempo_bpm=120, key="C major", metre="4/4", programs=[0, 0, 0, 0])


@pytest.mark.parametrize("timbre", synth.TIMBRES)
def test_render_length_matches_the_notes_span_and_stays_in_range(timbre):
    piece = chord_piece()  # 4 beats at 120 bpm = 2 s
    audio = synth.render_piece(piece, SR, timbre=timbre)
    assert audio.dtype == np.float32 and audio.shape[1] == 2
    assert len(audio) == pytest.approx((2.0 + synth.TAIL_SECONDS) * SR, abs=2)
    assert np.isfinite(audio).all()
    assert np.abs(audio).max() == pytest.approx(synth.PEAK, abs=1e-3)  # normalised, never clipping
    assert abs(audio[0]).max() < 1e-3 and abs(audio[-1]).max() < 1e-3  # fades: no click at either end
    # Sound is there while notes play and dies away in the tail.
    assert np.abs(audio[: SR // 2]).max() > 0.1


@pytest.mark.parametrize("timbre", synth.TIMBRES)
def test_a4_has_its_energy_at_440_hz(timbre):
    audio = synth.render_piece(MusicPiece([Note(69, 0, 2)], tempo_bpm=120), SR, timbre=timbre, stereo=False)
    spectrum = np.abs(np.fft.rfft(audio[:, 0]))
    freqs = np.fft.rfftfreq(len(audio), 1 / SR)
    assert freqs[np.argmax(spectrum)] == pytest.approx(440.0, abs=2.0)


def test_voices_are_panned_apart():
    piece = MusicPiece([Note(60, 0, 1, 100, 0), Note(72, 0, 1, 100, 1)], tempo_bpm=60)
    left_only = synth.render_piece(MusicPiece([piece.notes[0], Note(72, 0, 1, 1, 1)], tempo_bpm=60), SR)
    assert np.abs(left_only[:, 0]).sum() > 1.5 * np.abs(left_only[:, 1]).sum()
    mono = synth.render_piece(piece, SR, stereo=False)
    assert mono.shape[1] == 1


def test_unknown_timbre_is_a_user_error():
    with pytest.raises(synth.UserError):
        synth.render_piece(chord_piece(), SR, timbre="theremin")


def test_rendering_is_fast():
    import time

    notes = [Note(48 + (i * 7) % 30, i * 0.5, 0.5, 80, i % 4) for i in range(400)]
    piece = MusicPiece(notes, tempo_bpm=100)
    started = time.perf_counter()
    synth.render_piece(piece, SR, timbre="piano")
    assert piece.seconds / (time.perf_counter() - started) > 20  # well over real time


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
@pytest.mark.parametrize("prompt", ["lively folk reel in G — é", "x" * 3000])
def test_audio_files_carry_the_recipe(tmp_path, suffix, prompt):
    recipe = Recipe(modality="music", prompt=prompt, model="builtin:music-gpt", seed=7, params={"bars": 4})
    audio = synth.render_piece(chord_piece(), SR)
    path = synth.write_audio(audio, SR, tmp_path / f"out{suffix}", recipe.to_json())
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float32")
    assert rate == SR and data.shape == audio.shape
    assert np.abs(data - audio).max() < 1e-3  # 16-bit
    assert synth.read_recipe_from_audio(path) == recipe


def test_audio_without_recipe_reads_as_none(tmp_path):
    path = synth.write_audio(np.zeros((100, 2), np.float32), SR, tmp_path / "plain.wav")
    assert synth.read_recipe_from_audio(path) is None


def test_playback_here_gives_the_message_or_plays(monkeypatch):
    """On this machine (no sound card) play() must raise PlaybackUnavailable, never anything else."""
    audio = np.zeros((1000, 2), np.float32)
    try:
        playback.play(audio, SR)
    except playback.PlaybackUnavailable as exc:
        assert "export" in str(exc)
    playback.stop()  # never raises


class _RaisingFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return None


def test_playback_without_portaudio_gives_the_message(monkeypatch):
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_RaisingFinder(), *sys.meta_path])
    with pytest.raises(playback.PlaybackUnavailable, match="PortAudio"):
        playback.play(np.zeros((10, 2), np.float32), SR)
    playback.stop()


def test_playback_without_a_device_gives_the_message(monkeypatch):
    class PortAudioError(Exception):
        pass

    fake = types.SimpleNamespace(
        PortAudioError=PortAudioError,
        query_devices=lambda: [{"name": "default", "max_output_channels": 2}],
        play=lambda *a, **k: (_ for _ in ()).throw(PortAudioError("Error querying device -1")),
        stop=lambda: None,
    )
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    with pytest.raises(playback.PlaybackUnavailable, match="device"):
        playback.play(np.zeros((10, 2), np.float32), SR)
    fake.query_devices = lambda: []
    with pytest.raises(playback.PlaybackUnavailable, match="no audio output device"):
        playback.play(np.zeros((10, 2), np.float32), SR)


def test_a_saved_melody_strip_is_heard_centred_though_its_steps_are_coloured_as_voices(tmp_path):
    import soundfile

    from studio.core.jobs import Artifact
    from studio.library.export import write_artifact

    steps = [Note(60 + 2 * i, 2.0 * i, 1.5, voice=i % 2) for i in range(4)]  # alternate "voices" = steps
    piece = MusicPiece(steps, tempo_bpm=120, metre="4/4")
    for operation, centred in (("latent.melody_interpolate", True), (None, False)):
        recipe = Recipe("music", seed=0, params={"operation": operation} if operation else {})
        files, _thumb, _text = write_artifact(Artifact("music", recipe, piece), tmp_path, f"strip-{centred}")
        samples, _rate = soundfile.read(str(next(f for f in files if f.suffix == ".wav")))
        assert np.allclose(samples[:, 0], samples[:, 1], atol=1e-3) == centred
