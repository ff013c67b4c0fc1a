"""The engine on a thread of this process: the same JobRunner as the engine process, without the process.

Used by tests that script fake tasks in this process, by benchmarks that compare the two, and as the fallback
`LATENT_STUDIO_ENGINE=thread`. A FIFO queue, one job at a time; every event becomes a `JobMessage` emitted on
`message`, which Qt delivers to the GUI thread through a queued connection. It cannot Force stop (a thread can't
be killed): `force_stop` cancels at the next step.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

from PySide6.QtCore import QThread, Signal

from studio.backends.base import Capabilities, ModelInfo
from studio.backends.runner import JobRunner
from studio.core.jobs import Job, JobEvent, JobMessage


class ThreadEngine(QThread):
    message = Signal(object)  # JobMessage
    cancel_unanswered = Signal(object)  # never emitted here: kept so state can connect to any backend alike

    def __init__(self, history=None, device_override: str = "auto", parent=None) -> None:
        super().__init__(parent)
        self.runner = JobRunner(history, device_override)
        self._queue: deque[Job] = deque()
        self._lock = threading.Condition()
        self._current: Job | None = None
        self._cancel_current = threading.Event()
        self._stopping = False

    @property
    def history(self):
        return self.runner.history

    @property
    def models(self):
        return self.runner.models

    def capabilities(self) -> Capabilities:
        return Capabilities(name="This computer (in-process)", media=("image", "text", "music", "latent"), local=True)

    def available_models(self) -> list[ModelInfo]:
        return []

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

    def force_stop(self) -> None:
        self.cancel()

    def free_memory(self) -> None:
        self.submit(Job("worker.reset_device", args={"device": self.runner.device_override}, save=False))

    def set_device_override(self, override: str) -> None:
        """Takes effect at the next job; loaded models are freed so they reload on the new device."""
        self.submit(Job("worker.reset_device", args={"device": override}, save=False))

    def set_outputs_dir(self, folder: str) -> None:
        if self.runner.history is not None:
            self.runner.history.outputs_dir = Path(folder)

    def pending(self) -> list[Job]:
        with self._lock:
            return list(self._queue)

    @property
    def running(self) -> Job | None:
        return self._current

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
                self.runner.run(job, self.message.emit, self._cancel_current.is_set)
            finally:
                with self._lock:
                    self._current = None

    def device(self):
        return self.runner.device()
