"""The worker's start-up warm-up: import torch and pick the device while the user reads the window."""

from __future__ import annotations

import time

from studio.core.jobs import Job, Result, TaskContext


def warmup_task(job: Job, ctx: TaskContext) -> Result:
    """Import torch and pick the device while the user is still reading the window."""
    started = time.perf_counter()
    import torch  # noqa: F401  (the import is the point)

    return Result(info={"warmup_s": time.perf_counter() - started}, value=ctx.device)
