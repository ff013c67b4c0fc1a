"""Job kind -> engine function, named as text so the worker imports compute modules lazily.

A task is `fn(job: Job, ctx: TaskContext) -> Result`. Keeping the table as strings means
importing this module (from the worker, at start-up) costs nothing: torch, diffusers and
transformers load the first time a job of that kind runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from studio.core.jobs import Job, Result, TaskContext, UserError

TASKS: dict[str, str] = {
    "image.generate": "studio.engine.image.generate:generate_task",
    "image.xy_plot": "studio.engine.image.generate:xy_plot_task",
    "image.seed_travel": "studio.engine.image.travel:seed_travel_task",
    "image.prompt_travel": "studio.engine.image.travel:prompt_travel_task",
    "text.generate": "studio.engine.text.generate:generate_task",
    "music.generate": "studio.engine.music.generate:generate_task",
    "music.note": "studio.engine.music.audition:note_task",
    "latent.melody_interpolate": "studio.engine.music.melody:interpolate_task",
    "device.warmup": "studio.core.warmup:warmup_task",
    # The Latent Explorer's tasks (names listed in studio.engine.latent.tasks.TASKS).
    **{kind: f"studio.engine.latent.tasks:{fn}" for kind, fn in {
        "latent.map": "map_task", "latent.decode": "decode_task", "latent.strip": "strip_task",
        "latent.walk": "walk_task", "latent.grid": "grid_task", "latent.breed": "breed_task",
        "latent.anomaly": "anomaly_task", "latent.augment": "augment_task",
    }.items()},
}

Task = Callable[[Job, TaskContext], Result]


def register(kind: str, target: str) -> None:
    TASKS[kind] = target


def find_task(kind: str) -> Task:
    target = TASKS.get(kind)
    if target is None:
        raise UserError(f"unknown job kind {kind!r}")
    module_name, _, function_name = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, function_name)
