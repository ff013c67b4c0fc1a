"""Time to a shown Latent Studio window vs a bare PySide6 window, each in a fresh process.

Both children report the time from interpreter start (before any import) to the window being
shown and painted once, and whether torch was imported by then (it must not be).
Run: python benchmarks/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import write_results  # noqa: E402

BARE = """
import time; t0 = time.perf_counter()
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication([])
w = QMainWindow(); w.resize(1280, 820); w.show(); app.processEvents()
import json, sys; print(json.dumps({"seconds": time.perf_counter() - t0, "torch": "torch" in sys.modules}))
"""

STUDIO = """
import time; t0 = time.perf_counter()
from PySide6.QtWidgets import QApplication
from studio.app import create_window
app = QApplication([]); app.setOrganizationName("LatentStudioBench"); app.setApplicationName("startup")
w = create_window(app, warm_up=False); w.show(); app.processEvents()
import json, sys; print(json.dumps({"seconds": time.perf_counter() - t0, "torch": "torch" in sys.modules}))
w.worker.stop()
"""


def run_child(code: str, home: str) -> dict:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LATENT_STUDIO_HOME": home}
    # An installed app has its bytecode cached (pip compiles site-packages; the bundle ships .pyc). Some shells
    # here set PYTHONDONTWRITEBYTECODE, which would make every run recompile our modules (~25 ms) but not PySide6's.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # python startup itself is the same for both and not ours to optimise: measure from its end
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                            cwd=Path(__file__).resolve().parents[1])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        run_child(BARE, home), run_child(STUDIO, home)  # warm the OS file cache for both
        bare = [run_child(BARE, home) for _ in range(args.runs)]
        studio = [run_child(STUDIO, home) for _ in range(args.runs)]
    bare_s = statistics.median(r["seconds"] for r in bare)
    studio_s = statistics.median(r["seconds"] for r in studio)
    write_results("startup", {
        "runs": args.runs,
        "bare_pyside6_window_s": round(bare_s, 3),
        "latent_studio_window_s": round(studio_s, 3),
        "ratio": round(studio_s / bare_s, 2),
        "goal_ratio": 1.5,
        "torch_imported_before_window": any(r["torch"] for r in studio),
    })


if __name__ == "__main__":
    main()
