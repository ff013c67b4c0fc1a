"""Screenshots of the Image panel's Sketch to picture mode with Live on, and of Live on the few-step model.

Draws a heart outline in red on the sketch pad (as a mouse would), waits for the live picture, grabs the window;
then switches to Text to image on emoji-lcm with Live on, types a prompt and grabs again.
Run under a display:  xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python scripts/screenshot_sketch.py
Options: --out DIR (default docs/), --width N
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from PySide6.QtCore import QPoint, QPointF, Qt, QTimer
from PySide6.QtGui import QColor, QMouseEvent
from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.screenshot import open_window  # noqa: E402


def heart_points(centre: QPoint, size: float, count: int = 60) -> list[QPointF]:
    """The classic parametric heart, scaled to `size` pixels and centred."""
    points = []
    for i in range(count + 1):
        t = 2 * math.pi * i / count
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        points.append(QPointF(centre.x() + x * size / 34, centre.y() - y * size / 34))
    return points


def stroke(widget, points: list[QPointF]) -> None:
    """A mouse stroke through `points`: press, moves, release (the events the pad reacts to)."""
    def send(kind, point, buttons):
        event = QMouseEvent(kind, point, widget.mapToGlobal(point), Qt.MouseButton.LeftButton, buttons,
                            Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(widget, event)

    held = Qt.MouseButton.LeftButton
    send(QMouseEvent.Type.MouseButtonPress, points[0], held)
    for point in points[1:]:
        send(QMouseEvent.Type.MouseMove, point, held)
    send(QMouseEvent.Type.MouseButtonRelease, points[-1], Qt.MouseButton.NoButton)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="docs")
    parser.add_argument("--width", type=int, default=1360)
    args = parser.parse_args()
    out = Path(args.out)
    app, window = open_window(args.width, out)
    window.show_panel("image")
    panel = window.panel("image")
    values = window.state.image
    suffix = "" if args.width == 1360 else f"-{args.width}"

    def grab(name: str) -> None:
        frame = window.frameGeometry()
        picture = (app.primaryScreen().grabWindow(0, frame.x(), frame.y(), frame.width(), frame.height())
                   if os.environ.get("DISPLAY") else window.grab())
        path = out / f"screenshot-{name}{suffix}.png"
        picture.save(str(path))
        print(path)

    def after_live_picture(then) -> None:
        def arrived(_artifact) -> None:
            window.state.live.picture_arrived.disconnect(arrived)
            QTimer.singleShot(500, then)

        window.state.live.picture_arrived.connect(arrived)

    def sketch() -> None:
        values.update({"mode": "translate", "seed": 3, "prompt": ""})
        panel.live.box.setChecked(True)
        panel.stage.setCurrentWidget(panel.inputs)
        canvas = panel.sketch.canvas
        panel.sketch.set_colour(QColor(220, 30, 40))
        after_live_picture(lambda: (show_both(), QTimer.singleShot(300, lambda: (grab("sketch-live"), live_lcm()))))
        stroke(canvas, heart_points(canvas.rect().center(), min(canvas.width(), canvas.height()) * 0.7))

    def show_both() -> None:
        panel.stage.setCurrentWidget(panel.view)  # the picture; the sketch stays one click away

    def live_lcm() -> None:
        panel.live.box.setChecked(False)
        values.update({"mode": "txt2img", "model": "builtin:emoji-lcm", "prompt": "smiling cat face", "seed": 5})
        from studio.widgets.model_fit import apply_model_defaults

        apply_model_defaults(values, "builtin:emoji-lcm")
        after_live_picture(lambda: (grab("live-lcm"), window.close(), app.quit()))
        panel.live.box.setChecked(True)

    QTimer.singleShot(1500, sketch)
    app.exec()


if __name__ == "__main__":
    main()
