"""Piano roll: notes per voice as coloured bars, with zoom, scroll, a playhead and click-to-hear."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QWheelEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

VOICE_COLOURS = [QColor("#e07a5f"), QColor("#81b29a"), QColor("#f2cc8f"), QColor("#7aa5d8"), QColor("#c38bd9"), QColor("#6cc3c3")]
BLACK_KEYS = {1, 3, 6, 8, 10}
GUTTER = 38  # px on the left: a keyboard on its side, with the C's named
RULER = 18  # px on top: bar numbers
DEFAULT_PIXELS_PER_BEAT = 40.0


def note_fields(note) -> tuple[int, float, float, int, int]:
    """(pitch, start, duration, velocity, voice) from a note object or tuple; times in beats."""
    if isinstance(note, tuple | list):
        pitch, start, duration, velocity, voice = (list(note) + [80, 0])[:5]
        return int(pitch), float(start), float(duration), int(velocity), int(voice)
    start = getattr(note, "start", getattr(note, "start_beats", getattr(note, "onset", 0.0)))
    duration = getattr(note, "duration", getattr(note, "duration_beats", 1.0))
    return (int(note.pitch), float(start), float(duration), int(getattr(note, "velocity", 80)), int(getattr(note, "voice", 0)))


class PianoRoll(QWidget):
    note_clicked = Signal(int)  # MIDI pitch, for "click a note to hear it"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.notes: list[tuple[int, float, float, int, int]] = []
        self.pixels_per_beat = DEFAULT_PIXELS_PER_BEAT
        self.scroll_beats = 0.0
        self.playhead: float | None = None  # beats
        self.beats_per_bar = 4.0
        self.setMinimumHeight(220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setToolTip("Wheel: scroll · Ctrl+wheel: zoom · click a note to hear it")

    def set_notes(self, notes, beats_per_bar: float | None = None) -> None:
        self.notes = [note_fields(n) for n in (notes or [])]
        if beats_per_bar:
            self.beats_per_bar = float(beats_per_bar)
        self._fit_to_width()
        self.update()

    def _fit_to_width(self) -> None:
        """Zoom out so the whole piece shows (never in beyond the default); Ctrl+wheel zooms after."""
        span = max((start + duration for _pitch, start, duration, _vel, _voice in self.notes), default=0.0)
        visible = max(50.0, self.width() - GUTTER - 8)
        self.pixels_per_beat = DEFAULT_PIXELS_PER_BEAT if span <= 0 else max(4.0, min(DEFAULT_PIXELS_PER_BEAT, visible / span))
        self.scroll_beats = 0.0

    def set_playhead(self, beats: float | None) -> None:
        self.playhead = beats
        if beats is not None:
            visible = (self.width() - GUTTER) / self.pixels_per_beat
            if not self.scroll_beats <= beats <= self.scroll_beats + visible * 0.9:
                self.scroll_beats = max(0.0, beats - visible * 0.1)
        self.update()

    def _pitch_range(self) -> tuple[int, int]:
        if not self.notes:
            return 48, 84
        pitches = [n[0] for n in self.notes]
        return min(pitches) - 2, max(pitches) + 2

    def _row_height(self, low: int, high: int) -> float:
        return (self.height() - RULER) / max(1, high - low + 1)

    def _x(self, beats: float) -> float:
        return GUTTER + (beats - self.scroll_beats) * self.pixels_per_beat

    def _note_rect(self, note, low: int, high: int) -> QRectF:
        pitch, start, duration, _velocity, _voice = note
        row_height = self._row_height(low, high)
        y = RULER + (high - pitch) * row_height
        return QRectF(self._x(start), y, max(2.0, duration * self.pixels_per_beat - 1), max(2.0, row_height - 1))

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#1b1d23"))
        low, high = self._pitch_range()
        row_height = self._row_height(low, high)
        for pitch in range(low, high + 1):  # darker rows for black keys, like a keyboard on its side
            if pitch % 12 in BLACK_KEYS:
                painter.fillRect(QRectF(GUTTER, RULER + (high - pitch) * row_height, self.width(), row_height),
                                 QColor("#16181d"))
        self._paint_grid(painter)
        painter.setClipRect(GUTTER, RULER, self.width() - GUTTER, self.height() - RULER)
        for note in self.notes:
            colour = QColor(VOICE_COLOURS[note[4] % len(VOICE_COLOURS)])
            colour.setAlpha(110 + min(145, note[3]))
            painter.fillRect(self._note_rect(note, low, high), colour)
        painter.setClipping(False)
        self._paint_keyboard(painter, low, high, row_height)
        if not self.notes:
            painter.setPen(QColor("#7d8590"))
            painter.drawText(self.rect().adjusted(GUTTER + 8, RULER, -8, 0),  # wrapped: a narrow roll cut it
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             "Notes appear here as they are composed.")
        if self.playhead is not None and self._x(self.playhead) >= GUTTER:
            painter.setPen(QPen(QColor("#ffffff"), 2))
            painter.drawLine(int(self._x(self.playhead)), RULER, int(self._x(self.playhead)), self.height())

    def _paint_grid(self, painter: QPainter) -> None:
        """Beat lines, then bar lines with their numbers in the ruler (a bar of 3/8 is 1.5 beats: bar lines are
        drawn at their own positions, not picked out of the beats)."""
        painter.setPen(QPen(QColor("#262a32")))
        beat = int(self.scroll_beats)
        while self._x(beat) < self.width():
            if self._x(beat) >= GUTTER:
                painter.drawLine(int(self._x(beat)), RULER, int(self._x(beat)), self.height())
            beat += 1
        for number, start in self.visible_bars():
            x = self._x(start)
            painter.setPen(QPen(QColor("#3a404c")))
            painter.drawLine(int(x), RULER, int(x), self.height())
            painter.setPen(QColor("#8b93a1"))
            painter.drawText(int(x) + 3, RULER - 4, str(number))

    def visible_bars(self) -> list[tuple[int, float]]:
        """(bar number from 1, its first beat) for every bar line in view."""
        bars, bar = [], int(self.scroll_beats // self.beats_per_bar)
        while self._x(bar * self.beats_per_bar) < self.width():
            if self._x(bar * self.beats_per_bar) >= GUTTER:
                bars.append((bar + 1, bar * self.beats_per_bar))
            bar += 1
        return bars

    def _paint_keyboard(self, painter: QPainter, low: int, high: int, row_height: float) -> None:
        painter.fillRect(QRectF(0, 0, GUTTER, self.height()), QColor("#23262e"))
        for pitch in range(low, high + 1):
            y = RULER + (high - pitch) * row_height
            black = pitch % 12 in BLACK_KEYS
            painter.fillRect(QRectF(GUTTER - 12, y, 12, row_height), QColor("#0f1014" if black else "#d9d9d9"))
            if pitch % 12 == 0 and row_height * 3 >= 9:  # name the C's when there is room
                painter.setPen(QColor("#aab1bd"))
                painter.drawText(QRectF(2, y - 4, GUTTER - 16, row_height + 8),
                                 Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, f"C{pitch // 12 - 1}")

    def resizeEvent(self, event) -> None:
        self._fit_to_width()  # the panel may be laid out after the notes arrived
        super().resizeEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.pixels_per_beat = min(400.0, max(5.0, self.pixels_per_beat * (1.15**steps)))
        else:
            self.scroll_beats = max(0.0, self.scroll_beats - steps * 2)
        self.update()

    def mousePressEvent(self, event) -> None:
        low, high = self._pitch_range()
        for note in self.notes:
            if self._note_rect(note, low, high).contains(event.position()):
                self.note_clicked.emit(note[0])
                return
