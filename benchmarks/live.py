"""Live mode as a user meets it: pictures per second while a prompt is typed and a slider dragged, through the
real engine process, the State and the Image panel (Live switch on).

  typing   a prompt typed at --cps characters a second for --seconds; each keystroke changes the prompt, the
           switch's throttle and the supersede key decide what is drawn. Figures: pictures/s arriving, and the
           time from the last keystroke to the picture of the final text.
Models: --models builtin:emoji-gan builtin:emoji-lcm builtin:emoji-ldm (each with its catalog defaults).
Run on a quiet machine: python benchmarks/live.py [--seconds 15] [--cps 8]
Goal (issue 21): >= 8 pictures/s on the few-step model on 2 CPU cores.
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

from benchmarks._common import run_until, write_results  # noqa: E402

PROMPT = "a red heart with golden wings and a smiling cat face"


def measure(app, state, panel, model: str, seconds: float, cps: float, steps: int | None = None) -> dict:
    from studio.core.jobs import JobEvent
    from studio.state.live import LIVE_KEY
    from studio.widgets.model_fit import apply_model_defaults

    values = state.image
    values.update({"model": model, "seed": 7, "prompt": "a"})
    apply_model_defaults(values, model)  # steps/guidance/scheduler the model is made for (LCM: 2 steps, CFG 1)
    if steps:
        values.set("steps", steps)
    arrivals: list[tuple[float, str]] = []

    def on_result(job, _result) -> None:
        if job.supersede_key == LIVE_KEY:
            arrivals.append((time.perf_counter(), job.recipe.prompt))

    state.result_ready.connect(on_result)
    panel.live.box.setChecked(True)
    run_until(app, lambda: arrivals)  # the first picture: the model loaded and warm
    arrivals.clear()
    began = time.perf_counter()
    typed, index, last_key = "a", 0, began
    while time.perf_counter() - began < seconds:
        if time.perf_counter() - began >= index / cps:
            typed = PROMPT[: 1 + index % len(PROMPT)]  # type it, then start again
            values.set("prompt", typed)
            last_key = time.perf_counter()
            index += 1
        app.processEvents()
        time.sleep(0.001)
    ended = time.perf_counter()
    # the picture of the final text (a recipe keeps the prompt without its trailing space)
    run_until(app, lambda: bool(arrivals) and arrivals[-1][0] > last_key and arrivals[-1][1].strip() == typed.strip())
    done = time.perf_counter()
    panel.live.box.setChecked(False)
    state.result_ready.disconnect(on_result)
    in_window = [t for t, _p in arrivals if t <= ended]
    waiting = sum(1 for i in state.jobs.values() if i.job.supersede_key == LIVE_KEY and i.status == JobEvent.QUEUED)
    return {"model": model, "steps": values.get("steps"), "keystrokes": index, "pictures": len(in_window),
            "pictures_per_s": round(len(in_window) / seconds, 2),
            "last_keystroke_to_its_picture_s": round(done - last_key, 3), "live_jobs_waiting_at_end": waiting}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--cps", type=float, default=30, help="keystrokes a second (faster than any typist, so the "
                                                                   "model, not the typing, sets the rate)")
    parser.add_argument("--steps", type=int, default=None, help="instead of each model's own default")
    parser.add_argument("--models", nargs="*", default=["builtin:emoji-gan", "builtin:emoji-lcm", "builtin:emoji-ldm"])
    args = parser.parse_args()
    os.environ["LATENT_STUDIO_HOME"] = tempfile.mkdtemp()

    from PySide6.QtWidgets import QApplication

    from studio import paths
    from studio.backends.engine_process import EngineConfig
    from studio.backends.local import LocalEngine
    from studio.library.history import History
    from studio.panels.image import ImagePanel
    from studio.state import State

    app = QApplication([])
    history = History(Path(tempfile.mkdtemp()) / "h.sqlite3", Path(tempfile.mkdtemp()))
    engine = LocalEngine(EngineConfig())
    state = State()
    panel = ImagePanel(state, history)
    panel.resize(1280, 800)
    panel.show()
    engine.message.connect(state.handle_message)
    state.submit_requested.connect(engine.submit)
    engine.start()
    run_until(app, lambda: engine.ready_at > 0)
    rows = []
    for model in args.models:
        if not paths.builtin_model_dir(model.removeprefix("builtin:")).is_dir():
            print(f"skipped {model}: not installed")
            continue
        rows.append(measure(app, state, panel, model, args.seconds, args.cps, args.steps))
        print(rows[-1])
    engine.stop()
    write_results("live" if not args.steps else f"live-{args.steps}-steps", {"typing": rows, "seconds": args.seconds, "keystrokes_per_s": args.cps,
                           "goal": {"pictures_per_s": 8}})


if __name__ == "__main__":
    main()
