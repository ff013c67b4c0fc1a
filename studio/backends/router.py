"""Several backends behind one: this computer's engine and any servers (ComfyUI, OpenAI-compatible text).

`Backends` has the interface of one backend (base.py), so state and panels see no difference: a job goes to the
backend its recipe names in the `backend` param ("" or absent: this computer), and every backend's messages come
out of one `message` signal, in each backend's order. A job for a server that is not connected fails at once
with a message saying so, instead of waiting forever.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from studio.core.jobs import Capabilities, Job, JobEvent, JobMessage, ModelInfo

TERMINAL = (JobEvent.FINISHED, JobEvent.FAILED, JobEvent.CANCELLED, JobEvent.SUPERSEDED)


def backend_name(job: Job) -> str:
    """The server a job asks for ("" = this computer): its recipe's `backend` param, else its args'."""
    name = job.recipe.param("backend") if job.recipe is not None else None
    return str(name or job.args.get("backend") or "")


class Backends(QObject):
    message = Signal(object)  # JobMessage from any backend
    cancel_unanswered = Signal(object)  # Job: the local engine didn't answer a cancel in time
    models_changed = Signal()  # a backend's model list changed (a server connected, went away, was added)

    def __init__(self, local, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.local = local
        self.remote: dict[str, object] = {}
        self._owner: dict[int, object] = {}  # job id -> the backend running it
        self._connect(local)
        if hasattr(local, "cancel_unanswered"):
            local.cancel_unanswered.connect(self.cancel_unanswered)

    # --- which backends -------------------------------------------------------------------------

    def add(self, name: str, backend, start: bool = True) -> None:
        """Run jobs whose recipe names `name` on `backend` (a server); replaces a backend of that name."""
        self.remove(name)
        self.remote[name] = backend
        self._connect(backend)
        if start:
            backend.start()
        self.models_changed.emit()

    def remove(self, name: str) -> None:
        backend = self.remote.pop(name, None)
        if backend is None:
            return
        backend.stop()
        backend.message.disconnect(self._forward)
        if hasattr(backend, "models_changed"):
            backend.models_changed.disconnect(self.models_changed)
        self.models_changed.emit()

    def all(self) -> list:
        return [self.local, *self.remote.values()]

    def _connect(self, backend) -> None:
        backend.message.connect(self._forward)
        if hasattr(backend, "models_changed"):
            backend.models_changed.connect(self.models_changed)

    def _forward(self, message: JobMessage) -> None:
        if message.event in TERMINAL:
            self._owner.pop(message.job_id, None)
        self.message.emit(message)

    # --- the backend interface ------------------------------------------------------------------

    def submit(self, job: Job) -> Job:
        name = backend_name(job)
        backend = self.remote.get(name) if name else self.local
        if backend is None:
            self.message.emit(JobMessage(JobEvent.QUEUED, job))
            known = ", ".join(sorted(self.remote)) or "none"
            self.message.emit(JobMessage(JobEvent.FAILED, job, error=(
                f"The server '{name}' is not connected (connected: {known}). Add it in Settings › Servers, or pick a "
                "model on this computer.")))
            return job
        self._owner[job.id] = backend
        return backend.submit(job)

    def cancel(self, job_id: int | None = None) -> None:
        """One job wherever it runs; with no id, the running job of every backend (Esc)."""
        if job_id is None:
            for backend in self.all():
                backend.cancel(None)
            return
        self._owner.get(job_id, self.local).cancel(job_id)

    def force_stop(self) -> None:
        for backend in self.all():
            if getattr(backend, "running", None) is not None:
                backend.force_stop()

    def capabilities(self) -> Capabilities:
        media = tuple(dict.fromkeys(m for b in self.all() for m in b.capabilities().media))
        return Capabilities(name="all backends", media=media, local=True)

    def available_models(self) -> list[ModelInfo]:
        return [model for backend in self.all() for model in backend.available_models()]

    def start(self) -> None:
        for backend in self.all():
            backend.start()

    def stop(self) -> None:
        for backend in self.all():
            backend.stop()

    # --- this computer's engine (Settings and Engine menus) --------------------------------------

    @property
    def running(self) -> Job | None:
        return getattr(self.local, "running", None)

    def pending(self) -> list[Job]:
        return [job for backend in self.all() for job in getattr(backend, "pending", list)()]

    def set_device_override(self, override: str) -> None:
        self.local.set_device_override(override)

    def set_outputs_dir(self, folder: str) -> None:
        for backend in self.all():
            if hasattr(backend, "set_outputs_dir"):
                backend.set_outputs_dir(folder)

    def free_memory(self) -> None:
        self.local.free_memory()
