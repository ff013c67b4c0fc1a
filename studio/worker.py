"""The one background thread that runs every job: the only bridge between Qt and the engine.

A FIFO queue, one job at a time (one GPU, one job). Each job's task gets `report()` and
`cancelled()`; every event becomes a `JobMessage` emitted on `message`, which Qt delivers to
the GUI thread through a queued connection. A failing job becomes a `failed` message and
the thread goes on serving the queue. Results are written to disk and history here, before
the `finished` message leaves, so a crash after that point loses nothing.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import deque
from dataclasses import replace

from PySide6.QtCore import QThread, Signal

from studio.core.jobs import Cancelled, Job, JobEvent, JobMessage, Progress, Result, TaskContext, UserError
from studio.core.model_cache import ModelCache
from studio.core.tasks import find_task

log = logging.getLogger(__name__)


def save_with_lineage(history, artifacts) -> None:
    """Save in order; an artifact naming earlier siblings as parents gets their history ids."""
    for artifact in artifacts:
        siblings = artifact.info.get("parent_artifacts")
        if siblings:
            ids = tuple(artifacts[i].entry_id for i in siblings if artifacts[i].entry_id is not None)
            artifact.recipe = replace(artifact.recipe, parents=ids)
        history.save_artifact(artifact)


class Worker(QThread):
    message = Signal(object)  # JobMessage

    def __init__(self, history=None, device_override: str = "auto", parent=None) -> None:
        super().__init__(parent)
        self.history = history
        self.device_override = device_override
        self.models = ModelCache(on_free=self._empty_device_cache)
        self._queue: deque[Job] = deque()
        self._lock = threading.Condition()
        self._current: Job | None = None
        self._cancel_current = threading.Event()
        self._stopping = False
        self._device = None

    # --- called from the GUI thread ------------------------------------------------------

    def submit(self, job: Job) -> Job:
        superseded: list[Job] = []
        with self._lock:
            if job.supersede_key is not None:
                superseded = [j for j in self._queue if j.supersede_key == job.supersede_key]
                for old in superseded:
                    self._queue.remove(old)
            self._queue.append(job)
            self._lock.notify()
        for old in superseded:
            self.message.emit(JobMessage(JobEvent.SUPERSEDED, old))
        self.message.emit(JobMessage(JobEvent.QUEUED, job))
        return job

    def cancel(self, job_id: int | None = None) -> None:
        """Cancel one job (queued or running); with no id, the running one."""
        removed = None
        with self._lock:
            current = self._current
            if job_id is None or (current is not None and current.id == job_id):
                if current is not None:
                    self._cancel_current.set()
                return
            for job in self._queue:
                if job.id == job_id:
                    removed = job
                    self._queue.remove(job)
                    break
        if removed is not None:
            self.message.emit(JobMessage(JobEvent.CANCELLED, removed))

    def cancel_all(self) -> None:
        with self._lock:
            dropped = list(self._queue)
            self._queue.clear()
            if self._current is not None:
                self._cancel_current.set()
        for job in dropped:
            self.message.emit(JobMessage(JobEvent.CANCELLED, job))

    def set_device_override(self, override: str) -> None:
        """Takes effect at the next job; loaded models are freed so they reload on the new device."""
        with self._lock:
            self.device_override = override
            self._device = None
        self.submit(Job("worker.reset_device", save=False))

    def pending(self) -> list[Job]:
        with self._lock:
            return list(self._queue)

    def stop(self, wait_ms: int = 10000) -> None:
        with self._lock:
            self._stopping = True
            self._queue.clear()
            self._cancel_current.set()
            self._lock.notify()
        self.wait(wait_ms)

    # --- the worker thread ---------------------------------------------------------------

    def run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                job = self._queue.popleft()
                self._current = job
                self._cancel_current.clear()
            try:
                self._run_one(job)
            finally:
                with self._lock:
                    self._current = None

    def _run_one(self, job: Job) -> None:
        started = time.perf_counter()
        self.message.emit(JobMessage(JobEvent.STARTED, job))

        phase: dict = {}  # the first report of the current phase (same total): where the rate counts from

        def report(progress: Progress) -> None:
            now = time.perf_counter()
            if phase.get("total") != progress.total or progress.step < phase.get("step", 0):
                phase.update(total=progress.total, step=progress.step, at=now)
            done, spent = progress.step - phase["step"], now - phase["at"]
            rate = done / spent if done > 0 and spent > 0 else 0.0
            stamped = Progress(progress.step, progress.total, progress.preview, progress.message, now - started, rate)
            self.message.emit(JobMessage(JobEvent.PROGRESS, job, progress=stamped))

        try:
            if job.kind == "worker.reset_device":
                self.models.clear()
                result = Result(value=self.device())
            else:
                task = find_task(job.kind)
                context = TaskContext(report, self._cancel_current.is_set, self.models, self.device())
                if self._cancel_current.is_set():
                    raise Cancelled()
                result = task(job, context)
                if job.save and self.history is not None:
                    save_with_lineage(self.history, result.artifacts)
            result.info.setdefault("seconds", time.perf_counter() - started)
        except Cancelled as stop:
            kept = Result(artifacts=stop.partial) if stop.partial else None
            if kept is not None and job.save and self.history is not None:
                save_with_lineage(self.history, kept.artifacts)
            self.message.emit(JobMessage(JobEvent.CANCELLED, job, result=kept))
        except UserError as exc:
            self.message.emit(JobMessage(JobEvent.FAILED, job, error=str(exc)))
        except Exception as exc:  # a broken job must never take the worker down
            log.error("job %s (%s) failed:\n%s", job.id, job.kind, traceback.format_exc())
            self.message.emit(JobMessage(JobEvent.FAILED, job, error=f"{type(exc).__name__}: {exc}"))
        else:
            self.message.emit(JobMessage(JobEvent.FINISHED, job, result=result))

    def device(self):
        if self._device is None:
            from studio.core.devices import pick_device

            self._device = pick_device(self.device_override)
        return self._device

    def _empty_device_cache(self) -> None:
        if self._device is not None:
            from studio.core.devices import empty_cache

            empty_cache(self._device.device)
