"""The inpaint mask overlay: nothing painted leaves the picture as it is; a stroke shows where it was painted."""

from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor, QImage

from studio.widgets.mask_painter import MaskCanvas


def _canvas(qtbot, tmp_path):
    picture = QImage(64, 64, QImage.Format.Format_RGB32)
    picture.fill(QColor(40, 160, 60))
    path = tmp_path / "in.png"
    picture.save(str(path))
    canvas = MaskCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(256, 256)
    assert canvas.set_image(str(path))
    canvas.show()
    qtbot.waitExposed(canvas)
    return canvas


def _pixel(canvas, x, y) -> QColor:
    return canvas.grab().toImage().pixelColor(x, y)


def test_an_unpainted_mask_leaves_the_picture_unchanged(qtbot, tmp_path):
    canvas = _canvas(qtbot, tmp_path)
    for x, y in ((20, 20), (128, 128), (230, 200)):
        colour = _pixel(canvas, x, y)
        assert (colour.red(), colour.green(), colour.blue()) == (40, 160, 60), f"tinted at {x},{y}: {colour.name()}"


def test_a_stroke_shows_and_only_where_painted(qtbot, tmp_path):
    canvas = _canvas(qtbot, tmp_path)
    canvas.brush = 8
    canvas.paint_stroke(QPointF(8, 32), QPointF(24, 32))  # image pixels: the left quarter, middle row
    qtbot.wait(10)
    painted = _pixel(canvas, 64, 128)  # widget pixels: 4x the image
    assert painted.red() > 100 and painted.green() < 140, f"the stroke is invisible: {painted.name()}"
    elsewhere = _pixel(canvas, 200, 200)
    assert (elsewhere.red(), elsewhere.green(), elsewhere.blue()) == (40, 160, 60)
