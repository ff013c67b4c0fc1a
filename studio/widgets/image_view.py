"""Showing PIL images in Qt: conversion, a scaled view with a caption, and a thumbnail strip."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem, QSizePolicy, QWidget


def pil_to_qimage(image) -> QImage:
    rgba = image.convert("RGBA")
    data = rgba.tobytes("raw", "RGBA")
    # copy(): the QImage must own its pixels once `data` goes out of scope
    return QImage(data, rgba.width, rgba.height, rgba.width * 4, QImage.Format.Format_RGBA8888).copy()


def pil_to_pixmap(image) -> QPixmap:
    return QPixmap.fromImage(pil_to_qimage(image))


def png_to_pixmap(data: bytes) -> QPixmap:
    pixmap = QPixmap()
    pixmap.loadFromData(data, "PNG")
    return pixmap


class ImageView(QWidget):
    """Draws one image scaled to fit, crisp (nearest-neighbour) when enlarging small images."""

    def __init__(self, parent: QWidget | None = None, placeholder: str = "") -> None:
        super().__init__(parent)
        self._pixmap: QPixmap | None = None
        self._smooth = False
        self._placeholder = placeholder
        self.setMinimumSize(256, 256)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_image(self, image) -> None:
        self._pixmap = pil_to_pixmap(image) if image is not None else None
        # A preview (tagged by the engine) is a small estimate of the picture: scaled smoothly, never in squares.
        self._smooth = image is not None and bool(getattr(image, "info", {}).get("smooth"))
        self.update()

    def set_pixmap(self, pixmap: QPixmap | None) -> None:
        self._pixmap = pixmap
        self._smooth = False
        self.update()

    def pixmap(self) -> QPixmap | None:
        return self._pixmap

    def image_rect(self):
        if self._pixmap is None or self._pixmap.isNull():
            return None
        size = self._pixmap.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        x = (self.width() - size.width()) // 2
        y = (self.height() - size.height()) // 2
        from PySide6.QtCore import QRect

        return QRect(x, y, size.width(), size.height())

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().base())
        rect = self.image_rect()
        if rect is None:
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder)
            return
        enlarging = rect.width() > self._pixmap.width()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._smooth or not enlarging)
        painter.drawPixmap(rect, self._pixmap)


class ThumbnailStrip(QListWidget):
    """A horizontal strip of results; clicking one shows it, each item carries its data."""

    chosen = Signal(object)

    def __init__(self, icon_size: int = 72, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setIconSize(QSize(icon_size, icon_size))
        self.setFixedHeight(icon_size + 28)
        self.setMovement(QListView.Movement.Static)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.itemClicked.connect(lambda item: self.chosen.emit(item.data(Qt.ItemDataRole.UserRole)))

    def add(self, pixmap: QPixmap, data: object, tooltip: str = "") -> None:
        from PySide6.QtGui import QIcon

        item = QListWidgetItem(QIcon(pixmap), "")
        item.setData(Qt.ItemDataRole.UserRole, data)
        item.setToolTip(tooltip)
        self.insertItem(0, item)
