"""The Train tab's loss plot (issue 20): pyqtgraph or QtCharts — which imports faster and draws offscreen.

Each library is measured in a fresh process (so nothing is imported already), with a QApplication made first as the
window has one: seconds to import it, and seconds to build a plot of 2,000 points and grab it as a picture
offscreen (QT_QPA_PLATFORM=offscreen), the median of --runs processes. QtCharts ships in PySide6-Addons, not in the
PySide6-Essentials the app installs: where it is missing the JSON says so.

Run: QT_QPA_PLATFORM=offscreen python benchmarks/plot_widget.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import write_results  # noqa: E402

PROBES = {
    "pyqtgraph": """
import time, json
from PySide6.QtWidgets import QApplication
app = QApplication([])
t0 = time.perf_counter()
import pyqtgraph as pg
t1 = time.perf_counter()
w = pg.PlotWidget(); w.resize(600, 300)
w.plot(list(range(2000)), [1 / (1 + i) for i in range(2000)])
w.show(); app.processEvents(); picture = w.grab()
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_draw_s": t2 - t1, "width": picture.width()}))
""",
    "qtcharts": """
import time, json
from PySide6.QtWidgets import QApplication
app = QApplication([])
t0 = time.perf_counter()
from PySide6.QtCharts import QChart, QChartView, QLineSeries
t1 = time.perf_counter()
series = QLineSeries()
for i in range(2000):
    series.append(i, 1 / (1 + i))
chart = QChart(); chart.addSeries(series); chart.createDefaultAxes()
view = QChartView(chart); view.resize(600, 300); view.show(); app.processEvents(); picture = view.grab()
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_draw_s": t2 - t1, "width": picture.width()}))
""",
}


def measure(code: str, runs: int) -> dict:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    found = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        if done.returncode != 0:
            return {"available": False, "error": done.stderr.strip().splitlines()[-1][:200]}
        found.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {"available": True, "import_s": statistics.median(r["import_s"] for r in found),
            "first_draw_s": statistics.median(r["first_draw_s"] for r in found),
            "drew_offscreen": all(r["width"] == 600 for r in found), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--busy", default="", help="what else ran on the machine, for the record")
    args = parser.parse_args()
    write_results("plot_widget", {name: measure(code, args.runs) for name, code in PROBES.items()} | {"busy": args.busy})


if __name__ == "__main__":
    main()
