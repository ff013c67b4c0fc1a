"""Audio playback for the UI: play/stop/seek and a position clock for the playhead.

Sound runs in sounddevice's own callback thread (inside widgets/playback.py); this object only
keeps the play/stop state and a timer. No sound card, or no PortAudio, gives a clear message.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer, Signal

from studio.widgets import playback


class AudioPlayer(QObject):
    """One per panel; sounddevice has a single output stream, so the player that plays last owns it."""

    position_changed = Signal(float)  # seconds since the start of the piece
    playing_changed = Signal(bool)
    unavailable = Signal(str)  # why nothing plays
    _owner: AudioPlayer | None = None  # the player whose sound is in the stream now

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(33)  # ~30 playhead updates a second
        self._timer.timeout.connect(self._tick)
        self._started_at = 0.0
        self._offset = 0.0
        self._duration = 0.0
        self.playing = False

    def play(self, samples, sample_rate: int, start_seconds: float = 0.0) -> bool:
        self.stop()
        first = int(max(0.0, start_seconds) * sample_rate)
        try:
            playback.play(samples[first:], sample_rate)
        except playback.PlaybackUnavailable as exc:
            self.unavailable.emit(str(exc))
            return False
        self._take_the_stream()
        self._offset = first / sample_rate
        self._duration = len(samples) / sample_rate
        self._started_at = time.perf_counter()
        self.playing = True
        self._timer.start()
        self.playing_changed.emit(True)
        return True

    def stop(self) -> None:
        if not self.playing:
            return
        try:
            playback.stop()
        except playback.PlaybackUnavailable:
            pass
        self._release()

    def _take_the_stream(self) -> None:
        """Our sound just replaced another player's: that one must stop its clock, and must not later
        stop the stream (now ours) when its own piece would have ended."""
        previous, AudioPlayer._owner = AudioPlayer._owner, self
        if previous is not None and previous is not self and previous.playing:
            try:
                previous._release()
            except RuntimeError:  # its Qt object is already gone
                pass

    def _release(self) -> None:
        self._timer.stop()
        self.playing = False
        self.playing_changed.emit(False)

    def _tick(self) -> None:
        position = self._offset + time.perf_counter() - self._started_at
        if position >= self._duration:
            self.stop()
            return
        self.position_changed.emit(position)
