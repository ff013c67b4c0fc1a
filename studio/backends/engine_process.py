"""The engine process: owns the models, the device and the model cache, and runs one job at a time.

Started by `LocalEngine` (local.py) with multiprocessing's spawn method, so it is a fresh interpreter that never
imports Qt; torch, diffusers and transformers load here, not in the window's process. It talks over two pipes:
- commands in (a listener thread reads them, so a cancel arrives while a job runs): ("run", job),
  ("cancel", job_id), ("device", override), ("outputs", folder), ("stop",);
- `JobMessage`s out, in the order they happen. Each output is saved to disk and history here, the moment it is
  finished, so a crash of either process loses nothing finished.
A segfault, an abort or the OOM killer ends only this process; the client sees the pipe close, tells the user
which job was running, and starts a new engine.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

from studio.core.jobs import Job, JobEvent, JobMessage, Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    """What the engine process needs to start: all plain values (they cross the process boundary)."""

    history_db: str | None = None  # None: outputs are not saved (tests, throwaway runs)
    outputs_dir: str | None = None
    device_override: str = "auto"
    extra_tasks: dict[str, str] = field(default_factory=dict)  # job kind -> "module:function" (tests)
    threads: int | None = None  # torch threads; None: torch's own choice
    environment: dict[str, str] = field(default_factory=dict)  # e.g. LATENT_STUDIO_HOME for the child


class _Commands:
    """Reads the command pipe on its own thread: jobs go into a queue, a cancel flips the running job's flag."""

    def __init__(self, connection) -> None:
        self.connection = connection
        self.jobs: queue.Queue = queue.Queue()
        self.running_id: int | None = None
        self.cancel = threading.Event()
        self.lock = threading.Lock()

    def listen(self) -> None:
        while True:
            try:
                command = self.connection.recv()
            except (EOFError, OSError):  # the window's process went away: stop too
                self.jobs.put(("stop",))
                return
            if command[0] == "cancel":
                with self.lock:
                    if self.running_id is not None and command[1] in (None, self.running_id):
                        self.cancel.set()
            else:
                self.jobs.put(command)
                if command[0] == "stop":
                    return

    def start_job(self, job: Job) -> None:
        with self.lock:
            self.running_id = job.id
            self.cancel.clear()

    def end_job(self) -> None:
        with self.lock:
            self.running_id = None


def _open_history(config: EngineConfig):
    if config.history_db is None:
        return None
    from studio.library.history import History

    return History(Path(config.history_db), Path(config.outputs_dir or Path(config.history_db).parent / "outputs"))


def serve(commands_in, messages_out, config: EngineConfig) -> None:
    """The engine process's main loop (the spawn target)."""
    os.environ.update(config.environment)
    if config.threads:
        os.environ.setdefault("OMP_NUM_THREADS", str(config.threads))
    from studio.backends.runner import JobRunner
    from studio.core import tasks

    for kind, target in config.extra_tasks.items():
        tasks.register(kind, target)
    runner = JobRunner(_open_history(config), config.device_override)
    commands = _Commands(commands_in)
    threading.Thread(target=commands.listen, name="engine-commands", daemon=True).start()
    send_lock = threading.Lock()

    def emit(message: JobMessage) -> None:
        with send_lock:
            try:
                messages_out.send(message)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:  # a result that can't cross
                log.error("job %s: %s message can't be sent: %s", message.job.id, message.event.value, exc)
                if message.event != JobEvent.PROGRESS:
                    messages_out.send(JobMessage(JobEvent.FAILED, message.job,
                                                 error=f"the engine's result could not be sent to the window ({exc})"))

    emit(JobMessage(JobEvent.PROGRESS, Job("engine.ready", save=False), progress=Progress(1, 1, None, "ready")))
    while True:
        command = commands.jobs.get()
        if command[0] == "stop":
            return
        if command[0] == "device":
            runner.set_device_override(command[1])
            continue
        if command[0] == "outputs":
            if runner.history is not None:
                runner.history.outputs_dir = Path(command[1])
            continue
        job = command[1]
        commands.start_job(job)
        try:
            runner.run(job, emit, commands.cancel.is_set)
        finally:
            commands.end_job()
