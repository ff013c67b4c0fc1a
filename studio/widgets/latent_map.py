"""A zoomable scatter of thumbnails on a 2-D latent map; click anywhere to ask what lives there."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPen, QTransform, QWheelEvent
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
)

from studio.widgets.image_view import pil_to_pixmap

MARK_COLOURS = {"current": "#ffffff", "A": "#e07a5f", "B": "#81b29a", "walk": "#f2cc8f"}


class LatentMapView(QGraphicsView):
    """Map units are scaled so the data spans ~1000 scene pixels; y grows upwards like a plot."""

    point_clicked = Signal(float, float)  # map coordinates
    point_dragged = Signal(float, float)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.setBackgroundBrush(QColor("#15171c"))
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setToolTip("Click: decode that point · drag: explore · wheel: zoom · right-drag: pan")
        self.scale_factor = 1.0
        self.marks: dict[str, list] = {}
        self._dragging = False
        self._panning: QPointF | None = None
        self._empty_hint()

    def _empty_hint(self) -> None:
        hint = QGraphicsSimpleTextItem("Build a map to see the model's latent space here.")
        hint.setBrush(QColor("#7d8590"))
        self.scene().addItem(hint)

    def set_map(self, points, thumbnails, labels) -> None:
        scene = self.scene()
        scene.clear()
        self.marks.clear()
        spread = float(max(abs(points).max(), 1e-6))
        self.scale_factor = 500.0 / spread
        for (x, y), thumb, label in zip(points, thumbnails, labels, strict=False):
            item = scene.addPixmap(pil_to_pixmap(thumb))
            item.setOffset(-thumb.width / 2, -thumb.height / 2)
            item.setPos(x * self.scale_factor, -y * self.scale_factor)
            item.setToolTip(label)
            item.setScale(0.6)
        scene.setSceneRect(scene.itemsBoundingRect().adjusted(-60, -60, 60, 60))
        self.fitInView(scene.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def to_map(self, scene_point: QPointF) -> tuple[float, float]:
        return scene_point.x() / self.scale_factor, -scene_point.y() / self.scale_factor

    def mark(self, name: str, x: float, y: float, keep: bool = False) -> None:
        """Draw a ring at a map point; `keep` adds to the mark list (the walk's key points)."""
        if not keep:
            for item in self.marks.pop(name, []):
                self.scene().removeItem(item)
        ring = QGraphicsEllipseItem(-14, -14, 28, 28)
        ring.setPen(QPen(QColor(MARK_COLOURS.get(name, "#ffffff")), 3))
        # Marks keep their size on screen at any zoom: the whole map fitted into the view shrank them to dots.
        ring.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        ring.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        ring.setPos(x * self.scale_factor, -y * self.scale_factor)
        ring.setZValue(10)
        self.scene().addItem(ring)
        if name != "current":
            tag = QGraphicsSimpleTextItem(name if name in "AB" else str(len(self.marks.get(name, [])) // 2 + 1))
            tag.setBrush(QColor(MARK_COLOURS.get(name, "#ffffff")))
            tag.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
            tag.setFont(QFont(tag.font().family(), 12, QFont.Weight.Bold))
            tag.setPos(x * self.scale_factor, -y * self.scale_factor)
            tag.setTransform(QTransform.fromTranslate(14, -28))
            tag.setZValue(10)
            self.scene().addItem(tag)
            self.marks.setdefault(name, []).extend([ring, tag])
        else:
            self.marks.setdefault(name, []).append(ring)

    def clear_marks(self, name: str) -> None:
        for item in self.marks.pop(name, []):
            self.scene().removeItem(item)

    def wheelEvent(self, event: QWheelEvent) -> None:
        factor = 1.2 if event.angleDelta().y() > 0 else 1 / 1.2
        self.scale(factor, factor)

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.RightButton:
            self._panning = event.position()
            return
        self._dragging = True
        self.point_clicked.emit(*self.to_map(self.mapToScene(event.position().toPoint())))

    def mouseMoveEvent(self, event) -> None:
        if self._panning is not None:
            delta = event.position() - self._panning
            self._panning = event.position()
            self.horizontalScrollBar().setValue(int(self.horizontalScrollBar().value() - delta.x()))
            self.verticalScrollBar().setValue(int(self.verticalScrollBar().value() - delta.y()))
        elif self._dragging:
            self.point_dragged.emit(*self.to_map(self.mapToScene(event.position().toPoint())))

    def mouseReleaseEvent(self, event) -> None:
        self._dragging = False
        self._panning = None
