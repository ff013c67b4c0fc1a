"""The Image panel's Live switch: while on, every change of a live value (state/live.py) asks for a new picture,
throttled to one request per frame; the label says how many pictures a second are arriving."""

from __future__ import annotations

import time
from collections import deque

from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QWidget

from studio.state.live import LIVE_KEY, LiveImage
from studio.widgets.throttle import Throttle

RATE_WINDOW_S = 2.0  # pictures/s is counted over the last two seconds


class LiveSwitch(QWidget):
    def __init__(self, live: LiveImage, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.live = live
        self.box = QCheckBox("Live")
        self.box.setToolTip("The picture follows the prompt as you type and the sliders as you drag (not saved; "
                            "Generate saves). Fast with a few-step model such as Emoji LCM.")
        self.rate = QLabel("")
        self.rate.setObjectName("hint")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.box)
        layout.addWidget(self.rate, 1)
        self.throttle = Throttle(lambda _value: live.request(), parent=self)
        self._arrived: deque[float] = deque()
        self.box.toggled.connect(live.set_enabled)
        live.enabled_changed.connect(self._on_enabled)
        live.values.value_changed.connect(lambda name, _value: self.throttle(None) if live.wants(name) else None)
        live.state.result_ready.connect(self._on_result)

    def _on_enabled(self, on: bool) -> None:
        self.box.setChecked(on)
        self._arrived.clear()
        self.rate.setText("" if not on else "waiting for the first picture…")

    def _on_result(self, job, _result) -> None:
        if job.supersede_key != LIVE_KEY:
            return
        now = time.perf_counter()
        self._arrived.append(now)
        while self._arrived and now - self._arrived[0] > RATE_WINDOW_S:
            self._arrived.popleft()
        self.rate.setText(f"{len(self._arrived) / RATE_WINDOW_S:.1f} pictures/s")
