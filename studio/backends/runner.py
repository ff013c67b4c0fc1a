"""Running one job, with no Qt: the loop body shared by the engine process and the in-process thread engine.

`JobRunner.run(job, emit, cancelled)` looks the task up, gives it `report`, `cancelled` and `output`, and turns
everything that happens into `JobMessage`s passed to `emit`. Each output is saved — file, then history row — the
moment the task hands it over (`ctx.output`), not when the whole batch returns, so a kill loses nothing finished.
A failing task becomes a `failed` message; nothing raised here reaches the caller's loop.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import replace

from studio.core.jobs import Artifact, Cancelled, Job, JobEvent, JobMessage, Progress, Result, TaskContext, UserError
from studio.core.model_cache import ModelCache
from studio.core.tasks import find_task

log = logging.getLogger(__name__)

Emit = Callable[[JobMessage], None]


def save_with_lineage(history, artifacts: list[Artifact]) -> None:
    """Save in order; an artifact naming earlier siblings as parents gets their history ids."""
    for artifact in artifacts:
        if artifact.entry_id is not None:
            continue  # saved already, the moment it was finished
        siblings = artifact.info.get("parent_artifacts")
        if siblings:
            ids = tuple(artifacts[i].entry_id for i in siblings if artifacts[i].entry_id is not None)
            artifact.recipe = replace(artifact.recipe, parents=ids)
        history.save_artifact(artifact)
        replaced = artifact.info.get("replaces_entry")
        if isinstance(replaced, int) and replaced != artifact.entry_id:
            history.delete(replaced, delete_files=True)  # an earlier save of the same thing (a loom tree), now stale


class _RateClock:
    """Stamps progress with elapsed time and a rate counted from the first step of the current phase (model
    loading before the first step must not count, or the first job's ETA is off by the loading time)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.phase: dict = {}

    def stamp(self, progress: Progress) -> Progress:
        now = time.perf_counter()
        if self.phase.get("total") != progress.total or progress.step < self.phase.get("step", 0):
            self.phase.update(total=progress.total, step=progress.step, at=now)
        done, spent = progress.step - self.phase["step"], now - self.phase["at"]
        rate = done / spent if done > 0 and spent > 0 else 0.0
        return Progress(progress.step, progress.total, progress.preview, progress.message, now - self.started, rate)


class JobRunner:
    def __init__(self, history=None, device_override: str = "auto") -> None:
        self.history = history
        self.device_override = device_override
        self.models = ModelCache(on_free=self._empty_device_cache)
        self._device = None

    def set_device_override(self, override: str) -> None:
        """Takes effect at the next job; loaded models are freed so they reload on the new device."""
        self.device_override = override
        self._device = None
        self.models.clear()

    def device(self):
        if self._device is None:
            from studio.core.devices import pick_device

            self._device = pick_device(self.device_override)
        return self._device

    def run(self, job: Job, emit: Emit, cancelled: Callable[[], bool]) -> None:
        clock = _RateClock()
        emit(JobMessage(JobEvent.STARTED, job))
        saved: list[Artifact] = []

        def output(artifact: Artifact) -> None:
            """A finished output: saved now (file, then row) and announced, before the task goes on."""
            if job.save and self.history is not None:
                save_with_lineage(self.history, [artifact])
            saved.append(artifact)
            emit(JobMessage(JobEvent.OUTPUT, job, result=Result([artifact])))

        try:
            if job.save and self.history is not None and job.recipe is not None:
                self.history.check_writable()  # an unwritable or full output folder fails now, not after the work
            result = self._call_task(job, clock, emit, cancelled, output)
            if job.save and self.history is not None:
                save_with_lineage(self.history, result.artifacts)
            result.info.setdefault("seconds", time.perf_counter() - clock.started)
        except Cancelled as stop:
            kept = [a for a in stop.partial if a not in saved]
            if kept and job.save and self.history is not None:
                save_with_lineage(self.history, kept)
            everything = saved + kept
            emit(JobMessage(JobEvent.CANCELLED, job, result=Result(artifacts=everything) if everything else None))
        except UserError as exc:
            emit(JobMessage(JobEvent.FAILED, job, error=str(exc)))
        except Exception as exc:  # a broken job must never take the engine down
            log.error("job %s (%s) failed:\n%s", job.id, job.kind, traceback.format_exc())
            emit(JobMessage(JobEvent.FAILED, job, error=f"{type(exc).__name__}: {exc}"))
        else:
            emit(JobMessage(JobEvent.FINISHED, job, result=result))

    def _call_task(self, job: Job, clock: _RateClock, emit: Emit, cancelled, output) -> Result:
        if job.kind == "worker.reset_device":
            self.set_device_override(str(job.args.get("device", self.device_override)))
            return Result(value=self.device())

        def report(progress: Progress) -> None:
            emit(JobMessage(JobEvent.PROGRESS, job, progress=clock.stamp(progress)))

        task = find_task(job.kind)
        context = TaskContext(report, cancelled, self.models, self.device(), output)
        if cancelled():
            raise Cancelled()
        return task(job, context)

    def _empty_device_cache(self) -> None:
        if self._device is not None:
            from studio.core.devices import empty_cache

            empty_cache(self._device.device)
