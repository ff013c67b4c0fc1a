"""Job kind -> engine function, named as text so the worker imports compute modules lazily.

A task is `fn(job: Job, ctx: TaskContext) -> Result`. Keeping the table as strings means
importing this module (from the worker, at start-up) costs nothing: torch, diffusers and
transformers load the first time a job of that kind runs. Each medium's tasks are listed
with the medium, in studio/media.py; the ones here belong to no medium.
"""

from __future__ import annotations

from collections.abc import Callable

from studio import media
from studio.core.jobs import Job, Result, TaskContext, UserError

TASKS: dict[str, str] = {
    "device.warmup": "studio.core.warmup:warmup_task",
    **media.tasks(),
}

Task = Callable[[Job, TaskContext], Result]


def register(kind: str, target: str) -> None:
    TASKS[kind] = target


def find_task(kind: str) -> Task:
    target = TASKS.get(kind) or media.tasks().get(kind)  # the second: a medium registered after start-up
    if target is None:
        raise UserError(f"unknown job kind {kind!r}")
    return media.load(target)
