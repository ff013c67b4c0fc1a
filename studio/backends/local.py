"""The local engine's client: a QObject in the window's process that drives the engine process.

It keeps the queue itself and hands the engine one job at a time, so a crash or a Force stop never loses a queued
job: the engine restarts and the queue goes on. Messages arrive on a reader thread and are handed to the GUI
thread through a queued signal, in order; state handles them in its one place (`State.handle_message`).

Lifecycle: `start()` spawns the engine (right after the window is painted). If the engine dies, the running job
fails with a message naming it and the signal, a new engine starts, and the queue goes on. Cancel asks the engine
at the next step; `force_stop()` ends the engine process (for a call that never reaches a step: a long load, a big
decode) and restarts it. `free_memory()` restarts it so the memory really goes back to the system.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from dataclasses import replace

from PySide6.QtCore import QObject, QTimer, Signal

from studio.backends.base import Capabilities, ModelInfo
from studio.backends.engine_process import EngineConfig, serve
from studio.core.jobs import Job, JobEvent, JobMessage

log = logging.getLogger(__name__)
FORCE_STOP_AFTER_MS = 2000  # a cancel not answered by then offers Force stop (a step is well under this on CPU)
STOP_WAIT_S = 5.0  # on quit: how long the engine may take to finish its step before it is ended


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"signal {-code}, {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _title(job: Job) -> str:
    medium = job.recipe.modality if job.recipe else job.kind.split(".")[0]
    prompt = " ".join((job.recipe.prompt if job.recipe else "").split())
    return f"{medium}: {prompt[:40] or job.kind}"


class LocalEngine(QObject):
    """The backend that runs jobs on this machine, in the engine process."""

    message = Signal(object)  # JobMessage, delivered on the GUI thread
    cancel_unanswered = Signal(object)  # Job: a cancel got no answer within FORCE_STOP_AFTER_MS
    engine_restarted = Signal(str)  # why
    _received = Signal(int, object)  # (generation, JobMessage | exit code): reader thread -> GUI thread

    def __init__(self, config: EngineConfig | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.config = config or EngineConfig()
        self._queue: deque[Job] = deque()
        self._current: Job | None = None
        self._cancel_asked: int | None = None
        self._process = None
        self._commands = None
        self._generation = 0
        self._ready = False
        self._stopping = False
        self._restart_when_idle = False
        self.started_at = 0.0
        self.ready_at = 0.0
        self._received.connect(self._on_received)

    # --- the backend interface ---------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        return Capabilities(name="This computer", media=("image", "text", "music", "latent"), local=True)

    def available_models(self) -> list[ModelInfo]:
        """The built-in models (the pickers add the user's own folders and files through the catalog)."""
        from studio.core import catalog

        return [ModelInfo(m["id"], m.get("modality", ""), m.get("name", m["id"]), where="This computer")
                for m in catalog.read_catalog() if m.get("builtin")]

    def submit(self, job: Job) -> Job:
        if job.supersede_key is not None:
            for old in [j for j in self._queue if j.supersede_key == job.supersede_key]:
                self._queue.remove(old)
                self.message.emit(JobMessage(JobEvent.SUPERSEDED, old))
        self._queue.append(job)
        self.message.emit(JobMessage(JobEvent.QUEUED, job))
        self._dispatch()
        return job

    def cancel(self, job_id: int | None = None) -> None:
        """Cancel one job (queued or running); with no id, the running one."""
        current = self._current
        if job_id is None or (current is not None and current.id == job_id):
            if current is not None and self._commands is not None:
                self._cancel_asked = current.id
                self._send(("cancel", current.id))
                QTimer.singleShot(FORCE_STOP_AFTER_MS, lambda job=current: self._check_cancel_answered(job))
            return
        for job in list(self._queue):
            if job.id == job_id:
                self._queue.remove(job)
                self.message.emit(JobMessage(JobEvent.CANCELLED, job))

    def cancel_all(self) -> None:
        dropped, self._queue = list(self._queue), deque()
        for job in dropped:
            self.message.emit(JobMessage(JobEvent.CANCELLED, job))
        self.cancel()

    def force_stop(self) -> None:
        """End the engine process now (the running job is cancelled; queued jobs stay queued) and restart it."""
        job = self._current
        self._current = None
        self._restart("force stop")
        if job is not None:
            self.message.emit(JobMessage(JobEvent.CANCELLED, job, error="Force stopped: the engine was restarted."))

    def free_memory(self) -> None:
        """Restart the engine so its memory goes back to the system (after the running job, if one runs)."""
        if self._current is None:
            self._restart("free memory")
        else:
            self._restart_when_idle = True

    def set_device_override(self, override: str) -> None:
        self.config = replace(self.config, device_override=override)
        self.submit(Job("worker.reset_device", args={"device": override}, save=False))

    def set_outputs_dir(self, folder: str) -> None:
        """Where the engine writes new outputs (Settings › Output folder)."""
        self.config = replace(self.config, outputs_dir=str(folder))
        self._send(("outputs", str(folder)))

    def pending(self) -> list[Job]:
        return list(self._queue)

    @property
    def running(self) -> Job | None:
        return self._current

    # --- process lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        import multiprocessing  # ~10 ms: not on the way to the first painted window (start() runs after it)

        context = multiprocessing.get_context("spawn")
        commands_child, commands_parent = context.Pipe(duplex=False)
        messages_parent, messages_child = context.Pipe(duplex=False)
        self._generation += 1
        self._ready = False
        self.started_at = time.perf_counter()
        self._process = context.Process(target=serve, args=(commands_child, messages_child, self.config),
                                        name="latent-studio-engine", daemon=True)
        self._process.start()
        commands_child.close()
        messages_child.close()  # so the reader sees EOF when the engine dies
        self._commands = commands_parent
        reader = threading.Thread(target=self._read, args=(messages_parent, self._generation, self._process),
                                  name="engine-reader", daemon=True)
        reader.start()

    def stop(self, wait_s: float = STOP_WAIT_S) -> None:
        self._stopping = True
        self._queue.clear()
        process = self._process
        if process is None:
            return
        self._send(("cancel", None))
        self._send(("stop",))
        process.join(wait_s)
        if process.is_alive():
            process.kill()
            process.join(1.0)
        self._process = None

    def _restart(self, reason: str) -> None:
        process = self._process
        self._generation += 1  # messages still in flight from the old engine are ignored
        if process is not None and process.is_alive():
            process.kill()
            process.join(2.0)
        self._process = None
        self.start()
        self.engine_restarted.emit(reason)

    def _read(self, connection, generation: int, process) -> None:
        """Reader thread: every message from the engine, then its exit code when the pipe closes."""
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):
                process.join(5.0)
                self._hand_over(generation, process.exitcode if process.exitcode is not None else -1)
                return
            except Exception as exc:  # noqa: BLE001 - a message that can't be read must not end the reader
                log.error("engine message unreadable: %s", exc)
                continue
            if not self._hand_over(generation, message):
                return

    def _hand_over(self, generation: int, message) -> bool:
        """Queue a message for the GUI thread; False once this object is gone (the window closed while the engine
        still spoke: the last messages have no one to go to, and a traceback at exit would only alarm)."""
        try:
            self._received.emit(generation, message)
        except RuntimeError:  # "Signal source has been deleted"
            return False
        return True

    # --- on the GUI thread ---------------------------------------------------------------------

    def _on_received(self, generation: int, message) -> None:
        if generation != self._generation:
            return
        if isinstance(message, int):
            self._engine_died(message)
            return
        if message.job.kind == "engine.ready":
            self._ready = True
            self.ready_at = time.perf_counter()
            self._dispatch()
            return
        terminal = message.event in (JobEvent.FINISHED, JobEvent.FAILED, JobEvent.CANCELLED)
        if terminal and self._current is not None and message.job.id == self._current.id:
            self._current = None
        if terminal:
            if self._restart_when_idle:
                self._restart_when_idle = False
                self._restart("free memory")
            # The next job goes out before the window handles this one's end, so the engine draws while the
            # window paints (Live: one picture being shown, the next already being drawn).
            self._dispatch()
        self.message.emit(message)

    def _engine_died(self, exit_code: int) -> None:
        if self._stopping:
            return
        job, self._current = self._current, None
        how = _describe_exit(exit_code)
        log.error("engine process ended (%s) while running %s", how, job.kind if job else "nothing")
        self._restart(f"the engine stopped ({how})")
        if job is not None:
            error = (f"The engine stopped while running '{_title(job)}' ({how}). It has restarted; finished outputs "
                     "are safe.")
            self.message.emit(JobMessage(JobEvent.FAILED, job, error=error))

    def _dispatch(self) -> None:
        if self._current is not None or not self._ready or not self._queue or self._stopping:
            return
        self._current = self._queue.popleft()
        self._cancel_asked = None
        self._send(("run", self._current))

    def _send(self, command) -> None:
        try:
            if self._commands is not None:
                self._commands.send(command)
        except (OSError, ValueError) as exc:  # the engine is gone: its death is being handled
            log.warning("engine command %s not sent: %s", command[0], exc)

    def _check_cancel_answered(self, job: Job) -> None:
        if self._current is not None and self._current.id == job.id and self._cancel_asked == job.id:
            self.cancel_unanswered.emit(job)
