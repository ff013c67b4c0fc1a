"""Event-loop stalls while the worker runs torch: a 16 ms QTimer on the GUI thread records gaps.

Phases, each reported as p50/p99/max of (gap - 16 ms):
  cold   the worker's first job imports torch and picks the device (the warm-up job)
  busy   a CPU-heavy torch job (convolutions, 2 threads) runs for a few seconds, reporting each step
Run: python benchmarks/responsiveness.py [--seconds 6]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks._common import summary_ms, write_results  # noqa: E402

TIMER_MS = 16


def heavy_torch_task(job, ctx):
    """Repeated convolutions sized like a small UNet block: real CPU load with per-step reports."""
    import torch

    from studio.core.jobs import Progress, Result

    x = torch.randn(8, 64, 64, 64)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    deadline = time.perf_counter() + job.args["seconds"]
    step = 0
    with torch.no_grad():
        while time.perf_counter() < deadline:
            ctx.check()
            x = torch.tanh(conv(x))
            step += 1
            ctx.report(Progress(step, step + 1))
    return Result(value=step)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    os.environ["LATENT_STUDIO_HOME"] = tempfile.mkdtemp()

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from studio.app import create_window
    from studio.core import tasks
    from studio.core.jobs import Job, JobEvent

    tasks.register("bench.heavy", "benchmarks.responsiveness:heavy_torch_task")
    app = QApplication([])
    app.setOrganizationName("LatentStudioBench")
    window = create_window(app, warm_up=False)
    window.show()
    gaps: dict[str, list[float]] = {"cold": [], "busy": []}
    phase = {"name": None, "last": time.perf_counter(), "steps": 0}

    def tick() -> None:
        now = time.perf_counter()
        if phase["name"]:
            gaps[phase["name"]].append(max(0.0, now - phase["last"] - TIMER_MS / 1000))
        phase["last"] = now

    timer = QTimer()
    timer.setInterval(TIMER_MS)
    timer.timeout.connect(tick)
    timer.start()

    def on_message(message) -> None:
        if message.event == JobEvent.FINISHED and message.job.kind == "device.warmup":
            phase["name"] = "busy"
            window.state.submit(Job("bench.heavy", args={"seconds": args.seconds}, save=False))
        elif message.event == JobEvent.FINISHED and message.job.kind == "bench.heavy":
            phase["steps"] = message.result.value
            phase["name"] = None
            app.quit()

    window.worker.message.connect(on_message)

    def start() -> None:
        phase["name"], phase["last"] = "cold", time.perf_counter()
        window.state.submit(Job("device.warmup", save=False))

    QTimer.singleShot(200, start)
    app.exec()
    window.worker.stop()
    figures = {name: summary_ms(values) for name, values in gaps.items()}
    figures["busy"]["torch_steps"] = phase["steps"]
    figures["timer_ms"] = TIMER_MS
    figures["goal"] = {"p99_ms": 16, "max_ms": 50}
    write_results("responsiveness", figures)


if __name__ == "__main__":
    main()
