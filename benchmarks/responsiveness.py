"""Event-loop stalls of the window while the engine works: a 16 ms QTimer on the GUI thread records gaps.

The window runs its jobs the way the app does (the engine process by default; `--engine thread` for the
in-process thread, to compare). Phases, each reported as p50/p99/max of (gap - 16 ms):
  cold    from a cold start: the engine process starts, imports torch and picks the device (the warm-up job)
  image   the first image job on the built-in model (loads diffusers and the model, 20 steps, previews)
  text    the first text job on the built-in model (loads transformers, 200 tokens streamed)
  music   the first music job on the built-in model (8 bars streamed)
  busy    a CPU-heavy torch job (convolutions) for a few seconds, reporting each step
Run: python benchmarks/responsiveness.py [--seconds 6] [--engine process|thread]
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


PHASES = ("cold", "image", "text", "music", "busy")


def next_job(phase: str, seconds: float):
    from studio.core.jobs import Job
    from studio.core.recipe import Recipe

    if phase == "image":
        return Job("image.generate", Recipe("image", prompt="red heart", model="builtin:emoji-ldm", seed=1,
                                            params={"steps": 20, "width": 64, "height": 64}), save=False)
    if phase == "text":
        return Job("text.generate", Recipe("text", prompt="The", model="builtin:text-gpt", seed=1,
                                           params={"max_new_tokens": 200}), save=False)
    if phase == "music":
        return Job("music.generate", Recipe("music", prompt="jig in A minor", model="builtin:music-gpt", seed=1,
                                            params={"bars": 8}), save=False)
    return Job("bench.heavy", args={"seconds": seconds}, save=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--engine", choices=("process", "thread"), default="process")
    args = parser.parse_args()
    os.environ["LATENT_STUDIO_HOME"] = tempfile.mkdtemp()
    os.environ["LATENT_STUDIO_ENGINE"] = args.engine

    from dataclasses import replace

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from studio.app import create_window
    from studio.core import tasks
    from studio.core.jobs import Job, JobEvent

    heavy = {"bench.heavy": "benchmarks.responsiveness:heavy_torch_task"}
    tasks.register("bench.heavy", heavy["bench.heavy"])
    app = QApplication([])
    app.setOrganizationName("LatentStudioBench")
    window = create_window(app, warm_up=False)
    if hasattr(window.worker.local, "config"):  # the engine process learns the benchmark's own task before it starts
        window.worker.local.config = replace(window.worker.local.config, extra_tasks=heavy)
    window.show()
    gaps: dict[str, list[float]] = {name: [] for name in PHASES}
    phase = {"name": None, "last": time.perf_counter(), "steps": 0, "failed": []}

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
        if message.event not in (JobEvent.FINISHED, JobEvent.FAILED, JobEvent.CANCELLED):
            return
        if message.event != JobEvent.FINISHED:
            phase["failed"].append(f"{message.job.kind}: {message.error}")
        if message.job.kind == "bench.heavy":
            phase["steps"] = message.result.value if message.result else 0
            phase["name"] = None
            app.quit()
            return
        following = PHASES[PHASES.index(phase["name"]) + 1]
        phase["name"] = following
        window.state.submit(next_job(following, args.seconds))

    window.worker.message.connect(on_message)

    def start() -> None:
        phase["name"], phase["last"] = "cold", time.perf_counter()
        window.state.submit(Job("device.warmup", save=False))

    QTimer.singleShot(0, start)  # the cold start: the engine is started by the same first turn of the event loop
    app.exec()
    window.worker.stop()
    figures = {name: summary_ms(values) for name, values in gaps.items()}
    figures["busy"]["torch_steps"] = phase["steps"]
    figures["engine"] = args.engine
    figures["failed"] = phase["failed"]
    figures["timer_ms"] = TIMER_MS
    figures["goal"] = {"p99_ms": 16, "max_ms": 50}
    everything = [g for name in PHASES for g in gaps[name]]
    figures["all"] = summary_ms(everything)
    write_results(f"responsiveness-{args.engine}", figures)


if __name__ == "__main__":
    main()
