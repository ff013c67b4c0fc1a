"""The engine process's own costs, measured from the window's side.

  preview   GUI-thread time per preview message for a 1024x1024 picture: the message arrives from the engine
            process (unpickled on the reader thread), then State.handle_message runs on the GUI thread with the
            Image panel shown, which takes the preview. Goal: <= 2 ms per message at 1024^2. The engine sends a
            preview at latent size (128x128 for a 1024^2 SD picture, tagged to be drawn smoothly scaled); the
            1024x1024 row is what sending it at full size would cost, for comparison.
  restart   a task segfaults: time from the crash to a ready engine (the failed message, the new process, its
            first "ready"), and to the next queued job finishing.
  start     time from LocalEngine.start() to the engine being ready (a fresh interpreter importing our core).
Run: python benchmarks/engine_process.py [--previews 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks._common import run_until, summary_ms, write_results  # noqa: E402


def preview_task(job, ctx):
    """Reports `count` previews of `size`^2 pixels, as fast as it can (a worst case for the window)."""
    from PIL import Image

    from studio.core.jobs import Progress, Result

    size, count = int(job.args["size"]), int(job.args["count"])
    for step in range(1, count + 1):
        picture = Image.new("RGB", (size, size), (step * 5 % 256, 80, 160))
        picture.info["smooth"] = True  # as the engine's previews are
        ctx.report(Progress(step, count, preview=picture))
    return Result()


def crash_task(job, ctx):
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)


def quick_task(job, ctx):
    from studio.core.jobs import Result

    return Result(value=1)


TASKS = {f"bench.{name}": f"benchmarks.engine_process:{name}_task" for name in ("preview", "crash", "quick")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--previews", type=int, default=40)
    args = parser.parse_args()
    os.environ["LATENT_STUDIO_HOME"] = tempfile.mkdtemp()

    from PySide6.QtWidgets import QApplication

    from studio.backends.engine_process import EngineConfig
    from studio.backends.local import LocalEngine
    from studio.core.jobs import Job, JobEvent
    from studio.core.recipe import Recipe
    from studio.library.history import History
    from studio.panels.image import ImagePanel
    from studio.state import State

    app = QApplication([])
    history = History(Path(tempfile.mkdtemp()) / "h.sqlite3", Path(tempfile.mkdtemp()))
    engine = LocalEngine(EngineConfig(extra_tasks=TASKS))
    state = State()
    panel = ImagePanel(state, history)
    panel.resize(1280, 800)
    panel.show()
    handled: list[tuple[JobEvent, int, float]] = []

    def timed_handler(message) -> None:
        began = time.perf_counter()
        state.handle_message(message)
        handled.append((message.event, message.job.id, time.perf_counter() - began))

    engine.message.connect(timed_handler)
    state.submit_requested.connect(engine.submit)
    began = time.perf_counter()
    engine.start()
    run_until(app, lambda: engine.ready_at > 0)
    start_s = engine.ready_at - began

    preview_ms = {}
    for size in (8, 128, 1024):  # a 64 px picture's preview, a 1024 px picture's, a full-size one
        # an image job (a recipe of medium "image"), so the Image panel draws each preview as it would a real one
        job = state.submit(Job("bench.preview", Recipe("image", prompt="preview cost"),
                               args={"size": size, "count": args.previews}, save=False))
        run_until(app, lambda job=job: any(e == JobEvent.FINISHED and i == job.id for e, i, _ in handled))
        times = [t for e, i, t in handled if i == job.id and e == JobEvent.PROGRESS]
        preview_ms[f"{size}x{size} preview"] = summary_ms(times)

    restarts = []
    for _ in range(3):
        crash = state.submit(Job("bench.crash", save=False))
        after = state.submit(Job("bench.quick", save=False))
        run_until(app, lambda crash=crash: any(e == JobEvent.FAILED and i == crash.id for e, i, _ in handled))
        failed_at = time.perf_counter()
        old_ready = engine.ready_at
        run_until(app, lambda old_ready=old_ready: engine.ready_at > old_ready)
        run_until(app, lambda after=after: any(e == JobEvent.FINISHED and i == after.id for e, i, _ in handled))
        restarts.append({"failed_to_ready_s": round(engine.ready_at - failed_at, 3),
                         "failed_to_next_job_done_s": round(time.perf_counter() - failed_at, 3)})
    engine.stop()
    write_results("engine_process", {
        "engine_start_to_ready_s": round(start_s, 3),
        "preview_message_gui_thread": preview_ms,
        "restart_after_segfault": restarts,
        "restart_median_s": round(statistics.median(r["failed_to_ready_s"] for r in restarts), 3),
        "goal": {"preview_ms_at_1024": 2.0},
    })


if __name__ == "__main__":
    main()
