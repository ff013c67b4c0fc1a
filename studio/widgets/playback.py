"""Playing sound on this machine: sounddevice's output stream, in the window's process (sound runs in
sounddevice's own callback thread). No sound card, or no PortAudio, is a clear message, never a crash; export
always works. Rendering notes to samples is the engine's (studio.engine.music.synth); this only plays them.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 44100


class PlaybackUnavailable(Exception):
    """No way to play sound here; the message says why and that exporting still works."""


def _sounddevice():
    try:
        import sounddevice as sd
    except ImportError as exc:
        raise PlaybackUnavailable(
            "Playback is unavailable: the sounddevice package is not installed. You can still export WAV, FLAC and MIDI."
        ) from exc
    except OSError as exc:  # the Python package is there, the PortAudio library is not
        raise PlaybackUnavailable(
            "Playback is unavailable: the PortAudio library is not installed (on Debian/Ubuntu: "
            "sudo apt install libportaudio2). You can still export WAV, FLAC and MIDI."
        ) from exc
    return sd


def play(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, start_seconds: float = 0.0) -> None:
    """Start playing (returns at once; sounddevice plays in its own thread). Raises PlaybackUnavailable."""
    sd = _sounddevice()
    try:
        if not any(d.get("max_output_channels", 0) > 0 for d in sd.query_devices()):
            raise PlaybackUnavailable("Playback is unavailable: no audio output device was found. "
                                      "You can still export WAV, FLAC and MIDI.")
        offset = max(0, int(start_seconds * sample_rate))
        sd.play(np.asarray(samples, dtype=np.float32)[offset:], sample_rate)
    except sd.PortAudioError as exc:
        raise PlaybackUnavailable(f"Playback is unavailable: the audio device refused ({exc}). "
                                  "You can still export WAV, FLAC and MIDI.") from exc


def stop() -> None:
    """Stop playback, if any. Never raises for a missing device."""
    try:
        sd = _sounddevice()
        sd.stop()
    except Exception:  # noqa: BLE001 - stopping when nothing plays (or nothing can) must never fail
        pass
