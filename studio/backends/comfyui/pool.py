"""Several ComfyUI servers sharing one queue.

The pool keeps the queue on the GUI thread and gives each job to the least busy connected server that has its
checkpoint (and LoRAs): fewest of our prompts in flight there, the server the recipe names winning a tie. A server
holds at most PREFETCH of our prompts (one running, one waiting on the server, so it never idles between jobs). A
server that goes away fails the job it was running (finished outputs stay saved), hands back the prompts it had not
started, and reconnects with backoff while the queue goes on elsewhere. A job no server could ever run fails at once;
one waiting for a server to come back fails after WAIT_FOR_SERVER_S.

The connections live in one asyncio event loop on a thread of its own (network I/O never runs on the GUI thread);
what they report comes back as one queued Qt signal, in order.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QTimer, Signal

from studio.backends.comfyui.info import ServerInfo
from studio.backends.comfyui.workflow import audio_kind, missing_loras
from studio.core.jobs import Job, JobEvent, JobMessage, Progress

PREFETCH = 2
WAIT_FOR_SERVER_S = 60.0
JOB_KINDS = ("image.generate", "music.generate")  # what a workflow is built for (X/Y plots, travels: this computer)


@dataclass
class Waiting:
    job: Job
    owner: object  # the ComfyUIBackend the job was submitted to: its messages go out through it
    save: object
    since: float = field(default_factory=time.monotonic)
    server: str = ""  # where it runs, once dispatched


@dataclass
class Server:
    name: str
    link: object
    future: object = None
    up: bool = False
    info: ServerInfo | None = None
    reason: str = "connecting…"
    inflight: list[int] = field(default_factory=list)
    up_at: float = 0.0

    def lacks(self, job: Job) -> str:
        """What this server lacks for the job, in words ("" when nothing)."""
        if self.info is None or job.recipe is None:
            return "has not answered yet"
        if job.recipe.model not in self.info.folders.get("checkpoints", []):
            return f"has no checkpoint '{job.recipe.model}'"
        missing = missing_loras(job.recipe, self.info.folders.get("loras", [])) if job.recipe.modality == "image" else []
        return f"has no LoRA {', '.join(repr(m) for m in missing)}" if missing else ("" if self.can_run(job) else
                                                                                  "has no nodes for this audio model")

    def can_run(self, job: Job) -> bool:
        """Whether this server (as last seen) has what the job needs."""
        if self.info is None or job.recipe is None or job.recipe.model not in self.info.folders.get("checkpoints", []):
            return False
        if job.recipe.modality == "image":
            return not missing_loras(job.recipe, self.info.folders.get("loras", []))
        return audio_kind(job.recipe.model, set(self.info.nodes), self.info.folders.get("text_encoders", [])) is not None


class EventLoopThread:
    """One asyncio loop on a daemon thread; coroutines are handed to it from the GUI thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="comfyui-network", daemon=True)
        self.thread.start()

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)


class ComfyPool(QObject):
    servers_changed = Signal(str)  # a server connected, went away, was added or removed
    _received = Signal(object)  # network thread -> GUI thread

    def __init__(self, parent: QObject | None = None, prefetch: int = PREFETCH) -> None:
        super().__init__(parent)
        self.prefetch = prefetch
        self.servers: dict[str, Server] = {}
        self.queue: deque[Waiting] = deque()
        self.active: dict[int, Waiting] = {}
        self._network: EventLoopThread | None = None
        self._received.connect(self._on_received)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._fail_stale)
        self._timer.start(2000)

    @property
    def network(self) -> EventLoopThread:
        if self._network is None:
            self._network = EventLoopThread()
        return self._network

    # --- servers -----------------------------------------------------------------------------

    def add_server(self, name: str, url: str, token: str) -> None:
        from studio.backends.comfyui.link import Link

        self.remove_server(name)
        link = Link(name, url, token, self._received.emit)
        server = self.servers[name] = Server(name, link)
        server.future = self.network.call(link.serve())
        self.servers_changed.emit(name)

    def remove_server(self, name: str) -> None:
        server = self.servers.pop(name, None)
        if server is None:
            return
        server.future.cancel()  # thread-safe: the link's task ends, saying so to its jobs
        self.servers_changed.emit(name)

    def server(self, name: str) -> Server | None:
        return self.servers.get(name)

    # --- jobs --------------------------------------------------------------------------------

    def submit(self, job: Job, owner, save) -> Job:
        waiting = Waiting(job, owner, save)
        owner.message.emit(JobMessage(JobEvent.QUEUED, job))
        if job.kind not in JOB_KINDS:
            title = job.kind.split(".", 1)[-1].replace("_", " ")
            self._end(waiting, JobEvent.FAILED, error=f"A ComfyUI server makes pictures and audio; the {title} runs on "
                      "this computer: pick a model on this computer for it.")
            return job
        if not any(s.can_run(job) or s.info is None for s in self.servers.values()):
            self._end(waiting, JobEvent.FAILED, error=self._nowhere(job))
            return job
        self.queue.append(waiting)
        self._dispatch()
        return job

    def cancel(self, job_id: int) -> None:
        for waiting in list(self.queue):
            if waiting.job.id == job_id:
                self.queue.remove(waiting)
                self._end(waiting, JobEvent.CANCELLED)
                return
        waiting = self.active.get(job_id)
        server = self.servers.get(waiting.server) if waiting else None
        if server is not None:
            self.network.call(server.link.cancel(job_id))

    def jobs_of(self, owner) -> tuple[list[Job], list[Job]]:
        """(running on a server, waiting in the queue) of one backend."""
        return ([w.job for w in self.active.values() if w.owner is owner],
                [w.job for w in self.queue if w.owner is owner])

    def drop_jobs_of(self, owner, reason: str) -> None:
        """A backend going away (its server removed): its jobs end now, with the reason."""
        for waiting in [w for w in self.queue if w.owner is owner]:
            self.queue.remove(waiting)
            self._end(waiting, JobEvent.CANCELLED, error=reason)
        for job_id, waiting in list(self.active.items()):
            if waiting.owner is owner:
                self.cancel(job_id)
                self.active.pop(job_id, None)
                self._end(waiting, JobEvent.CANCELLED, error=reason)

    def _dispatch(self) -> None:
        order = list(self.servers)
        for waiting in list(self.queue):
            preferred = waiting.job.recipe.param("backend") if waiting.job.recipe else ""
            free = [s for s in self.servers.values() if s.up and len(s.inflight) < self.prefetch and s.can_run(waiting.job)]
            if not free:
                continue
            server = min(free, key=lambda s: (len(s.inflight), s.name != preferred, order.index(s.name)))
            self.queue.remove(waiting)
            waiting.server = server.name
            server.inflight.append(waiting.job.id)
            self.active[waiting.job.id] = waiting
            self.network.call(server.link.run_job(waiting.job, waiting.save))

    def _nowhere(self, job: Job) -> str:
        seen = "; ".join(f"{s.name} {s.lacks(job) if s.info else s.reason}" for s in self.servers.values())
        return f"No ComfyUI server can run this job: {seen or 'none is added (Settings › Servers)'}."

    def _fail_stale(self) -> None:
        now = time.monotonic()
        for waiting in list(self.queue):
            if now - waiting.since > WAIT_FOR_SERVER_S and not any(s.up and s.can_run(waiting.job)
                                                                     for s in self.servers.values()):
                self.queue.remove(waiting)
                self._end(waiting, JobEvent.FAILED, error=f"Waited {WAIT_FOR_SERVER_S:.0f} s for a server. "
                          + self._nowhere(waiting.job))

    # --- what the network thread reports (on the GUI thread, in order) -------------------------

    def _on_received(self, event: tuple) -> None:
        kind = event[0]
        if kind == "link":
            self._on_link(*event[1:])
            return
        waiting = self.active.get(event[1])
        if waiting is None:
            return  # a job already ended here (its backend removed, force-stopped)
        if kind == "started":
            waiting.owner.message.emit(JobMessage(JobEvent.STARTED, waiting.job))
            waiting.owner.message.emit(JobMessage(JobEvent.PROGRESS, waiting.job,
                                                  progress=Progress(0, 1, message=f"on {event[2]}")))
        elif kind == "progress":
            waiting.owner.message.emit(JobMessage(JobEvent.PROGRESS, waiting.job, progress=event[2]))
        elif kind == "output":
            from studio.core.jobs import Result

            waiting.owner.message.emit(JobMessage(JobEvent.OUTPUT, waiting.job, result=Result([event[2]])))
        elif kind in ("end", "requeue"):
            self.active.pop(waiting.job.id, None)
            server = self.servers.get(waiting.server)
            if server is not None and waiting.job.id in server.inflight:
                server.inflight.remove(waiting.job.id)
            if kind == "requeue":
                waiting.server = ""
                self.queue.appendleft(waiting)
            else:
                self._end(waiting, event[2], result=event[3], error=event[4])
            self._dispatch()

    def _on_link(self, name: str, state: str, payload) -> None:
        server = self.servers.get(name)
        if server is None:
            return
        server.up = state == "up"
        if server.up:
            server.info, server.reason, server.up_at = payload, "connected", time.perf_counter()
        else:
            server.reason = f"reconnecting: {payload}"
        self.servers_changed.emit(name)
        self._dispatch()

    def _end(self, waiting: Waiting, event: JobEvent, result=None, error: str = "") -> None:
        waiting.owner.message.emit(JobMessage(event, waiting.job, result=result, error=error))

    def close(self) -> None:
        for name in list(self.servers):
            self.remove_server(name)
        self._timer.stop()
