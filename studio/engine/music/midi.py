"""MIDI files in and out (mido), with the recipe kept in a text meta event.

Layout written: a type-1 file, 480 ticks per beat; track 0 holds tempo, time signature, key signature
and the recipe (a `text` meta event whose text is the recipe JSON, ASCII-escaped so any MIDI reader
keeps it intact); one track per voice after it, on its own channel (skipping 9, the drum channel).
"""

from __future__ import annotations

import json
from pathlib import Path

from studio.core.files import PartialFile
from studio.core.jobs import UserError
from studio.core.recipe import Recipe, RecipeError
from studio.engine.music.piece import METRES, NOTE_NAMES, MusicPiece, Note, estimate_key, key_name, parse_key

TICKS_PER_BEAT = 480
RECIPE_MARK = "studio_recipe"


def _channel(voice: int) -> int:
    """Voices 0-8 -> channels 0-8, then 10-15 (9 is drums); more voices than channels share the last."""
    return voice if voice < 9 else min(15, voice + 1)


def _mido_key(key: str) -> str:
    tonic, mode = parse_key(key)
    return NOTE_NAMES[tonic] + ("m" if mode == "minor" else "")


def write_midi(
    piece: MusicPiece, path: Path, recipe_json: str | None = None, new: bool = False, copyright: str | None = None
) -> Path:
    """Returns the path written: with `new`, the first free name from `path` on (core/files.py claims it)."""
    import mido

    path = Path(path)
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    meta = mido.MidiTrack()
    midi.tracks.append(meta)
    meta.append(mido.MetaMessage("track_name", name="Latent Studio", time=0))
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(piece.tempo_bpm), time=0))
    numerator, denominator = (int(x) for x in piece.metre.split("/"))
    meta.append(mido.MetaMessage("time_signature", numerator=numerator, denominator=denominator, time=0))
    try:
        meta.append(mido.MetaMessage("key_signature", key=_mido_key(piece.key), time=0))
    except (UserError, ValueError):
        pass  # a key mido cannot name is simply not written
    if copyright:  # e.g. a non-commercial model's licence, where players and DAWs show it
        meta.append(mido.MetaMessage("copyright", text=copyright.encode("ascii", "replace").decode("ascii"), time=0))
    if recipe_json:
        text = json.dumps(json.loads(recipe_json), ensure_ascii=True, sort_keys=True)
        meta.append(mido.MetaMessage("text", text=text, time=0))
    for voice in range(piece.voices):
        midi.tracks.append(_voice_track(piece, voice))
    with PartialFile(path, new) as partial:  # moved into place once whole
        midi.save(str(partial.temp))
    return partial.path


def _voice_track(piece: MusicPiece, voice: int):
    import mido

    track = mido.MidiTrack()
    channel = _channel(voice)
    program = piece.programs[voice] if voice < len(piece.programs) else 0
    track.append(mido.MetaMessage("track_name", name=f"Voice {voice + 1}", time=0))
    track.append(mido.Message("program_change", program=int(program) % 128, channel=channel, time=0))
    events = []  # (tick, order, message): note-offs sort before note-ons at the same tick
    for note in piece.notes:
        if note.voice != voice:
            continue
        start = round(note.start * TICKS_PER_BEAT)
        end = max(start + 1, round(note.end * TICKS_PER_BEAT))
        velocity = max(1, min(127, int(note.velocity)))
        events.append((start, 1, mido.Message("note_on", note=note.pitch, velocity=velocity, channel=channel)))
        events.append((end, 0, mido.Message("note_off", note=note.pitch, velocity=0, channel=channel)))
    events.sort(key=lambda e: (e[0], e[1], e[2].note))
    now = 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def read_midi(path: Path) -> MusicPiece:
    """Any standard MIDI file -> MusicPiece (one voice per track or channel that has notes)."""
    import mido

    path = Path(path)
    try:
        midi = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError, KeyError) as exc:
        raise UserError(f"{path.name} is not a readable MIDI file ({exc})") from exc
    if midi.type == 2:
        raise UserError(f"{path.name} is a type-2 MIDI file (independent sequences); save it as type 0 or 1")
    tempo = key = metre = None
    voices: dict[tuple[int, int], int] = {}
    programs: dict[int, int] = {}
    open_notes: dict[tuple[int, int, int], tuple[int, int]] = {}
    notes: list[Note] = []
    per_beat = midi.ticks_per_beat
    for track_index, track in enumerate(midi.tracks):
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "set_tempo" and tempo is None:
                tempo = mido.tempo2bpm(message.tempo)
            elif message.type == "time_signature" and metre is None:
                metre = f"{message.numerator}/{message.denominator}"
            elif message.type == "key_signature" and key is None:
                key = _key_from_mido(message.key)
            elif message.type == "program_change":
                programs[_voice_of(voices, track_index, message.channel)] = message.program
            elif message.type in ("note_on", "note_off") and message.channel != 9:
                voice = _voice_of(voices, track_index, message.channel)
                ident = (voice, message.channel, message.note)
                if message.type == "note_on" and message.velocity > 0:
                    if ident in open_notes:  # re-struck before release: end the old one here
                        _close(notes, open_notes.pop(ident), tick, per_beat, message.note, voice)
                    open_notes[ident] = (tick, message.velocity)
                elif ident in open_notes:
                    _close(notes, open_notes.pop(ident), tick, per_beat, message.note, voice)
    if not notes:
        raise UserError(f"{path.name} has no notes")
    notes.sort(key=lambda n: (n.start, n.voice, -n.pitch))
    count = max(n.voice for n in notes) + 1
    if key is None:
        key = key_name(*estimate_key(notes))
    return MusicPiece(notes, float(tempo or 120.0), key, metre or "4/4", [programs.get(v, 0) for v in range(count)],
                      "tune")


def _voice_of(voices: dict, track: int, channel: int) -> int:
    if (track, channel) not in voices:
        voices[(track, channel)] = len(voices)
    return voices[(track, channel)]


def _close(notes: list[Note], opened: tuple[int, int], tick: int, per_beat: int, pitch: int, voice: int) -> None:
    start, velocity = opened
    if tick > start:
        notes.append(Note(pitch, start / per_beat, (tick - start) / per_beat, velocity, voice))


def _key_from_mido(text: str) -> str | None:
    minor = text.endswith("m")
    try:
        tonic, _ = parse_key(text[:-1] if minor else text)
    except UserError:
        return None
    return key_name(tonic, "minor" if minor else "major")


def read_recipe_from_midi(path: Path) -> Recipe | None:
    """The recipe a Latent Studio MIDI file carries, or None (a file from elsewhere)."""
    import mido

    try:
        midi = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError, KeyError) as exc:
        raise UserError(f"{Path(path).name} is not a readable MIDI file ({exc})") from exc
    for track in midi.tracks:
        for message in track:
            if message.type == "text" and RECIPE_MARK in message.text:
                try:
                    return Recipe.from_json(message.text)
                except RecipeError:
                    continue
    return None


__all__ = ["write_midi", "read_midi", "read_recipe_from_midi", "METRES"]


def open_task(job, ctx):
    """Worker entry for "music.open": a saved MIDI file's notes, for the roll (a restored piece shows itself)."""
    from studio.core.jobs import Result, UserError

    try:
        return Result(value=read_midi(Path(job.args["path"])))
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"cannot read {Path(job.args['path']).name}: {exc}") from exc
