"""Throttle a fast stream of values (slider drags) to at most one call per frame.

The first value runs at once; later ones within the interval wait, and only the newest waiting
value runs when the interval ends. The worker's supersede key then drops any request still
queued behind a running decode, so the image always converges on the slider's last position.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer

FRAME_MS = 17  # one frame at 60 Hz is 16.7 ms: round up, so never more than 60 decodes a second


class Throttle(QObject):
    def __init__(self, call: Callable[[Any], None], interval_ms: int = FRAME_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._call = call
        self._pending: tuple[Any] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        # A coarse timer may fire up to 5 % early; the promise is "never faster than the interval".
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._flush)
        self.calls = 0

    def __call__(self, value: Any) -> None:
        if self._timer.isActive():
            self._pending = (value,)  # newer replaces older: only the latest matters
            return
        self._run(value)

    def _flush(self) -> None:
        if self._pending is not None:
            (value,) = self._pending
            self._pending = None
            self._run(value)

    def _run(self, value: Any) -> None:
        self.calls += 1
        self._call(value)
        self._timer.start()
