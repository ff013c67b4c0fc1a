"""Session state: the values behind every panel, the jobs in flight, and the one message handler.

Panels write values here and listen to `value_changed`; they never read widgets back to build
a job. `handle_message` is the single place where worker messages turn into UI state.
QtCore only: this module builds no widgets and imports no torch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

from PySide6.QtCore import QObject, Signal

from studio import media
from studio.core.jobs import Job, JobEvent, JobMessage, Progress, Result
from studio.core.recipe import MAX_SEED, RANDOM_SEED, Recipe  # noqa: F401 - the seed constants: re-exported for widgets
from studio.core.values import clean_values
from studio.state.compare import CompareState
from studio.state.explorer import ExplorerState
from studio.state.live import LIVE_KEY, LiveImage
from studio.state.loom import LoomState
from studio.state.model_library import ModelLibrary
from studio.state.models import BackendModels, model_is_here
from studio.state.train import TrainState

# Each panel's values and their defaults come from its medium's settings class (named in studio/media.py).


# Values that belong to the panel, not to the recipe.
NOT_PARAMS = {"prompt", "negative_prompt", "model", "seed", "messages"}  # a chat turn passes its messages itself


class PanelState(QObject):
    value_changed = Signal(str, object)
    last_seed_changed = Signal(object)  # the seed a generation really used (a random one is drawn at submit)

    def __init__(self, modality: str, defaults: dict[str, Any], parent: QObject | None = None,
                 backend_models: BackendModels | None = None, model_library: ModelLibrary | None = None) -> None:
        super().__init__(parent)
        self.modality = modality
        self.backend_models = backend_models or BackendModels(self)  # what servers offer (the model picker lists)
        self.model_library = model_library or ModelLibrary(self)  # what this computer has (the pickers list it)
        self._defaults = dict(defaults)
        self._values = dict(defaults)
        self.last_seed: int | None = None  # the seed the last generation really used

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def set(self, name: str, value: Any) -> None:
        if self._values.get(name) != value:
            self._values[name] = value
            self.value_changed.emit(name, value)

    def update(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            self.set(name, value)

    def values(self) -> dict[str, Any]:
        return dict(self._values)

    def recipe(self, seed: int | None = None) -> Recipe:
        """The recipe for the next generation. A random seed is drawn here, so it is recorded."""
        if seed is None:
            seed = int(self.get("seed", RANDOM_SEED))
            if seed == RANDOM_SEED:
                seed = random.randint(0, MAX_SEED)
        params = {k: v for k, v in self._values.items() if k not in NOT_PARAMS}
        return Recipe(
            modality=self.modality,
            prompt=str(self.get("prompt", "")),
            negative_prompt=str(self.get("negative_prompt", "")),
            model=str(self.get("model", "")),
            seed=seed,
            params=params,
        )

    def restore(self, recipe: Recipe, keep_seed_random: bool = False, keep_model: bool = False) -> list[str]:
        """Returns one line per value of the recipe that was left out (wrong type, not finite, out of range)."""
        # Settings the recipe doesn't name go back to their defaults: left as they were (a variation strength, an
        # inpaint mode and its mask from an earlier picture) they would make something else than the recipe did.
        values = {k: v for k, v in self._defaults.items() if k not in NOT_PARAMS}
        given = {"prompt": recipe.prompt, "negative_prompt": recipe.negative_prompt}
        if recipe.model and not keep_model:
            given["model"] = recipe.model
        if not keep_seed_random:
            given["seed"] = recipe.seed
        given.update({k: v for k, v in recipe.params.items() if k in self._values})
        # a setting added after the recipe was made, whose default would change what it makes (text's "draw")
        old_values = getattr(media.settings_class(self.modality), "OLD_RECIPE_VALUES", None) \
            if self.modality in media.MEDIA else None
        given.update({k: v for k, v in (old_values or {}).items() if k not in recipe.params and k in self._values})
        checked, problems = self.checked(given)
        values.update(checked)
        self.update(values)
        return problems

    def checked(self, values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The values this panel has, each checked against the medium's settings class (core/values.py)."""
        if self.modality not in media.MEDIA:
            return {k: v for k, v in values.items() if k in self._values}, []
        return clean_values(self.modality, values)


@dataclass
class JobInfo:
    job: Job
    status: JobEvent
    progress: Progress | None = None
    error: str = ""
    result: Result | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    outputs_shown: int = 0  # outputs already announced one by one (JobEvent.OUTPUT) while the job ran

    @property
    def modality(self) -> str:
        return self.job.recipe.modality if self.job.recipe else self.job.kind.split(".")[0]

    @property
    def active(self) -> bool:
        return self.status in (JobEvent.QUEUED, JobEvent.STARTED, JobEvent.PROGRESS)

    @property
    def title(self) -> str:
        prompt = " ".join((self.job.recipe.prompt if self.job.recipe else "").split())  # one line, however typed
        if len(prompt) > 40:
            prompt = prompt[:39] + "…"
        source = self.job.recipe.param("continue_from") if self.job.recipe else None
        if source:  # continuing a MIDI file with no prompt was titled "music: music.generate"
            name = str(source).replace("\\", "/").rsplit("/", 1)[-1]
            prompt = f"continue {name}" + (f" · {prompt}" if prompt else "")
        fallback = JOB_TITLES.get(self.job.kind) or ("untitled" if self.job.kind.endswith(".generate") else self.job.kind)
        return f"{self.modality}: {prompt or fallback}"


# What the jobs list says for jobs without a prompt (the task names are for code, not people).
JOB_TITLES = {**media.job_titles(), "device.warmup": "warming up"}


# The job kind each medium's Generate submits (the Latent Explorer submits its own jobs).
JOB_KINDS = {medium.name: medium.generate for medium in media.MEDIA.values() if medium.generate}


class State(QObject):
    submit_requested = Signal(object)  # Job -> worker.submit
    cancel_requested = Signal(object)  # job id or None -> backend.cancel
    force_stop_requested = Signal()  # -> backend.force_stop
    job_changed = Signal(object)  # JobInfo
    preview_changed = Signal(str, object)  # modality, Progress
    output_added = Signal(object)  # Artifact (saved: files + entry_id filled)
    result_ready = Signal(object, object)  # Job, Result (for jobs that return values)
    error_raised = Signal(str, str)  # modality, message
    restore_requested = Signal(str)  # modality whose panel should come forward
    output_restored = Signal(str, object)  # modality, [Path]: a restored output's files, for its panel to show
    device_changed = Signal(str)  # label
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.backend_models = BackendModels(self)  # models the servers can see, for every panel's picker
        self.model_library = ModelLibrary(self)  # models this computer has or can download (the model manager)
        self.panels = {name: PanelState(name, media.panel_defaults(name), self, self.backend_models,
                                        self.model_library) for name in media.MEDIA}
        self.jobs: dict[int, JobInfo] = {}
        self.device_label = "device: not chosen yet (picked at the first job)"
        self._busy = False
        self.explorer = ExplorerState(self)  # the Latent Explorer's map, picks, walk and jobs
        self.compare = CompareState(self)  # Compare families (Text and Music): three models side by side
        self.live = LiveImage(self, JOB_KINDS.get("image", "image.generate"))  # the Image panel's Live mode
        self.loom = LoomState(self)  # the Text panel's tree of branches: every text generation grows it
        self.training = TrainState(self)  # the Train tab: the folder read, the run, its checkpoints

    @property
    def image(self) -> PanelState:
        return self.panels["image"]

    @property
    def text(self) -> PanelState:
        return self.panels["text"]

    @property
    def music(self) -> PanelState:
        return self.panels["music"]

    # --- actions ----------------------------------------------------------------------------

    def generate(self, modality: str, fresh_seed: bool = False, **overrides: Any) -> Job | None:
        """Submit the panel's recipe (with `overrides` as params); `fresh_seed` ignores a locked seed (Regenerate)."""
        panel = self.panels[modality]
        recipe = panel.recipe(seed=random.randint(0, MAX_SEED) if fresh_seed else None)
        if "prompt" in overrides:  # e.g. a chat turn: the message sent, not the page the panel keeps
            recipe = replace(recipe, prompt=str(overrides.pop("prompt")))
        if overrides:
            recipe = recipe.with_params(**overrides)
        if not recipe.model:
            self.error_raised.emit(modality, "Choose a model first.")
            return None
        panel.last_seed = recipe.seed
        panel.last_seed_changed.emit(recipe.seed)
        return self.submit(Job(JOB_KINDS.get(modality) or media.MEDIA[modality].generate, recipe))

    def submit(self, job: Job) -> Job:
        self.jobs[job.id] = JobInfo(job, JobEvent.QUEUED)
        self.submit_requested.emit(job)
        return job

    def cancel(self, job_id: int | None = None) -> None:
        self.cancel_requested.emit(job_id)

    def offer_force_stop(self, job: Job) -> None:
        """The engine didn't answer a cancel within its grace time: the job's Cancel becomes Force stop."""
        info = self.jobs.get(job.id)
        if info is not None and info.active:
            info.extra["force_stop"] = True
            self.job_changed.emit(info)

    def force_stop(self) -> None:
        """End the engine process now (it restarts; queued jobs stay queued)."""
        self.force_stop_requested.emit()

    def restore(self, recipe: Recipe) -> None:
        """Put a recipe's settings back into its panel (gallery double-click, dropped PNG, File > Open)."""
        if self.explorer.restore(recipe):  # one of the Latent Explorer's outputs (strip, walk, melody strip…)
            return
        if self.compare.restore(recipe):  # a saved comparison of model families: back whole
            return
        if self.loom.restore(recipe):  # a saved loom tree: back whole
            return
        modality = recipe.modality if recipe.modality in self.panels else "image"
        # A server's recipe names the server's file ("sd15.safetensors — on gpu-box"): restored as it is, with its
        # server; the picker says when that server isn't connected.
        remote = bool(recipe.param("backend"))
        keep_model = bool(recipe.model) and not remote and not model_is_here(recipe.model)
        if keep_model:
            # An A1111 PNG names its checkpoint by title ("dreamshaper_8"): not something this machine can load.
            current = self.panels[modality].get("model")
            self.error_raised.emit(modality, f"The recipe's model {recipe.model!r} isn't on this machine (or isn't a path"
                                   f" or Hugging Face id); kept {current}. Pick the checkpoint with the model picker.")
        if modality == "text" and recipe.param("mode") == "chat":
            # A chat turn's prompt is the message it answered: it goes back in as the chat (messages), and the
            # completion page the user keeps in "prompt" is left alone.
            recipe = replace(recipe, prompt=str(self.text.get("prompt", "")))
        problems = self.panels[modality].restore(recipe, keep_model=keep_model)
        self.restore_requested.emit(modality)
        if problems:  # after restore_requested, which hides the panel's notes
            self.error_raised.emit(modality, f"{len(problems)} value(s) of the recipe were left out: "
                                   + "; ".join(problems[:3]) + ("; …" if len(problems) > 3 else ""))

    def set_backend_models(self, models: list) -> None:
        """The backends' model lists changed (a server connected or went away): the pickers follow."""
        self.backend_models.set(models)

    def restore_output(self, recipe: Recipe, files: list) -> None:
        """Restore an output's recipe and show the output itself (the picture, the text, the notes) in its panel."""
        self.restore(recipe)
        modality = recipe.modality if recipe.modality in self.panels else None
        if modality and files:
            self.output_restored.emit(modality, [f for f in files])

    def active_jobs(self) -> list[JobInfo]:
        return [info for info in self.jobs.values() if info.active]

    # --- the one handler of worker messages --------------------------------------------------

    def handle_message(self, message: JobMessage) -> None:
        info = self.jobs.get(message.job_id)
        if info is None:  # a job submitted behind state's back (e.g. warm-up): track it anyway
            info = self.jobs[message.job_id] = JobInfo(message.job, message.event)
        if message.event == JobEvent.OUTPUT:
            # One output of a batch, finished and saved while the job goes on: shown now. The job's final result
            # lists it again first; `outputs_shown` keeps it from being shown twice.
            info.outputs_shown += len(message.result.artifacts)
            if message.job.supersede_key == LIVE_KEY:  # a Live picture: the Image panel shows it, unsaved
                self.live.arrived(message.result)
                return
            for artifact in message.result.artifacts:
                self.output_added.emit(artifact)
            return
        info.status = message.event
        if message.event == JobEvent.PROGRESS:
            info.progress = message.progress
            if message.progress.preview is not None:
                self.preview_changed.emit(info.modality, message.progress)
        elif message.event == JobEvent.FAILED:
            info.error = message.error
            self.error_raised.emit(info.modality, message.error)
        elif message.event == JobEvent.FINISHED:
            info.result = message.result
            self._finished(message.job, message.result, info.outputs_shown)
        elif message.event == JobEvent.CANCELLED and message.error:
            info.error = message.error  # e.g. "Force stopped: the engine was restarted."
        if message.event == JobEvent.CANCELLED and message.result is not None:
            info.result = message.result  # outputs finished before the cancel (saved): shown like any other
            for artifact in message.result.artifacts[info.outputs_shown:]:
                self.output_added.emit(artifact)
        self.job_changed.emit(info)
        self._update_busy()
        if not info.active:
            self._forget_old_jobs()

    def _finished(self, job: Job, result: Result, already_shown: int = 0) -> None:
        if job.kind in ("device.warmup", "worker.reset_device") and result.value is not None:
            self.device_label = result.value.label
            self.device_changed.emit(self.device_label)
        if job.supersede_key == LIVE_KEY:  # a Live picture: shown by the Image panel, not one of the outputs
            if result.artifacts[already_shown:]:
                self.live.arrived(result)
        else:
            for artifact in result.artifacts[already_shown:]:
                self.output_added.emit(artifact)
        self.result_ready.emit(job, result)

    def _update_busy(self) -> None:
        busy = bool(self.active_jobs())
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    def _forget_old_jobs(self, keep: int = 50) -> None:
        done = [job_id for job_id, info in self.jobs.items() if not info.active]
        for job_id in done[:-keep]:
            del self.jobs[job_id]
