"""Milliseconds per picture of each built-in image model, through the engine's own job runner (recipe, prompt
plan, pipeline, decode; unsaved, as a Live picture is), on 1 and on 2 torch threads, alternating models and thread
counts in one run so they share the machine's mood.

Goals (issue 21): the GAN <= 20 ms per 64-px picture on 2 cores; the few-step model <= 0.15 s per picture.
Run on a quiet machine: python benchmarks/builtin_image_speed.py [--runs 15] [--rounds 3]
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
os.environ.setdefault("LATENT_STUDIO_HOME", tempfile.mkdtemp())

from benchmarks._common import write_results  # noqa: E402

SETUPS = {  # name: (model, steps, guidance, scheduler); None: the model has no steps
    "emoji-gan": ("builtin:emoji-gan", None, None, None),
    "emoji-lcm, 2 steps": ("builtin:emoji-lcm", 2, 1.0, "lcm"),
    "emoji-lcm, 4 steps": ("builtin:emoji-lcm", 4, 1.0, "lcm"),
    "emoji-ldm, 20 steps": ("builtin:emoji-ldm", 20, 5.0, "dpmpp_2m"),
}


def job(setup: tuple, index: int):
    from studio.core.jobs import Job
    from studio.core.recipe import Recipe

    model, steps, guidance, scheduler = setup
    params = {"width": 64, "height": 64}
    if steps is not None:
        params.update(steps=steps, guidance=guidance, scheduler=scheduler)
    prompt = ("a red heart", "a cat face", "a pizza slice")[index % 3]  # the prompt changes, as in Live
    return Job("image.generate", Recipe("image", prompt=prompt, seed=7, model=model, params=params), save=False)


def time_jobs(runner, setup: tuple, runs: int) -> list[float]:
    from studio.core.jobs import JobEvent

    seconds = []
    for i in range(runs):
        messages = []
        began = time.perf_counter()
        runner.run(job(setup, i), messages.append, lambda: False)
        seconds.append(time.perf_counter() - began)
        if messages[-1].event != JobEvent.FINISHED:
            raise SystemExit(f"{setup[0]}: {messages[-1].error}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="pictures per model, thread count and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import torch

    from studio.backends.runner import JobRunner

    runner = JobRunner(None)
    for setup in SETUPS.values():
        time_jobs(runner, setup, 2)  # load and warm up
    samples: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for name, setup in SETUPS.items():
                samples.setdefault((name, threads), []).extend(time_jobs(runner, setup, args.runs))
    rows = {f"{name}, {threads} thread{'s' if threads > 1 else ''}": {
        "ms_median": round(statistics.median(values) * 1000, 1),
        "pictures_per_s": round(1 / statistics.median(values), 1)} for (name, threads), values in samples.items()}
    write_results("builtin_image_speed", {"runs": args.runs, "rounds": args.rounds, "per_picture": rows,
                                          "goals": {"emoji-gan": "<= 20 ms on 2 cores",
                                                    "emoji-lcm": "<= 150 ms on 2 cores"}})


if __name__ == "__main__":
    main()
