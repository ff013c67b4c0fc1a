"""The Train tab's live loss plot: each step's training loss, its running mean, and a line at every checkpoint.

pyqtgraph draws it (QtCharts is not in PySide6-Essentials; pyqtgraph is pure Python and draws
offscreen: benchmarks/plot_widget.py). The points come from TrainState, so the plot holds nothing of its own.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

SMOOTHING = 0.9  # the running mean's weight on the past: steps are noisy, the trend is what the user reads


def running_mean(values: list[float], weight: float = SMOOTHING) -> list[float]:
    """Exponential running mean, bias-corrected at the start (as TensorBoard smooths)."""
    out, mean = [], 0.0
    for index, value in enumerate(values, 1):
        mean = weight * mean + (1 - weight) * value
        out.append(mean / (1 - weight**index))
    return out


# the dark theme's colours (assets/theme.qss: the input background, the muted text, the violet accent): pyqtgraph
# draws with its own, and a white plot glared in the dark window
PLOT_COLOURS = {"background": "#15171c", "text": "#9aa0ac", "raw": "#4d5262", "mean": "#8b7cf6", "checkpoint": "#e0a040"}


class LossPlot(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=True, background=PLOT_COLOURS["background"], foreground=PLOT_COLOURS["text"])
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(150)
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "training loss")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setToolTip("The training loss of each step (faint) and its running mean (bright). It should fall, then "
                             "flatten; dashed lines are checkpoints, the picked one is solid.")
        self.raw = self.plot.plot([], [], pen=pg.mkPen(PLOT_COLOURS["raw"], width=1))
        self.mean = self.plot.plot([], [], pen=pg.mkPen(PLOT_COLOURS["mean"], width=2))
        self.marks: list[pg.InfiniteLine] = []
        self.steps: list[float] = []
        self.losses: list[float] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

    def set_points(self, points: list) -> None:
        self.steps = [float(step) for step, _loss in points]
        self.losses = [float(loss) for _step, loss in points]
        self._redraw()

    def add_point(self, step: int, loss: float) -> None:
        self.steps.append(float(step))
        self.losses.append(float(loss))
        self._redraw()

    def set_checkpoints(self, steps: list[int], picked: int | None = None) -> None:
        for mark in self.marks:
            self.plot.removeItem(mark)
        self.marks = []
        for step in steps:
            dashed = pg.QtCore.Qt.PenStyle.DashLine
            style = (pg.mkPen(PLOT_COLOURS["checkpoint"], width=2) if step == picked
                     else pg.mkPen(PLOT_COLOURS["checkpoint"], width=1, style=dashed))
            mark = pg.InfiniteLine(pos=step, angle=90, pen=style)
            self.plot.addItem(mark)
            self.marks.append(mark)

    def _redraw(self) -> None:
        self.raw.setData(self.steps, self.losses)
        self.mean.setData(self.steps, running_mean(self.losses))
