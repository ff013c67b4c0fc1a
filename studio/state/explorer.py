"""The Latent Explorer's state: what its panel draws, the jobs it builds, and what their results change.

The panel (`studio.panels.latent.LatentPanel`) binds to `State.explorer` and only draws: the map and the marks on
it, the point on show, the picks A/B, the walk's key points, the frames of the last strip or walk, the last
breeding's family and the melody strip all live here, so a recipe restored before the panel exists just sets them
and the panel shows them when it is built. QtCore only: no widgets, no torch.

Points are "specs" (see `studio.engine.latent.tasks`): {"point": [x, y]} on the current map, {"path": ...} an
image, {"latent": [...], "shape": [...]} a raw latent.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from studio.core.jobs import Job, JobEvent, Result
from studio.core.recipe import MAX_SEED, Recipe
from studio.state.models import model_is_here

DECODE_KEY = "latent.decode"  # a newer decode replaces a queued one (the worker's supersede key)
MELODY_KEY = "latent.melody_interpolate"


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


def fresh_seed() -> int:
    """A fresh seed per breeding, augmentation or random walk (recorded in the output's recipe): breeding
    A x B again gives new children, not copies."""
    return random.randint(0, MAX_SEED)


Handler = Callable[[Job, Result], None]


class ExplorerState(QObject):
    """The Latent Explorer's truth. Its values (sliders, model, tab) stay in `state.panels["latent"]`."""

    message_changed = Signal(str)  # the Images tab's message line
    melody_message_changed = Signal(str)  # the Melodies tab's message line
    map_changed = Signal(object)  # MapView (points, thumbnails, labels, paths, explained); the marks are gone
    marks_changed = Signal(str)  # "current" | "A" | "B" | "walk": its map points changed (see `marks`)
    shown_changed = Signal(object)  # the decoded picture on show (PIL image)
    picks_changed = Signal(object)  # {"A": spec, "B": spec}
    walk_changed = Signal(object)  # [spec, ...]
    frames_changed = Signal(object)  # frames to play (a walk or a saved animation); [] stops playing
    grid_ready = Signal(object, int)  # images, k (a k x k neighbourhood)
    ranking_ready = Signal(object)  # [(path, reconstruction error), ...] most unusual first
    saved_ready = Signal(object)  # [Artifact]: outputs just saved to the gallery
    family_changed = Signal(object)  # [Artifact]: the last breeding's parents and children
    melody_changed = Signal(object)  # MelodyInterpolation

    def __init__(self, state: QObject) -> None:
        """`state` is the State that owns this (typed loosely: this module must not import studio.state's
        __init__, which imports it)."""
        super().__init__(state)
        self.state = state
        self.values = state.panels["latent"]
        self.map = None  # MapView of the last map built
        self.current: dict | None = None  # spec of the point clicked (decoded, or on its way)
        self.shown: tuple[dict, Any] | None = None  # (spec decoded, its latent incl. attribute pushes)
        self.shown_image = None  # the picture of `shown`
        self.picks: dict[str, dict] = {}  # "A", "B" -> spec
        self.walk_points: list[dict] = []
        self.marks: dict[str, list[tuple[float, float]]] = {}  # map points drawn as rings, by name
        self.frames: list = []  # the last walk or saved strip
        self.family: list = []  # the last breeding's artifacts: parents A and B (when saved with it), then children
        self.melody = None  # the last MelodyInterpolation
        self.message = "Build a map, then click it."
        self.melody_message = "Pick two melodies, then Interpolate."
        self.pending: dict[int, Handler] = {}  # job id -> the method that takes its result
        state.result_ready.connect(self._on_result)
        state.job_changed.connect(self._on_job)
        state.error_raised.connect(lambda modality, text: self.say(text) if modality in ("latent", "animation") else None)

    @property
    def map_paths(self) -> list[str]:
        return list(self.map.paths) if self.map is not None else []

    def say(self, text: str) -> None:
        self.message = text
        self.message_changed.emit(text)

    def say_melody(self, text: str) -> None:
        self.melody_message = text
        self.melody_message_changed.emit(text)

    def _mark(self, name: str, point, keep: bool = False) -> None:
        self.marks[name] = (self.marks.get(name, []) if keep else []) + [(float(point[0]), float(point[1]))]
        self.marks_changed.emit(name)

    def _unmark(self, name: str) -> None:
        if self.marks.pop(name, None) is not None:
            self.marks_changed.emit(name)

    # --- jobs ----------------------------------------------------------------------------------

    def _send(self, job: Job, handler: Handler) -> Job:
        self.pending[job.id] = handler
        return self.state.submit(job)

    def _submit(self, kind: str, handler: Handler, save: bool = False, supersede: str | None = None, **args) -> Job:
        job = Job(kind, args={"model": self.values.get("model"), **args}, save=save, supersede_key=supersede)
        return self._send(job, handler)

    def build_map(self, gallery_paths: list[str] | None = None) -> Job | None:
        """Map the images the "source" value names; the gallery's image files are the panel's to list."""
        source = self.values.get("source")
        args: dict = {"source": source}
        if source == "folder":
            args["folder"] = self.values.get("folder")
        elif source == "gallery":
            if not gallery_paths:
                self.say("The gallery has no images yet.")
                return None
            args = {"source": "paths", "paths": list(gallery_paths)}
        self.say("Encoding images…")
        return self._submit("latent.map", self._mapped, truncation=self.values.get("truncation"), **args)

    def point(self, x: float, y: float) -> None:
        """Make (x, y) on the map the point on show; `decode` asks for its picture."""
        self.current = {"point": [x, y]}
        self._mark("current", (x, y))

    def decode(self) -> Job | None:
        if self.current is None:
            return None
        amount = float(self.values.get("attribute_amount") or 0)
        attributes = {self.values.get("attribute"): amount} if amount and self.values.get("attribute") else {}
        directions = [float(a) for a in self.values.get("directions_amounts") or ()]  # a GAN's sliders (else 0s)
        if "gan" in self.current:  # a GAN picture by prompt and seed follows the truncation slider
            self.current = {"gan": {**self.current["gan"], "truncation": float(self.values.get("truncation"))}}
        return self._submit("latent.decode", self._decoded, supersede=DECODE_KEY, at=self.current, attributes=attributes,
                            directions=directions if any(directions) else [])

    # --- a GAN's own controls (studio/engine/latent/gan_space.py) ------------------------------------

    def gan_picture(self, name: str) -> Job | None:
        """Show GAN picture A or B (its prompt and seed from the panel) as the point on show."""
        v = self.values
        self.current = {"gan": {"prompt": v.get(f"gan_prompt_{name}"), "seed": int(v.get(f"gan_seed_{name}")),
                                "truncation": float(v.get("truncation"))}}
        self._unmark("current")
        return self.decode()

    def _gan_args(self) -> dict:
        v = self.values
        return {"prompt_a": v.get("gan_prompt_a"), "seed_a": v.get("gan_seed_a"), "prompt_b": v.get("gan_prompt_b"),
                "seed_b": v.get("gan_seed_b"), "truncation": v.get("truncation")}

    def gan_compare(self) -> Job:
        """A and B interpolated in Z and in W, side by side, saved as an animation."""
        self.say("Interpolating in Z and in W…")
        return self._submit("latent.gan_compare", self._compared, save=True, frames=self.values.get("frames"),
                            fps=self.values.get("fps"), **self._gan_args())

    def gan_mix(self) -> Job:
        """The style mixing grid: A's coarse styles with B's fine ones."""
        return self._submit("latent.gan_mix", self._mixed, crossover=self.values.get("crossover"),
                            count=self.values.get("mix_count"), **self._gan_args())

    def shown_spec(self) -> dict:
        """The picture on show as a latent (so attribute pushes count, and a rebuilt map doesn't move it); the
        clicked point itself while its decode is still on the way."""
        if self.shown is not None and self.shown[0] == self.current:
            latent = self.shown[1]
            return {"latent": latent.ravel().tolist(), "shape": list(latent.shape)}
        return dict(self.current)

    def _need_point(self) -> bool:
        if self.current is None:
            self.say("Click the map first.")
        return self.current is not None

    def pick(self, name: str) -> None:
        if not self._need_point():
            return
        self.picks[name] = self.shown_spec()
        self.picks_changed.emit(dict(self.picks))
        if "point" in self.current:
            self._mark(name, self.current["point"])
        self.say(f"{name} set.")

    def add_walk_point(self) -> None:
        if not self._need_point():
            return
        self.walk_points.append(self.shown_spec())
        self.walk_changed.emit(list(self.walk_points))
        if "point" in self.current:
            self._mark("walk", self.current["point"], keep=True)
        self.say(f"The walk has {len(self.walk_points)} key points.")

    def clear_walk(self) -> None:
        self.walk_points = []
        self.walk_changed.emit([])
        self._unmark("walk")
        self._play([])

    def _need_ab(self) -> bool:
        if "A" in self.picks and "B" in self.picks:
            return True
        self.say("Set A and B first: click a point, then 'Set A'; another, then 'Set B'.")
        return False

    def make_strip(self) -> Job | None:
        if not self._need_ab():
            return None
        return self._submit("latent.strip", self._saved, save=True, a=self.picks["A"], b=self.picks["B"],
                            frames=self.values.get("frames"), mode=self.values.get("mode"), fps=self.values.get("fps"))

    def _walk_args(self) -> dict | None:
        if len(self.walk_points) >= 2:
            return {"points": self.walk_points, "frames_per_leg": self.values.get("frames"), "mode": self.values.get("mode")}
        if self.current is not None:
            return {"start": self.current, "steps": 4 * self.values.get("frames"), "seed": fresh_seed()}
        self.say("Click the map (a random walk starts there) or add two or more walk points.")
        return None

    def play_walk(self) -> Job | None:
        args = self._walk_args()
        return self._submit("latent.walk", self._walked, **args) if args else None

    def save_walk(self) -> Job | None:
        args = self._walk_args()
        return self._submit("latent.walk", self._saved, save=True, fps=self.values.get("fps"), **args) if args else None

    def show_grid(self) -> Job | None:
        if not self._need_point():
            return None
        return self._submit("latent.grid", self._gridded, at=self.current, size=self.values.get("grid_size"),
                            radius=self.values.get("grid_radius"), directions=self.values.get("directions"))

    def breed(self) -> Job | None:
        if not self._need_ab():
            return None
        return self._submit("latent.breed", self._bred, save=True, parent_specs=[self.picks["A"], self.picks["B"]],
                            children=self.values.get("children"), mutation=self.values.get("mutation"), seed=fresh_seed())

    def find_anomalies(self, folder: str) -> Job:
        return self._submit("latent.anomaly", self._ranked, folder=folder)

    def augment(self) -> Job | None:
        if not self._need_point():
            return None
        return self._submit("latent.augment", self._saved, save=True, at=self.current, count=self.values.get("augment_count"),
                            amount=self.values.get("augment_amount"), seed=fresh_seed())

    def travel(self, kind: str) -> Job | None:
        """Seed or prompt travel ("image.seed_travel" | "image.prompt_travel") with the Image panel's recipe."""
        image_values = self.state.panels["image"]
        if not image_values.get("prompt"):
            self.say("Type a prompt in the Image panel first: travel renders it frame by frame.")
            return None
        if kind == "image.prompt_travel" and not self.values.get("prompt_b"):
            self.say("Type Prompt B first.")
            return None
        job = Job(kind, image_values.recipe(), args={"seed_b": self.values.get("seed_b"), "prompt_b": self.values.get("prompt_b"),
                                                     "frames": self.values.get("frames"), "fps": self.values.get("fps")})
        self._send(job, self._saved)
        self.say("Rendering frames; they appear in the gallery as an animation.")
        return job

    def _melody_spec(self, name: str) -> dict:
        source = self.values.get(f"melody_{name}")
        if source and source != "seed":
            return {"path": source}
        return {"seed": int(self.values.get(f"melody_seed_{name}"))}

    def interpolate_melodies(self, save: bool = False) -> Job:
        self.say_melody("Encoding and decoding melodies…")
        v = self.values
        job = Job(MELODY_KEY, save=save, supersede_key=None if save else MELODY_KEY,
                  args={"model": v.get("melody_model"), "a": self._melody_spec("a"), "b": self._melody_spec("b"),
                        "steps": v.get("melody_steps"), "method": v.get("melody_mode"), "tempo": v.get("melody_tempo")})
        return self._send(job, self._melodies_ready)

    # --- results: one method per purpose -------------------------------------------------------

    def _on_job(self, info) -> None:  # a JobInfo
        handler = self.pending.get(info.job.id)
        if handler is None:
            return
        if info.error:
            self.say(info.error)
            if handler == self._melodies_ready:
                self.say_melody(info.error)
        if not info.active and info.status != JobEvent.FINISHED:  # failed, cancelled or superseded: no result comes
            self.pending.pop(info.job.id, None)

    def _on_result(self, job: Job, result: Result) -> None:
        handler = self.pending.pop(job.id, None)
        if handler is not None:
            handler(job, result)

    def _mapped(self, _job: Job, result: Result) -> None:
        view = self.map = result.value
        self.marks.clear()  # a new map: the old rings stand for nothing on it
        self.map_changed.emit(view)
        explained = sum(view.explained[:2]) * 100
        self.say(f"{len(view.points)} images mapped; the two axes hold {explained:.0f}% of the variance. Click anywhere.")

    def _decoded(self, job: Job, result: Result) -> None:
        image, z = result.value
        self.shown = (job.args["at"], z)  # what is on show, attribute pushes included: what Set A/B takes
        self.shown_image = image
        self.shown_changed.emit(image)

    def _play(self, frames: list) -> None:
        self.frames = list(frames)
        self.frames_changed.emit(self.frames)

    def _walked(self, _job: Job, result: Result) -> None:
        self._play(result.value)
        self.say(f"Playing a {len(self.frames)}-frame walk.")

    def _gridded(self, _job: Job, result: Result) -> None:
        images, size = result.value
        self.grid_ready.emit(images, size)
        self.say(f"{size}×{size} neighbourhood: x and y along the chosen directions.")

    def _compared(self, job: Job, result: Result) -> None:
        z_steps, w_steps = result.value
        self._saved(job, result)

        def unevenness(steps: list[float]) -> float:  # the biggest jump over the average one: 1 = perfectly even
            return max(steps) / (sum(steps) / len(steps)) if steps and sum(steps) else 1.0

        self.say(f"Left Z, right W. Biggest jump / average jump: Z {unevenness(z_steps):.2f}, W {unevenness(w_steps):.2f}"
                 " (1 = perfectly even).")

    def _mixed(self, job: Job, result: Result) -> None:
        cells, size = result.value
        self.grid_ready.emit(cells, size)
        crossover = job.args.get("crossover")
        self.say(f"Rows: A's seeds (top-left down), columns: B's. Each cell: A's first {crossover} style inputs "
                 "(shape, layout) with B's fine ones (colour, texture).")

    def _ranked(self, _job: Job, result: Result) -> None:
        self.ranking_ready.emit(result.value)
        self.say("Most unusual first (highest VAE reconstruction error).")

    def _saved(self, _job: Job, result: Result) -> None:
        self.saved_ready.emit(list(result.artifacts))
        for artifact in result.artifacts:
            if isinstance(artifact.payload, list):  # an animation: play it in the preview
                self._play(artifact.payload)
        saved = ", ".join(str(f.name) for a in result.artifacts for f in a.files[:1])
        self.say(f"Saved to the gallery: {saved}")

    def _bred(self, job: Job, result: Result) -> None:
        self.family = list(result.artifacts)  # saved in order, each child's recipe naming its parents' history ids
        self.family_changed.emit(self.family)
        self._saved(job, result)

    def _melodies_ready(self, _job: Job, result: Result) -> None:
        self.melody = melody = result.value
        self.melody_changed.emit(melody)
        counts = ", ".join(str(len(m.notes)) for m in melody.melodies)
        text = (f"{len(melody.melodies)} melodies from A to B (notes per step: {counts}). "
                "Play to hear them one after another.")
        if result.artifacts and result.artifacts[0].files:
            text += f" Saved to the gallery: {result.artifacts[0].files[0].name}."
        self.say_melody(text)

    # --- restore -------------------------------------------------------------------------------

    def restore(self, recipe: Recipe) -> bool:
        """Take back a recipe of one of the Explorer's outputs; False when it is not one (another panel's)."""
        operation = str(recipe.param("operation") or "")
        if not operation.startswith("latent."):
            return False
        if operation == MELODY_KEY:  # a "music" recipe the Music panel can't make
            self.values.update({**melody_values(recipe), "tab": "melodies"})
        elif (restored := latent_ends_of(recipe)) is not None:
            settings, ends = restored
            if recipe.model and model_is_here(recipe.model):
                settings["model"] = recipe.model
            self.values.update({**settings, "tab": "images"})
            self._take_ends(ends)
        else:
            # A strip, walk, grid or child made from points on a map: no panel's settings remake it, and pouring
            # its "prompt" ("child 2 of 4") and params into the Image panel would only break the user's settings.
            self.values.set("tab", "images")
            self.state.restore_requested.emit("latent")
            self.state.error_raised.emit("latent", "That output was made here from points on a latent map, so it has no "
                                         "settings to load. The gallery's 'Show family tree' shows where it came from.")
            return True
        self.state.restore_requested.emit("latent")
        return True

    def _take_ends(self, ends: dict) -> None:
        """End points of a saved strip or walk, as exact latents: they need no map (nothing is marked on it)."""
        if "picks" in ends:
            self.picks = dict(ends["picks"])
            self.picks_changed.emit(dict(self.picks))
            self._unmark("A")
            self._unmark("B")
            self.say("A and B are back from the saved strip: 'Strip A→B' makes it again.")
        if "walk" in ends:
            self.clear_walk()
            self.walk_points = list(ends["walk"])
            self.walk_changed.emit(list(self.walk_points))
            self.say(f"The saved walk's {len(self.walk_points)} key points are back: 'Play walk' or 'Save walk'.")
