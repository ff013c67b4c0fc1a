"""Translate mode's drawing paper: lines on white, in black or a colour (a coloured line asks the sketch model for
that colour), saved as a PNG after every stroke so the recipe can name it and Live can redraw from it.

The paper is SIZE pixels square (four times the sketch model's 64 px, so lines look like pen lines when shown
large); the engine scales it down as it does a dropped drawing. QtGui/QtWidgets only.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPointF, QRect, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QColorDialog, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

SIZE = 256
PAPER = QColor(255, 255, 255)


class SketchCanvas(QWidget):
    committed = Signal()  # a stroke ended or the paper changed: time to save it

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.paper = QImage(SIZE, SIZE, QImage.Format.Format_RGB32)
        self.paper.fill(PAPER)
        self.colour = QColor(0, 0, 0)
        self.pen_width = 6  # paper pixels: 1.5 px at the model's 64 px, like the training sketches' 1-2 px lines
        self._last: QPointF | None = None
        self.setMinimumSize(200, 200)
        self.setCursor(Qt.CursorShape.CrossCursor)

    def clear(self) -> None:
        self.paper.fill(PAPER)
        self.update()
        self.committed.emit()

    def load(self, path: str) -> bool:
        """Put a drawing (a restored recipe's sketch, a dropped file) on the paper; False if it can't be read."""
        picture = QImage(path)
        if picture.isNull():
            return False
        self.paper.fill(PAPER)
        painter = QPainter(self.paper)
        painter.drawImage(QRect(0, 0, SIZE, SIZE), picture)
        painter.end()
        self.update()
        return True

    def save(self, path: Path) -> Path:
        self.paper.save(str(path), "PNG")
        return path

    def _target(self) -> QRect:
        side = min(self.width(), self.height())
        return QRect((self.width() - side) // 2, (self.height() - side) // 2, side, side)

    def _to_paper(self, point: QPointF) -> QPointF:
        target = self._target()
        scale = SIZE / max(1, target.width())
        return QPointF((point.x() - target.x()) * scale, (point.y() - target.y()) * scale)

    def _draw_to(self, point: QPointF, erase: bool) -> None:
        painter = QPainter(self.paper)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        width = self.pen_width * (4 if erase else 1)  # erasing wants a wider tip than drawing
        painter.setPen(QPen(PAPER if erase else self.colour, width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                            Qt.PenJoinStyle.RoundJoin))
        painter.drawLine(self._last or point, point)
        painter.end()
        self._last = point
        self.update()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._last = None
        self._draw_to(self._to_paper(event.position()), event.button() == Qt.MouseButton.RightButton)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if event.buttons() & (Qt.MouseButton.LeftButton | Qt.MouseButton.RightButton):
            self._draw_to(self._to_paper(event.position()), bool(event.buttons() & Qt.MouseButton.RightButton))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._last = None
        self.committed.emit()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.drawImage(self._target(), self.paper)
        painter.end()


class SketchPad(QWidget):
    """The canvas with its pen width, colour and Clear."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = SketchCanvas()
        self.width_slider = QSlider(Qt.Orientation.Horizontal)
        self.width_slider.setRange(2, 24)
        self.width_slider.setValue(self.canvas.pen_width)
        self.width_slider.valueChanged.connect(lambda v: setattr(self.canvas, "pen_width", v))
        self.width_slider.setToolTip("Pen width. Left button draws, right button erases.")
        self.colour_button = QPushButton("Colour…")
        self.colour_button.setToolTip("A coloured line asks for that colour (a red outline: a red thing); black "
                                      "lines let the model choose")
        self.colour_button.clicked.connect(self._pick_colour)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.canvas.clear)
        tools = QHBoxLayout()
        tools.addWidget(QLabel("Pen"))
        tools.addWidget(self.width_slider, 1)
        tools.addWidget(self.colour_button)
        tools.addWidget(clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas, 1)
        layout.addLayout(tools)

    def set_colour(self, colour: QColor) -> None:
        self.canvas.colour = colour
        self.colour_button.setStyleSheet(f"border-left: 10px solid {colour.name()};")

    def _pick_colour(self) -> None:
        colour = QColorDialog.getColor(self.canvas.colour, self, "Pen colour")
        if colour.isValid():
            self.set_colour(colour)
