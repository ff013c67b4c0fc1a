"""The ComfyUI backend: one saved server (Settings › Servers), with the backend interface of base.py.

Built as `ComfyUIBackend(config, history)` like every kind in core/servers.py's KINDS. All ComfyUI servers of the
app join one `ComfyPool` (the shared queue, pool.py): a job submitted here may run on another server of the pool
that is less busy and has the model; its messages still come out of this backend, and its outputs' recipes name the
server that made them. Outputs are fetched and saved here — file, then history row — the moment each is finished.
"""

from __future__ import annotations

import asyncio

from PySide6.QtCore import QObject, Signal

from studio.backends.comfyui.pool import ComfyPool
from studio.core.jobs import Artifact, Capabilities, Job, ModelInfo
from studio.core.servers import ServerConfig

_shared_pool: ComfyPool | None = None


def shared_pool() -> ComfyPool:
    """The app's one pool (created on first use, on the GUI thread)."""
    global _shared_pool
    if _shared_pool is None:
        _shared_pool = ComfyPool()
    return _shared_pool


class ComfyUIBackend(QObject):
    message = Signal(object)  # JobMessage
    models_changed = Signal()

    def __init__(self, config: ServerConfig, history=None, pool: ComfyPool | None = None, token: str | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.config, self.history = config, history
        self.name = config.name
        self.pool = pool or shared_pool()
        self._token = token  # None: read from the keyring / token file when started
        self.pool.servers_changed.connect(self._on_servers_changed)

    # --- the backend interface ---------------------------------------------------------------

    def start(self) -> None:
        token = self._token
        if token is None:
            from studio.core.secrets import get_token

            token = get_token(self.name)
        self.pool.add_server(self.name, self.config.url, token)

    def stop(self) -> None:
        self.pool.drop_jobs_of(self, f"The server {self.name} was removed or switched off in Settings.")
        self.pool.remove_server(self.name)

    def submit(self, job: Job) -> Job:
        return self.pool.submit(job, self, self._save)

    def cancel(self, job_id: int | None = None) -> None:
        running, _waiting = self.pool.jobs_of(self)
        for job in running if job_id is None else [job_id]:
            self.pool.cancel(job if isinstance(job, int) else job.id)

    def force_stop(self) -> None:
        """A server can't be ended from here: its running prompt is interrupted (ComfyUI stops at the next step)."""
        self.cancel(None)

    def capabilities(self) -> Capabilities:
        return Capabilities(name=self.name, media=("image", "music"), local=False,
                            features=frozenset({"img2img", "inpaint", "lora", "clip_skip", "audio"}))

    def available_models(self) -> list[ModelInfo]:
        server = self.pool.server(self.name)
        return server.info.models(self.name) if server is not None and server.info is not None else []

    @property
    def running(self) -> Job | None:
        running, _waiting = self.pool.jobs_of(self)
        return running[0] if running else None

    def pending(self) -> list[Job]:
        return self.pool.jobs_of(self)[1]

    def status(self) -> str:
        server = self.pool.server(self.name)
        return server.reason if server is not None else "not started"

    # --- saving (on a worker thread of the network loop) --------------------------------------

    def _save(self, artifact: Artifact) -> None:
        if self.history is not None:
            self.history.save_artifact(artifact)

    def _on_servers_changed(self, name: str) -> None:
        if name == self.name:
            self.models_changed.emit()

    # --- Settings › Servers › Test connection -------------------------------------------------

    @classmethod
    def probe(cls, config: ServerConfig, token: str = "") -> str:
        """What "Test connection" shows: version, device, free VRAM, model counts. Blocking: call it off the GUI
        thread. Raises ConnectionError with one line saying what failed."""
        return asyncio.run(_probe(config.url, token))


async def _probe(url: str, token: str) -> str:
    from studio.backends.comfyui.http import Http, describe, new_session
    from studio.backends.comfyui.link import read_info

    try:
        async with new_session(token) as session:
            return (await read_info(Http(session, url))).report()
    except Exception as exc:  # noqa: BLE001 - any failure is the one line the dialog shows
        raise ConnectionError(f"{url}: {describe(exc)}") from None
