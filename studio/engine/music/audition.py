"""Audition: render one note with the synth, so clicking the piano roll plays it (off the GUI thread)."""

from __future__ import annotations

from studio.core.jobs import Job, Result, TaskContext


def note_task(job: Job, ctx: TaskContext) -> Result:
    from studio.engine.music import synth
    from studio.engine.music.piece import MusicPiece, Note

    piece = MusicPiece([Note(int(job.args["pitch"]), 0.0, 1.0, 90, 0)], tempo_bpm=120.0)
    samples = synth.render_piece(piece, synth.SAMPLE_RATE, timbre=job.args.get("instrument") or "piano")
    return Result(value=(samples, synth.SAMPLE_RATE))
