"""Paint an inpainting mask over an image: white where the model repaints, with brush, clear and invert."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPointF, QRect, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

OVERLAY = QColor(224, 90, 95)  # drawn at OVERLAY_OPACITY where the mask is white
OVERLAY_OPACITY = 0.6


class MaskCanvas(QWidget):
    changed = Signal()
    committed = Signal()  # a stroke ended, or the mask was cleared/inverted: time to save it

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image: QPixmap | None = None
        self.mask: QImage | None = None  # same size as the image, white = repaint
        self.brush = 24
        self._last: QPointF | None = None
        self.setMinimumSize(200, 200)
        self.setCursor(Qt.CursorShape.CrossCursor)

    def set_image(self, path: str) -> bool:
        pixmap = QPixmap(path)
        if pixmap.isNull():
            return False
        self.image = pixmap
        self.mask = QImage(pixmap.size(), QImage.Format.Format_Grayscale8)
        self.mask.fill(0)
        self.update()
        return True

    def load_mask(self, path: str) -> bool:
        """Show a saved mask (a restored recipe's) over the image, scaled to it; False if it can't be read."""
        mask = QImage(path)
        if self.image is None or mask.isNull():
            return False
        self.mask = mask.convertToFormat(QImage.Format.Format_Grayscale8).scaled(self.image.size())
        self.update()
        return True

    def _target(self) -> QRect:
        size = self.image.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        return QRect((self.width() - size.width()) // 2, (self.height() - size.height()) // 2, size.width(), size.height())

    def _to_image(self, point: QPointF) -> QPointF:
        target = self._target()
        scale = self.image.width() / max(1, target.width())
        return QPointF((point.x() - target.x()) * scale, (point.y() - target.y()) * scale)

    def paint_stroke(self, start: QPointF, end: QPointF, erase: bool = False) -> None:
        """A round-capped line on the mask, in image pixels."""
        painter = QPainter(self.mask)
        colour = QColor(0, 0, 0) if erase else QColor(255, 255, 255)
        painter.setPen(QPen(colour, self.brush, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        painter.drawLine(start, end)
        painter.end()
        self.update()
        self.changed.emit()

    def clear(self) -> None:
        if self.mask is not None:
            self.mask.fill(0)
            self.update()
            self.changed.emit()
            self.committed.emit()

    def invert(self) -> None:
        if self.mask is not None:
            self.mask.invertPixels()
            self.update()
            self.changed.emit()
            self.committed.emit()

    def save_mask(self, path: Path) -> Path:
        self.mask.save(str(path), "PNG")
        return path

    def coverage(self) -> float:
        """Fraction of the image marked for repainting."""
        if self.mask is None:
            return 0.0
        data = self.mask.constBits()
        values = bytes(data)[: self.mask.sizeInBytes()]
        return sum(1 for v in values if v > 127) / max(1, len(values))

    def mousePressEvent(self, event) -> None:
        if self.mask is None:
            return
        self._last = self._to_image(event.position())
        self.paint_stroke(self._last, self._last, erase=event.button() == Qt.MouseButton.RightButton)

    def mouseMoveEvent(self, event) -> None:
        if self._last is None or self.mask is None:
            return
        point = self._to_image(event.position())
        self.paint_stroke(self._last, point, erase=bool(event.buttons() & Qt.MouseButton.RightButton))
        self._last = point

    def mouseReleaseEvent(self, _event) -> None:
        if self._last is not None:
            self.committed.emit()
        self._last = None

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#15171c"))
        if self.image is None:
            painter.setPen(QColor("#7d8590"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             "Open an input image to paint a mask on it.")
            return
        target = self._target()
        painter.drawPixmap(target, self.image)
        overlay = QImage(self.mask.size(), QImage.Format.Format_ARGB32)
        overlay.fill(OVERLAY)
        # The mask's grey values are the overlay's alpha. Converting the grey mask to Alpha8 took its (opaque)
        # alpha instead: the whole picture went pink and strokes never showed.
        overlay.setAlphaChannel(self.mask)
        painter.setOpacity(OVERLAY_OPACITY)
        painter.drawImage(target, overlay)


class MaskPainter(QWidget):
    """The canvas with its brush-size slider and Clear / Invert buttons."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = MaskCanvas()
        self.size_slider = QSlider(Qt.Orientation.Horizontal)
        self.size_slider.setRange(2, 128)
        self.size_slider.setValue(self.canvas.brush)
        self.size_slider.valueChanged.connect(lambda v: setattr(self.canvas, "brush", v))
        self.size_slider.setToolTip("Brush size in image pixels. Left button paints, right button erases.")
        clear, invert = QPushButton("Clear"), QPushButton("Invert")
        clear.clicked.connect(self.canvas.clear)
        invert.clicked.connect(self.canvas.invert)
        tools = QHBoxLayout()
        tools.addWidget(QLabel("Brush"))
        tools.addWidget(self.size_slider, 1)
        tools.addWidget(clear)
        tools.addWidget(invert)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas, 1)
        layout.addLayout(tools)
