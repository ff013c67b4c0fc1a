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

from studio.core.jobs import Job, JobEvent, JobMessage, Progress, Result
from studio.core.recipe import Recipe

RANDOM_SEED = -1
MAX_SEED = 2**32 - 1  # what A1111 and diffusers' CPU generators accept

DEFAULTS: dict[str, dict[str, Any]] = {
    "image": {
        "prompt": "",
        "negative_prompt": "",
        "model": "builtin:emoji-ldm",
        "seed": RANDOM_SEED,
        "mode": "txt2img",
        "steps": 20,
        "guidance": 5.0,
        "width": 64,
        "height": 64,
        "scheduler": "dpmpp_2m",
        "batch_count": 1,
        "strength": 0.75,
        "variation_seed": 0,
        "variation_strength": 0.0,
        "clip_skip": 1,  # A1111's "Clip skip": 1 = the text encoder's last layer
        "init_image": "",
        "mask_image": "",
    },
    "text": {
        "prompt": "",
        "model": "builtin:text-gpt",
        "seed": RANDOM_SEED,
        "mode": "completion",
        "temperature": 0.8,
        "top_k": 40,
        "top_p": 0.95,
        "min_p": 0.0,
        "typical_p": 1.0,
        "repetition_penalty": 1.1,
        "repetition_window": 64,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "max_new_tokens": 200,
        "stop": [],
        "greedy": False,
        "inspect": False,
        "messages": [],  # the chat so far (chat mode); kept apart from the completion page in "prompt"
    },
    "music": {
        "prompt": "",
        "model": "builtin:music-gpt",
        "seed": RANDOM_SEED,
        "temperature": 1.0,
        "top_k": 0,
        "top_p": 0.95,
        "bars": 8,
        "tempo": 0,  # 0: from the prompt, else the style's usual tempo
        "key": "",  # "": from the prompt
        "voices": 0,  # 0: the style's usual number
        "instrument": "piano",
        "continue_from": "",
        "guidance": 3.0,  # MusicGen only: classifier-free guidance (its generation_config's default)
        "duration": 8.0,  # MusicGen only: seconds of audio
    },
    "latent": {
        "tab": "images",  # images | melodies: the sub-tab on show (a restored melody strip switches it)
        "model": "builtin:emoji-ldm",
        "source": "dataset",  # dataset | gallery | folder
        "folder": "",
        "frames": 8,
        "mode": "slerp",
        "fps": 12,
        "grid_size": 5,
        "grid_radius": 2.0,
        "directions": "pca",
        "children": 4,
        "mutation": 0.3,
        "attribute": "face",
        "attribute_amount": 0.0,
        "augment_count": 8,
        "augment_amount": 0.15,
        "seed_b": 1,
        "prompt_b": "",
        # the Melodies tab (melody VAE)
        "melody_model": "builtin:melody-vae",
        "melody_a": "seed",  # "seed" or a MIDI file's path
        "melody_b": "seed",
        "melody_seed_a": 1,
        "melody_seed_b": 2,
        "melody_steps": 6,
        "melody_mode": "slerp",
        "melody_tempo": 110,
    },
}

def melody_values(recipe: Recipe) -> dict[str, Any]:
    """The Melodies tab's settings that make a saved melody interpolation again."""
    values: dict[str, Any] = {"melody_model": recipe.model or "builtin:melody-vae"}
    for end in ("a", "b"):
        spec = recipe.param(end) or {}
        if "path" in spec:
            values[f"melody_{end}"] = spec["path"]
        else:
            values[f"melody_{end}"] = "seed"
            values[f"melody_seed_{end}"] = int(spec.get("seed", 0))
    for name, key in (("steps", "melody_steps"), ("method", "melody_mode"), ("tempo", "melody_tempo")):
        if recipe.param(name) is not None:
            values[key] = recipe.param(name)
    return values


def _standalone(spec: Any) -> bool:
    """A latent end point that means the same thing without the map it was picked on."""
    return isinstance(spec, dict) and ("latent" in spec and "shape" in spec or "path" in spec)


def latent_ends_of(recipe: Recipe) -> tuple[dict[str, Any], dict] | None:
    """(Latent panel settings, end points) that remake a saved strip or key-point walk; None when its points only
    made sense on the map of that moment (older recipes, or a random walk from a clicked point)."""
    operation, params = recipe.param("operation"), recipe.params
    settings = {k: params[k] for k in ("mode", "fps") if params.get(k) is not None}
    if operation == "latent.strip" and _standalone(params.get("a")) and _standalone(params.get("b")):
        if params.get("frames"):
            settings["frames"] = int(params["frames"])
        return settings, {"picks": {"A": params["a"], "B": params["b"]}}
    points = params.get("points") or []
    if operation == "latent.walk" and len(points) >= 2 and all(_standalone(p) for p in points):
        if params.get("frames_per_leg"):
            settings["frames"] = int(params["frames_per_leg"])
        return settings, {"walk": list(points)}
    return None


def model_is_here(ref: str) -> bool:
    """Whether a recipe's model names something loadable here: a built-in, a path, a Hugging Face id."""
    from studio.core import catalog  # reads file headers and folder layouts only (no torch)

    try:
        catalog.resolve(ref)
    except Exception:  # noqa: BLE001 - missing, damaged or not a model: all mean "not here"
        return False
    return True


# Values that belong to the panel, not to the recipe.
NOT_PARAMS = {"prompt", "negative_prompt", "model", "seed", "messages"}  # a chat turn passes its messages itself


class PanelState(QObject):
    value_changed = Signal(str, object)
    last_seed_changed = Signal(object)  # the seed a generation really used (a random one is drawn at submit)

    def __init__(self, modality: str, defaults: dict[str, Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.modality = modality
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

    def restore(self, recipe: Recipe, keep_seed_random: bool = False, keep_model: bool = False) -> None:
        # Settings the recipe doesn't name go back to their defaults: left as they were (a variation strength, an
        # inpaint mode and its mask from an earlier picture) they would make something else than the recipe did.
        values = {k: v for k, v in self._defaults.items() if k not in NOT_PARAMS}
        values.update({"prompt": recipe.prompt, "negative_prompt": recipe.negative_prompt})
        if recipe.model and not keep_model:
            values["model"] = recipe.model
        if not keep_seed_random:
            values["seed"] = recipe.seed
        values.update({k: v for k, v in recipe.params.items() if k in self._values})
        self.update(values)


@dataclass
class JobInfo:
    job: Job
    status: JobEvent
    progress: Progress | None = None
    error: str = ""
    result: Result | None = None
    extra: dict[str, Any] = field(default_factory=dict)

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
        return f"{self.modality}: {prompt or JOB_TITLES.get(self.job.kind, self.job.kind)}"


# What the jobs list says for jobs without a prompt (the task names are for code, not people).
JOB_TITLES = {
    "latent.map": "map of images",
    "latent.decode": "decode a point",
    "latent.strip": "interpolation strip",
    "latent.walk": "latent walk",
    "latent.grid": "neighbourhood grid",
    "latent.breed": "breeding",
    "latent.anomaly": "anomaly ranking",
    "latent.augment": "augmentations",
    "latent.melody_interpolate": "melody interpolation",
    "image.seed_travel": "seed travel",
    "image.prompt_travel": "prompt travel",
    "image.xy_plot": "X/Y plot",
    "music.note": "note preview",
    "device.warmup": "warming up",
}


JOB_KINDS = {"image": "image.generate", "text": "text.generate", "music": "music.generate"}


class State(QObject):
    submit_requested = Signal(object)  # Job -> worker.submit
    cancel_requested = Signal(object)  # job id or None -> worker.cancel
    job_changed = Signal(object)  # JobInfo
    preview_changed = Signal(str, object)  # modality, Progress
    output_added = Signal(object)  # Artifact (saved: files + entry_id filled)
    result_ready = Signal(object, object)  # Job, Result (for jobs that return values)
    error_raised = Signal(str, str)  # modality, message
    restore_requested = Signal(str)  # modality whose panel should come forward
    latent_ends_restored = Signal(object)  # {"picks": {"A": spec, "B": spec}} or {"walk": [spec, ...]}
    device_changed = Signal(str)  # label
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.panels = {name: PanelState(name, defaults, self) for name, defaults in DEFAULTS.items()}
        self.jobs: dict[int, JobInfo] = {}
        self.device_label = "device: not chosen yet (picked at the first job)"
        self._busy = False
        # A restored strip's or walk's end points, kept until the Latent Explorer (maybe not built yet) takes them.
        self.pending_latent_ends: dict | None = None

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
        return self.submit(Job(JOB_KINDS[modality], recipe))

    def submit(self, job: Job) -> Job:
        self.jobs[job.id] = JobInfo(job, JobEvent.QUEUED)
        self.submit_requested.emit(job)
        return job

    def cancel(self, job_id: int | None = None) -> None:
        self.cancel_requested.emit(job_id)

    def restore(self, recipe: Recipe) -> None:
        """Put a recipe's settings back into its panel (gallery double-click, dropped PNG, File > Open)."""
        operation = str(recipe.param("operation") or "")
        if operation == "latent.melody_interpolate":  # a "music" recipe the Music panel can't make
            self.panels["latent"].update({**melody_values(recipe), "tab": "melodies"})
            self.restore_requested.emit("latent")
            return
        restored = latent_ends_of(recipe)
        if restored is not None:
            settings, ends = restored
            if recipe.model and model_is_here(recipe.model):
                settings["model"] = recipe.model
            self.panels["latent"].update({**settings, "tab": "images"})
            self.pending_latent_ends = ends
            self.latent_ends_restored.emit(ends)
            self.restore_requested.emit("latent")
            return
        if operation.startswith("latent."):
            # A strip, walk, grid or child made from points on a map: no panel's settings remake it, and pouring
            # its "prompt" ("child 2 of 4") and params into the Image panel would only break the user's settings.
            self.panels["latent"].set("tab", "images")
            self.restore_requested.emit("latent")
            self.error_raised.emit("latent", "That output was made here from points on a latent map, so it has no "
                                   "settings to load. The gallery's 'Show family tree' shows where it came from.")
            return
        modality = recipe.modality if recipe.modality in self.panels else "image"
        keep_model = bool(recipe.model) and not model_is_here(recipe.model)
        if keep_model:
            # An A1111 PNG names its checkpoint by title ("dreamshaper_8"): not something this machine can load.
            current = self.panels[modality].get("model")
            self.error_raised.emit(modality, f"The recipe's model {recipe.model!r} isn't on this machine (or isn't a path"
                                   f" or Hugging Face id); kept {current}. Pick the checkpoint with the model picker.")
        if modality == "text" and recipe.param("mode") == "chat":
            # A chat turn's prompt is the message it answered: it goes back in as the chat (messages), and the
            # completion page the user keeps in "prompt" is left alone.
            recipe = replace(recipe, prompt=str(self.text.get("prompt", "")))
        self.panels[modality].restore(recipe, keep_model=keep_model)
        self.restore_requested.emit(modality)

    def active_jobs(self) -> list[JobInfo]:
        return [info for info in self.jobs.values() if info.active]

    # --- the one handler of worker messages --------------------------------------------------

    def handle_message(self, message: JobMessage) -> None:
        info = self.jobs.get(message.job_id)
        if info is None:  # a job submitted behind state's back (e.g. warm-up): track it anyway
            info = self.jobs[message.job_id] = JobInfo(message.job, message.event)
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
            self._finished(message.job, message.result)
        elif message.event == JobEvent.CANCELLED and message.result is not None:
            info.result = message.result  # outputs finished before the cancel (saved): shown like any other
            for artifact in message.result.artifacts:
                self.output_added.emit(artifact)
        self.job_changed.emit(info)
        self._update_busy()
        if not info.active:
            self._forget_old_jobs()

    def _finished(self, job: Job, result: Result) -> None:
        if job.kind in ("device.warmup", "worker.reset_device") and result.value is not None:
            self.device_label = result.value.label
            self.device_changed.emit(self.device_label)
        for artifact in result.artifacts:
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
