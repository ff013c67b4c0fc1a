"""Latent Explorer panel. The map, walks and breeding arrive with the built-in image model's VAE."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from studio.state import State


class LatentPanel(QWidget):
    modality = "latent"

    def __init__(self, state: State, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        note = QLabel(
            "<h2>Latent Explorer</h2>"
            "<p>Map, walk, interpolate and breed in the latent space of the built-in image model "
            "and of a melody model.</p>"
            "<p><i>Not built yet: it needs the built-in emoji model's VAE, which is still training "
            "(issues 6 and 7).</i></p>"
        )
        note.setWordWrap(True)
        note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        note.setTextFormat(Qt.TextFormat.RichText)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(note)
        layout.addStretch(2)
