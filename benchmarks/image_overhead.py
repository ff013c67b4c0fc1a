"""Image generation through the app (the engine process, messages, previews, history) vs a bare diffusers call.

Same model, steps, size, scheduler, seed and device, in one run, alternating to share the machine's mood.
Figures: throughput ratio bare/app (goal >= 0.97), preview cost (goal <= 5 %), Cancel -> `cancelled` latency.
Run: python benchmarks/image_overhead.py [--model builtin:emoji-ldm] [--steps 20] [--size 64] [--runs 5]
     [--engine process|thread]   (process: as the app runs it; thread: the in-process engine, to compare)
The default model is the built-in one when present, else a tiny random SD pipeline built in a temp folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("LATENT_STUDIO_HOME", tempfile.mkdtemp())

from benchmarks._common import finish_job, write_results  # noqa: E402


def default_model() -> str:
    from studio import paths

    if (paths.builtin_model_dir("emoji-ldm") / "model_index.json").exists():
        return "builtin:emoji-ldm"
    from tests.engine.tiny_models import build_tiny_sd_folder

    return str(build_tiny_sd_folder(Path(tempfile.mkdtemp()) / "tiny-sd"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--engine", choices=("process", "thread"), default="process")
    args = parser.parse_args()

    import torch
    from PySide6.QtCore import QCoreApplication, QEventLoop

    from studio.backends.engine_process import EngineConfig
    from studio.backends.local import LocalEngine
    from studio.backends.thread import ThreadEngine
    from studio.core.catalog import resolve
    from studio.core.devices import pick_device
    from studio.core.jobs import Job, JobEvent
    from studio.core.recipe import Recipe
    from studio.engine.image import generate as image
    from studio.engine.image.schedulers import set_scheduler
    from studio.library.history import History

    app = QCoreApplication([])
    model = args.model or default_model()
    device = pick_device("auto")
    recipe = Recipe("image", prompt="red heart", model=model, seed=1,
                    params={"steps": args.steps, "width": args.size, "height": args.size, "scheduler": "euler",
                            "guidance": 5.0})
    history = History(Path(tempfile.mkdtemp()) / "h.sqlite3", Path(tempfile.mkdtemp()))
    if args.engine == "process":
        worker = LocalEngine(EngineConfig(history_db=str(history.db_path), outputs_dir=str(history.outputs_dir)))
    else:
        worker = ThreadEngine(history=history, device_override="auto")
    worker.start()
    done: dict = {}

    def on_message(message) -> None:
        if message.event in (JobEvent.FINISHED, JobEvent.FAILED, JobEvent.CANCELLED):
            done[message.job_id] = message
            loop.quit()

    worker.message.connect(on_message)
    loop = QEventLoop()

    def app_run(job: Job) -> float:
        started = time.perf_counter()
        finish_job(worker, loop, done, job)
        return time.perf_counter() - started

    # the engine's own model cache holds its bundle; the bare path loads its own copy here
    bundle = image.load_image_pipeline(resolve(model), device)
    pipe = bundle.pipe

    def bare_run() -> float:
        set_scheduler(pipe, "euler", bundle.base_scheduler_config)
        started = time.perf_counter()
        with torch.inference_mode():
            pipe("red heart", num_inference_steps=args.steps, width=args.size, height=args.size, guidance_scale=5.0,
                 generator=torch.Generator("cpu").manual_seed(1))
        return time.perf_counter() - started

    def engine_run(report) -> float:
        started = time.perf_counter()
        image.generate_artifacts(bundle, recipe, report, lambda: False)
        return time.perf_counter() - started

    app_run(Job("image.generate", recipe))  # warm both: model load, first-call allocations
    bare_run()
    times: dict[str, list[float]] = {"bare": [], "app": [], "engine_preview": [], "engine_no_preview": []}
    for _ in range(args.runs):
        times["bare"].append(bare_run())
        times["app"].append(app_run(Job("image.generate", recipe)))
        times["engine_preview"].append(engine_run(lambda p: None))
        times["engine_no_preview"].append(engine_run(None))
    median = {k: statistics.median(v) for k, v in times.items()}

    # Cancel latency: cancel when the 3rd step's progress arrives, time until `cancelled` arrives.
    latencies, steps_after = [], []
    for _ in range(3):
        job = Job("image.generate", recipe.with_params(steps=max(args.steps, 30)), save=False)
        cancel_at: dict = {}

        def on_progress(message, job=job, cancel_at=cancel_at) -> None:
            if message.job_id != job.id or message.event != JobEvent.PROGRESS:
                return
            cancel_at["last_step"] = message.progress.step
            if message.progress.step >= 3 and "t" not in cancel_at:
                cancel_at["t"], cancel_at["step"] = time.perf_counter(), message.progress.step
                worker.cancel(job.id)

        worker.message.connect(on_progress)
        app_run(job)
        latencies.append(time.perf_counter() - cancel_at["t"])
        steps_after.append(cancel_at["last_step"] - cancel_at["step"])
        worker.message.disconnect(on_progress)
    worker.stop()
    step_s = median["bare"] / args.steps
    write_results(f"image_overhead-{args.engine}", {
        "engine": args.engine, "model": model, "device": device.label, "steps": args.steps, "size": args.size, "runs": args.runs,
        "median_s": {k: round(v, 4) for k, v in median.items()},
        "throughput_ratio_app_vs_bare": round(median["bare"] / median["app"], 3),
        "preview_cost_fraction": round(median["engine_preview"] / median["engine_no_preview"] - 1, 4),
        "cancel_to_cancelled_ms": [round(x * 1000, 1) for x in latencies],
        "steps_reported_after_cancel": steps_after,
        "one_step_ms": round(step_s * 1000, 1),
        "seconds_per_image": round(median["app"], 3),
        "goals": {"throughput_ratio": 0.97, "preview_cost": 0.05},
    })
    app.quit()


if __name__ == "__main__":
    main()
