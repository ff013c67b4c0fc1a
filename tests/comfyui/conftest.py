"""Fixtures of the ComfyUI contract suite: servers (real or stand-in, see harness.py), a pool of backends over them,
and a way to run one job and keep every message it sent."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest

from studio.core.jobs import Job, JobEvent, JobMessage
from studio.core.recipe import Recipe
from studio.core.servers import ServerConfig
from studio.library.history import History
from tests.comfyui.harness import ServerProcess, target

TERMINAL = (JobEvent.FINISHED, JobEvent.FAILED, JobEvent.CANCELLED)
REAL = target() != "double"
STEPS = 2 if REAL else 4  # a full-size SD 1.5 on a shared 2-core CPU: seconds a step, even at 64 x 64
LONG_STEPS = 10 if REAL else 60  # long enough to cancel while it runs
JOB_TIMEOUT_MS = 600_000 if REAL else 30_000


@dataclass
class Watch:
    """Every message of the jobs a test submitted, in order."""

    messages: dict[int, list[JobMessage]] = field(default_factory=dict)

    def __call__(self, message: JobMessage) -> None:
        self.messages.setdefault(message.job_id, []).append(message)

    def events(self, job: Job) -> list[JobEvent]:
        return [m.event for m in self.messages.get(job.id, [])]

    def last(self, job: Job) -> JobMessage | None:
        return (self.messages.get(job.id) or [None])[-1]

    def ended(self, job: Job) -> bool:
        last = self.last(job)
        return last is not None and last.event in TERMINAL

    def outputs(self, job: Job) -> list:
        return [a for m in self.messages.get(job.id, []) if m.event == JobEvent.OUTPUT for a in m.result.artifacts]

    def previews(self, job: Job) -> list:
        return [m.progress.preview for m in self.messages.get(job.id, [])
                if m.event == JobEvent.PROGRESS and m.progress.preview is not None]


@pytest.fixture
def servers(tmp_path):
    """start(name) -> a running server; all are killed at the end. With COMFYUI_URL, the one given server."""
    started: list[ServerProcess] = []

    def start(name: str = "s1", step_delay: float = 0.05, token: str = "", tls=None) -> ServerProcess:
        if target() == "url":
            if started:
                pytest.skip("COMFYUI_URL names one server: tests that need two, or kill one, need COMFYUI_DIR")
            server = ServerProcess.__new__(ServerProcess)
            server.kind, server.process, server.token = "url", None, token
            server.port = int(os.environ["COMFYUI_URL"].rsplit(":", 1)[1].strip("/"))
            started.append(server)
            return server
        server = ServerProcess(tmp_path / f"server-{name}", step_delay=step_delay, token=token, tls=tls).start()
        started.append(server)
        return server

    yield start
    for server in started:
        if server.kind != "url":
            server.stop()


@pytest.fixture
def history(tmp_path):
    opened = History(tmp_path / "history.db", tmp_path / "outputs")
    yield opened
    opened.close()


@pytest.fixture
def pool(qtbot):
    from studio.backends.comfyui.pool import ComfyPool

    made = ComfyPool()
    yield made
    made.close()


@pytest.fixture
def connect(qtbot, pool, history):
    """connect(name, server) -> a started ComfyUIBackend of the pool, once its server answered; with a Watch."""
    from studio.backends.comfyui import ComfyUIBackend

    watch = Watch()
    made = []

    def connect_one(name: str, server: ServerProcess, token: str = "", wait: bool = True):
        backend = ComfyUIBackend(ServerConfig(name, "comfyui", server.url), history, pool=pool, token=token)
        backend.message.connect(watch)
        backend.start()
        made.append(backend)
        if wait:
            qtbot.waitUntil(lambda: bool(backend.available_models()), timeout=60_000)
        return backend

    connect_one.watch = watch
    yield connect_one
    for backend in made:
        backend.stop()


def image_checkpoint(backend) -> str:
    names = [m.ref for m in backend.available_models() if m.medium == "image" and not m.ref.startswith("broken")]
    assert names, "the server has no image checkpoint"
    return names[0]


def image_recipe(backend, **params) -> Recipe:
    values = {"width": 64, "height": 64, "steps": STEPS, "guidance": 7.0, "scheduler": "euler", "batch_count": 1,
              "backend": backend.name}
    values.update(params)
    seed = values.pop("seed", 11)
    prompt = values.pop("prompt", "a lighthouse at dusk")
    return Recipe("image", prompt=prompt, negative_prompt="blurry", model=values.pop("model", image_checkpoint(backend)),
                  seed=seed, params=values)


def run(qtbot, backend, watch: Watch, recipe: Recipe, wait: bool = True) -> Job:
    job = backend.submit(Job("image.generate", recipe))
    if wait:
        qtbot.waitUntil(lambda: watch.ended(job), timeout=JOB_TIMEOUT_MS)
    return job
