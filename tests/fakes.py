"""Scriptable fake engine tasks for worker and UI tests: no torch, fully controlled pace."""

from __future__ import annotations

import threading
from dataclasses import replace

from PIL import Image

from studio.core.jobs import Artifact, Job, Progress, Result, TaskContext, UserError

# Each step of `gated_task` waits for the test to release it: lets a test cancel at an exact
# step without sleeping. A Semaphore per test run, reset by `reset_gate`.
GATE = threading.Semaphore(0)
RAN: list[int] = []  # job ids in the order the worker ran them


def reset_gate() -> None:
    global GATE
    GATE = threading.Semaphore(0)
    RAN.clear()


def steps_task(job: Job, ctx: TaskContext) -> Result:
    RAN.append(job.id)
    total = int(job.args.get("steps", 5))
    for step in range(1, total + 1):
        ctx.check()
        ctx.report(Progress(step, total, preview=f"step {step}"))
    return Result(value=job.args.get("value"))


def gated_task(job: Job, ctx: TaskContext) -> Result:
    RAN.append(job.id)
    total = int(job.args.get("steps", 10))
    for step in range(1, total + 1):
        GATE.acquire(timeout=10)
        ctx.check()  # the cancel check at each step: at most one step runs after Cancel
        streams_text = job.recipe is not None and job.recipe.modality == "text"
        ctx.report(Progress(step, total, preview=" word" * step if streams_text else None))
    return Result()


def half_batch_task(job: Job, ctx: TaskContext) -> Result:
    """One picture done, then cancelled: what a batch cancelled during its second image raises."""
    RAN.append(job.id)
    from studio.core.jobs import Cancelled

    raise Cancelled(partial=[Artifact("image", job.recipe, Image.new("RGB", (16, 16), "green"))])


def failing_task(job: Job, ctx: TaskContext) -> Result:
    RAN.append(job.id)
    if job.args.get("user_error"):
        raise UserError("the model file is damaged")
    raise RuntimeError("boom")


def image_task(job: Job, ctx: TaskContext) -> Result:
    """Makes a flat-colour picture from the recipe's seed: enough to exercise history and gallery."""
    RAN.append(job.id)
    recipe = job.recipe
    colour = (recipe.seed * 37 % 256, recipe.seed * 91 % 256, recipe.seed * 13 % 256)
    ctx.report(Progress(1, 1, preview=Image.new("RGB", (8, 8), colour)))
    return Result([Artifact("image", recipe, Image.new("RGB", (32, 32), colour))])


def text_task(job: Job, ctx: TaskContext) -> Result:
    RAN.append(job.id)
    words = job.recipe.prompt.split()
    text = ""
    for index, word in enumerate(words, 1):
        ctx.check()
        text += f" {word.upper()}"
        ctx.report(Progress(index, len(words), preview=text))
    return Result([Artifact("text", job.recipe, text)])


def register_fakes() -> None:
    from studio.core import tasks

    for name in ("steps_task", "gated_task", "failing_task", "image_task", "text_task", "half_batch_task"):
        tasks.register(f"fake.{name.removesuffix('_task')}", f"tests.fakes:{name}")


# --- for the engine process: these run in another process, so they are paced through a FIFO (a named pipe)
# the test writes to: the task opens it once and reads one byte per step, blocking until the test writes it.


def _gate(job: Job):
    fifo = job.args.get("fifo")
    return open(fifo, "rb", buffering=0) if fifo else None  # noqa: SIM115 - closed by the caller


def piped_task(job: Job, ctx: TaskContext) -> Result:
    """`steps` steps, each released by one byte on the FIFO; reports an 8x8 preview whose colour is the step."""
    total = int(job.args.get("steps", 3))
    gate = _gate(job)
    for step in range(1, total + 1):
        if gate is not None:
            gate.read(1)
        ctx.check()
        ctx.report(Progress(step, total, preview=Image.new("RGB", (8, 8), (step, 0, 0))))
    return Result(value=job.args.get("value"))


def segfault_task(job: Job, ctx: TaskContext) -> Result:
    import os
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)
    return Result()


def stubborn_task(job: Job, ctx: TaskContext) -> Result:
    """Never looks at cancel: a long native call (a 7 GB load, a huge decode) as the engine sees it."""
    ctx.report(Progress(1, 2))
    _gate(job).read(1)
    return Result()


def batch_task(job: Job, ctx: TaskContext) -> Result:
    """`count` pictures handed over one by one; after `stop_after` of them it blocks (for a kill test)."""
    artifacts = []
    for index in range(int(job.args.get("count", 4))):
        if index == int(job.args.get("stop_after", -1)):
            _gate(job).read(1)
        seed = job.recipe.seed + index
        picture = Image.new("RGB", (16, 16), (seed * 37 % 256, seed * 91 % 256, 0))
        artifact = Artifact("image", replace(job.recipe, seed=seed), picture)
        ctx.output(artifact)
        artifacts.append(artifact)
    return Result(artifacts)


PROCESS_FAKES = {f"fake.{name.removesuffix('_task')}": f"tests.fakes:{name}"
                 for name in ("piped_task", "segfault_task", "stubborn_task", "batch_task", "text_task",
                              "image_task", "failing_task")}
