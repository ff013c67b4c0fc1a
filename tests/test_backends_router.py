"""Backends: jobs go to the backend their recipe names, messages come back through one signal, and the servers'
models reach the pickers."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from studio.backends.router import Backends
from studio.core.jobs import Capabilities, Job, JobEvent, JobMessage, ModelInfo, Result
from studio.core.recipe import Recipe
from studio.state import State


class ScriptedBackend(QObject):
    """A backend that finishes every job at once and remembers what it was asked."""

    message = Signal(object)
    models_changed = Signal()

    def __init__(self, name: str, models=(), finish: bool = True) -> None:
        super().__init__()
        self.name, self.models, self.finish = name, list(models), finish
        self.submitted: list[Job] = []
        self.cancelled: list[int | None] = []
        self.started = self.stopped = 0
        self.running = None

    def submit(self, job: Job) -> Job:
        self.submitted.append(job)
        self.message.emit(JobMessage(JobEvent.QUEUED, job))
        if self.finish:
            self.message.emit(JobMessage(JobEvent.FINISHED, job, result=Result(info={"ran_on": self.name})))
        return job

    def cancel(self, job_id=None) -> None:
        self.cancelled.append(job_id)

    def force_stop(self) -> None:
        pass

    def capabilities(self) -> Capabilities:
        return Capabilities(self.name, media=("image",))

    def available_models(self) -> list[ModelInfo]:
        return self.models

    def start(self) -> None:
        self.started += 1

    def stop(self) -> None:
        self.stopped += 1


def image_job(backend: str = "") -> Job:
    return Job("image.generate", Recipe(modality="image", prompt="x", params={"backend": backend}))


def wired(qtbot):
    local, remote = ScriptedBackend("local"), ScriptedBackend("gpu-box", [ModelInfo("sd15.safetensors", "image",
                                                                                    "sd15", where="gpu-box")])
    backends = Backends(local)
    state = State()
    backends.message.connect(state.handle_message)
    backends.models_changed.connect(lambda: state.set_backend_models(backends.available_models()))
    state.submit_requested.connect(backends.submit)
    return local, remote, backends, state


def test_a_job_runs_where_its_recipe_says_and_its_messages_reach_state(qtbot):
    local, remote, backends, state = wired(qtbot)
    backends.add("gpu-box", remote)
    assert remote.started == 1
    here, there = state.submit(image_job("")), state.submit(image_job("gpu-box"))
    assert local.submitted == [here] and remote.submitted == [there]
    assert state.jobs[there.id].status == JobEvent.FINISHED
    assert state.jobs[there.id].result.info["ran_on"] == "gpu-box"
    remote.finish = False
    waiting = state.submit(image_job("gpu-box"))
    backends.cancel(waiting.id)  # goes to the server that has it
    backends.cancel(None)  # Esc: every backend's running job
    assert remote.cancelled == [waiting.id, None] and local.cancelled == [None]


def test_a_job_for_a_server_that_is_not_connected_fails_at_once_with_its_name(qtbot):
    local, remote, backends, state = wired(qtbot)
    errors = []
    state.error_raised.connect(lambda medium, text: errors.append(text))
    job = state.submit(image_job("render-farm"))
    assert state.jobs[job.id].status == JobEvent.FAILED
    assert "render-farm" in errors[0] and "Settings › Servers" in errors[0]
    assert local.submitted == []


def test_servers_models_reach_the_model_picker_and_picking_one_sets_the_backend(qtbot):
    from studio.widgets.model_picker import BACKEND_ROLE, ModelPicker

    local, remote, backends, state = wired(qtbot)
    picker = ModelPicker(state.image)
    qtbot.addWidget(picker)
    backends.add("gpu-box", remote)
    labels = [picker.combo.itemText(i) for i in range(picker.combo.count())]
    assert "sd15 — on gpu-box" in labels
    picker.combo.setCurrentIndex(labels.index("sd15 — on gpu-box"))
    assert state.image.get("backend") == "gpu-box" and state.image.get("model") == "sd15.safetensors"
    assert state.image.recipe().param("backend") == "gpu-box"
    picker.combo.setCurrentIndex(0)  # back to a built-in: this computer again
    assert state.image.get("backend") == "" and picker.combo.itemData(0, BACKEND_ROLE) in (None, "")
    backends.remove("gpu-box")
    assert remote.stopped == 1
    assert not any("gpu-box" in picker.combo.itemText(i) for i in range(picker.combo.count()))
