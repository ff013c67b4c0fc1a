"""Note events -> audio: a small numpy synthesizer, audio files that carry the recipe, and playback.

Timbres:
  piano  two wavetables (bright: 10 harmonics, mellow: 2) cross-faded by an exponential decay, so notes
         start bright and darken like a struck string; fast attack, long decay, short release
  organ  drawbar-style harmonics (1, 2, 3, 4, 6, 8) at steady level; soft attack and release
  pluck  Karplus-Strong: a burst of noise recirculating through a delay line and a two-point average

Every note is rendered once per (timbre, pitch, length, velocity) and reused (chorales repeat notes a lot),
mixed into the stereo buffer with a constant-power pan per voice, then the whole piece is normalised to a
peak of 0.89 with short fades at both ends: no clipping, no clicks.
"""

from __future__ import annotations

import io
import json
import math
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np

from studio.core.files import PartialFile
from studio.core.jobs import UserError
from studio.core.recipe import Recipe, RecipeError

SAMPLE_RATE = 44100
TIMBRES = ("piano", "organ", "pluck")
PEAK = 0.89
TAIL_SECONDS = 0.5  # rendered after the last note ends, for releases to die away
TABLE_SIZE = 4096
RELEASE = {"piano": 0.12, "organ": 0.06, "pluck": 0.08}
_WAV_COMMENT_LIMIT = 2000  # libsndfile keeps at most ~2 KB in a WAV LIST/INFO ICMT string
_RECIPE_CHUNK = b"LSrc"  # our own RIFF chunk for recipes too long for ICMT


# --- notes -> samples ------------------------------------------------------------------------------


def midi_to_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12.0)


@lru_cache(maxsize=8)
def _wavetable(harmonics: tuple[tuple[int, float], ...]) -> np.ndarray:
    phase = np.arange(TABLE_SIZE) / TABLE_SIZE * 2 * np.pi
    table = sum(amp * np.sin(k * phase) for k, amp in harmonics)
    return (table / np.max(np.abs(table))).astype(np.float32)


PIANO_BRIGHT = tuple((k, 1.0 / k**1.3) for k in range(1, 11))
PIANO_MELLOW = ((1, 1.0), (2, 0.25))
ORGAN = ((1, 1.0), (2, 0.7), (3, 0.45), (4, 0.35), (6, 0.2), (8, 0.15))


def _table_oscillator(table: np.ndarray, hz: float, n: int, sr: int) -> np.ndarray:
    # Harmonics above Nyquist alias: drop to the mellow table for very high notes instead.
    index = (np.arange(n, dtype=np.float64) * (hz * TABLE_SIZE / sr)) % TABLE_SIZE
    return table[index.astype(np.int64)]


def _envelope(n_hold: int, n_release: int, attack: float, sr: int) -> np.ndarray:
    n_attack = max(1, min(int(attack * sr), n_hold))
    env = np.ones(n_hold + n_release, dtype=np.float32)
    env[:n_attack] = np.linspace(0.0, 1.0, n_attack, endpoint=False, dtype=np.float32)
    if n_release:
        env[n_hold:] = np.linspace(1.0, 0.0, n_release, dtype=np.float32)
    return env


def _piano(hz: float, n_hold: int, n_release: int, sr: int) -> np.ndarray:
    n = n_hold + n_release
    t = np.arange(n, dtype=np.float32) / sr
    bright_table = PIANO_BRIGHT if hz * 10 < sr / 2 else PIANO_MELLOW
    bright = _table_oscillator(_wavetable(bright_table), hz, n, sr)
    mellow = _table_oscillator(_wavetable(PIANO_MELLOW), hz, n, sr)
    # Higher notes die away faster, as on a piano.
    decay = 0.8 * (440.0 / hz) ** 0.5
    brightness = np.exp(-t / (0.25 * decay))
    loudness = 0.25 + 0.75 * np.exp(-t / decay)
    tone = (brightness * bright + (1 - brightness) * mellow) * loudness
    return tone * _envelope(n_hold, n_release, 0.004, sr)


def _organ(hz: float, n_hold: int, n_release: int, sr: int) -> np.ndarray:
    n = n_hold + n_release
    harmonics = tuple((k, a) for k, a in ORGAN if k * hz < sr / 2)
    return _table_oscillator(_wavetable(harmonics), hz, n, sr) * _envelope(n_hold, n_release, 0.02, sr) * 0.7


def _pluck(hz: float, n_hold: int, n_release: int, sr: int, pitch: int) -> np.ndarray:
    """Karplus-Strong, one period per numpy step: y[n] = g * (y[n-P] + y[n-P-1]) / 2.

    The loop's pitch is sr / (P + 0.5) for a whole P; the result is resampled onto the exact pitch.
    """
    n = n_hold + n_release
    period = max(2, int(sr / hz - 0.5))
    stretch = hz / (sr / (period + 0.5))  # < 1: the loop plays sharp, so read it slower
    m = int(n * stretch) + 2
    rng = np.random.default_rng(pitch)  # same pitch, same pluck: renders are reproducible
    out = np.empty(m + period + 1, dtype=np.float32)
    out[:period] = rng.uniform(-1, 1, period).astype(np.float32)
    out[:period] -= out[:period].mean()
    out[period] = out[0]
    # Decay so a note loses ~60 dB over ~1.5 s (shorter for high notes), like a nylon string.
    gain = np.float32(10 ** (-3 / (1.5 * (440.0 / hz) ** 0.3 * hz)))
    i = period + 1
    while i < len(out):
        stop = min(i + period, len(out))
        out[i:stop] = gain * 0.5 * (out[i - period:stop - period] + out[i - period - 1:stop - period - 1])
        i = stop
    exact = np.interp(np.arange(n) * stretch, np.arange(len(out)), out).astype(np.float32)
    return exact * _envelope(n_hold, n_release, 0.001, sr)


@lru_cache(maxsize=2048)
def _note_wave(timbre: str, pitch: int, n_hold: int, sr: int) -> np.ndarray:
    n_release = int(RELEASE[timbre] * sr)
    hz = midi_to_hz(pitch)
    if timbre == "organ":
        wave = _organ(hz, n_hold, n_release, sr)
    elif timbre == "pluck":
        wave = _pluck(hz, n_hold, n_release, sr, pitch)
    else:
        wave = _piano(hz, n_hold, n_release, sr)
    wave = wave.astype(np.float32)
    wave.setflags(write=False)
    return wave


def voice_pans(voices: int) -> list[float]:
    """Pan positions in -1..1: one voice in the middle; several spread from left to right."""
    if voices <= 1:
        return [0.0]
    return [-0.6 + 1.2 * v / (voices - 1) for v in range(voices)]


def render_piece(piece, sample_rate: int = SAMPLE_RATE, timbre: str | list[str] = "piano",
                 stereo: bool = True) -> np.ndarray:
    """Render a MusicPiece to float32 samples, shape (n, 2) (or (n, 1) when stereo is False).

    `timbre` is one name for all voices or one per voice. Length = last note end + TAIL_SECONDS.
    """
    timbres = [timbre] if isinstance(timbre, str) else list(timbre)
    for name in timbres:
        if name not in TIMBRES:
            raise UserError(f"unknown timbre {name!r}; choose one of {', '.join(TIMBRES)}")
    seconds_per_beat = 60.0 / float(piece.tempo_bpm)
    span = max((n.end for n in piece.notes), default=0.0) * seconds_per_beat
    total = int(math.ceil((span + TAIL_SECONDS) * sample_rate))
    voices = max((n.voice for n in piece.notes), default=0) + 1
    pans = voice_pans(voices)
    channels = 2 if stereo else 1
    out = np.zeros((total, channels), dtype=np.float32)
    for note in piece.notes:
        start = int(round(note.start * seconds_per_beat * sample_rate))
        n_hold = max(1, int(round(note.duration * seconds_per_beat * sample_rate)))
        wave = _note_wave(timbres[note.voice % len(timbres)], int(note.pitch), n_hold, sample_rate)
        wave = wave[: total - start]
        gain = (max(1, min(127, note.velocity)) / 127.0) ** 1.5
        if stereo:
            angle = (pans[note.voice] + 1) * math.pi / 4  # constant power: left^2 + right^2 = 1
            out[start:start + len(wave), 0] += wave * (gain * math.cos(angle))
            out[start:start + len(wave), 1] += wave * (gain * math.sin(angle))
        else:
            out[start:start + len(wave), 0] += wave * gain
    return _finish(out, sample_rate)


def _finish(out: np.ndarray, sample_rate: int) -> np.ndarray:
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 0:
        out *= PEAK / peak
    fade = min(len(out) // 2, int(0.005 * sample_rate))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)[:, None]
        out[:fade] *= ramp
        out[-fade:] *= ramp[::-1]
    return out


# --- audio files with the recipe -------------------------------------------------------------------


def write_audio(samples: np.ndarray, sample_rate: int, path: Path, recipe_json: str | None = None,
                new: bool = False, copyright: str | None = None) -> Path:
    """WAV (16-bit, recipe in LIST/INFO ICMT) or FLAC (16-bit, recipe in a Vorbis COMMENT), by extension.
    Returns the path written: with `new`, the first free name from `path` on (core/files.py claims it)."""
    import soundfile as sf

    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("wav", "flac"):
        raise UserError(f"cannot write {path.suffix} audio: use .wav or .flac")
    samples = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    if samples.ndim == 1:
        samples = samples[:, None]
    text = _compact(recipe_json) if recipe_json else None
    long_wav = kind == "wav" and text is not None and len(text.encode("utf-8")) > _WAV_COMMENT_LIMIT
    encoded = io.BytesIO()  # encoded in memory: a full disk is then an OSError (ENOSPC), not libsndfile's words
    with sf.SoundFile(encoded, "w", sample_rate, samples.shape[1], subtype="PCM_16", format=kind.upper()) as handle:
        if text is not None and not long_wav:
            handle.comment = text
        handle.software = "Latent Studio"
        if copyright:  # WAV LIST/INFO ICOP, FLAC COPYRIGHT: a non-commercial model's licence travels with the file
            handle.copyright = copyright
        handle.write(samples)
    with PartialFile(path, new) as partial:  # moved into place once whole
        temp = partial.temp
        with open(temp, "wb") as file:
            file.write(encoded.getbuffer())
        if long_wav:
            _append_riff_chunk(temp, _RECIPE_CHUNK, text.encode("utf-8"))
    return partial.path


def _compact(recipe_json: str) -> str:
    return json.dumps(json.loads(recipe_json), separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _append_riff_chunk(path: Path, chunk_id: bytes, data: bytes) -> None:
    with open(path, "r+b") as handle:
        header = handle.read(12)
        if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            raise UserError(f"{path.name}: not a RIFF/WAVE file")
        handle.seek(0, 2)
        padded = data + (b"\0" if len(data) % 2 else b"")
        handle.write(chunk_id + struct.pack("<I", len(data)) + padded)
        size = handle.tell() - 8
        handle.seek(4)
        handle.write(struct.pack("<I", size))


def _riff_chunk(path: Path, chunk_id: bytes) -> bytes | None:
    with open(path, "rb") as handle:
        if handle.read(12)[8:12] != b"WAVE":
            return None
        while True:
            head = handle.read(8)
            if len(head) < 8:
                return None
            size = struct.unpack("<I", head[4:])[0]
            if head[:4] == chunk_id:
                return handle.read(size)
            handle.seek(size + (size % 2), 1)


def read_recipe_from_audio(path: Path) -> Recipe | None:
    """The recipe a Latent Studio WAV/FLAC carries, or None."""
    import soundfile as sf

    path = Path(path)
    try:
        with sf.SoundFile(str(path)) as handle:
            text = handle.comment
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise UserError(f"{path.name} is not a readable audio file ({exc})") from exc
    if not text and path.suffix.lower() == ".wav":
        raw = _riff_chunk(path, _RECIPE_CHUNK)
        text = raw.decode("utf-8") if raw else ""
    if not text or "studio_recipe" not in text:
        return None
    try:
        return Recipe.from_json(text)
    except RecipeError:
        return None
