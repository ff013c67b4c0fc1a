"""Latent Explorer: map the model's latent space, click to decode, interpolate, walk, grid, breed.

Two tabs: Images (the image model's VAE latent) and Melodies (the melody VAE: two melodies, from seeds
or from the gallery's music, interpolated step by step, shown on a piano roll and played).

Every computation is a worker job; dragging on the map or moving the attribute slider goes
through a Throttle (≤ 1 request per frame) and the worker's supersede key (a newer decode
replaces a queued one), so the GUI never waits and the last position always wins.
"""

from __future__ import annotations

import random
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core.jobs import Job
from studio.state import MAX_SEED, State
from studio.widgets.audio_player import AudioPlayer
from studio.widgets.controls import ColumnSplitter, ParamSlider, bound_combo, bound_line, row, scroll_column
from studio.widgets.image_view import ImageView, pil_to_pixmap
from studio.widgets.latent_map import LatentMapView
from studio.widgets.model_picker import ModelPicker
from studio.widgets.piano_roll import PianoRoll
from studio.widgets.throttle import Throttle

SOURCES = [("Built-in model's training images", "dataset"), ("My gallery's images", "gallery"), ("A folder…", "folder")]
MODES = [("Slerp (stays on the shell)", "slerp"), ("Lerp (straight line)", "lerp")]
DIRECTIONS = [("Principal components 1 & 2", "pca"), ("Random directions", "random")]
DECODE_KEY = "latent.decode"


class LatentPanel(QWidget):
    modality = "latent"

    def __init__(self, state: State, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.values = state.panels["latent"]
        self.current: dict | None = None  # spec of the point on show
        self.shown: tuple[dict, object] | None = None  # (spec decoded, its latent incl. attribute pushes)
        self.picks: dict[str, dict] = {}  # "A", "B" -> spec
        self.walk_points: list[dict] = []
        self.frames: list = []
        self._frame = 0
        self._jobs: dict[int, str] = {}  # job id -> what its result is for
        self.map_paths: list[str] = []
        self.decode_throttle = Throttle(self._request_decode, parent=self)
        self.player = QTimer(self)
        self.player.timeout.connect(self._next_frame)
        splitter = ColumnSplitter(self._controls(), self._stage())
        self.melody_result = None  # the last MelodyInterpolation on show
        self.melody_player = AudioPlayer(self)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.tabBar().setDrawBase(False)  # the base line drew a stray white rule across the panel
        self.tabs.addTab(splitter, "Images")
        self.tabs.addTab(self._melodies_tab(), "Melodies")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.tabs)
        state.result_ready.connect(self._on_result)
        state.error_raised.connect(lambda modality, text: self._say(text) if modality in ("latent", "animation") else None)
        state.job_changed.connect(self._on_job)
        # The sub-tab lives in state (so a restore can choose it even before this panel exists, and it persists).
        self.tabs.setCurrentIndex(1 if self.values.get("tab") == "melodies" else 0)
        self.tabs.currentChanged.connect(lambda index: self.values.set("tab", "melodies" if index == 1 else "images"))
        self.values.value_changed.connect(self._on_tab_value)
        state.latent_ends_restored.connect(self._take_restored_ends)
        if state.pending_latent_ends:  # restored before this panel was built
            self._take_restored_ends(state.pending_latent_ends)
        if self.values.get("tab") == "melodies":
            self.refresh_melody_sources()

    # --- building ----------------------------------------------------------------------------

    def _controls(self) -> QWidget:
        v = self.values
        map_box = QGroupBox("Map")
        m = QVBoxLayout(map_box)
        m.addWidget(row("Model", ModelPicker(v, modality="image")))
        m.addWidget(row("Images", bound_combo(v, "source", SOURCES, "Which images to place on the map")))
        m.addWidget(row("Folder", bound_line(v, "folder", "for 'A folder…'")))
        build = QPushButton("Build map")
        build.setObjectName("primary")
        build.clicked.connect(self.build_map)
        m.addWidget(build)

        travel = QGroupBox("Interpolate and walk")
        t = QVBoxLayout(travel)
        picks = QHBoxLayout()
        for name in ("A", "B"):
            button = QPushButton(f"Set {name}")
            button.setToolTip(f"Use the point on show as end point {name}")
            button.clicked.connect(lambda _=False, n=name: self.pick(n))
            picks.addWidget(button)
        add = QPushButton("Add to walk")
        add.setToolTip("Add the point on show to the loop the walk goes through")
        add.clicked.connect(self.add_walk_point)
        picks.addWidget(add)
        t.addLayout(picks)
        t.addWidget(row("Path", bound_combo(v, "mode", MODES, "Slerp keeps Gaussian samples on their shell; lerp cuts across")))
        t.addWidget(ParamSlider(v, "frames", "Frames", 2, 64, tooltip="Frames from A to B, or per leg of a walk"))
        t.addWidget(ParamSlider(v, "fps", "Playback fps", 1, 60, tooltip="Speed of the live walk and of exported GIF/MP4 animations"))
        buttons = QGridLayout()
        for index, (label, slot) in enumerate([("Strip A→B (save)", self.make_strip), ("Play walk", self.play_walk),
                                               ("Save walk (GIF + MP4)", self.save_walk), ("Clear walk", self.clear_walk)]):
            button = QPushButton(label)
            button.clicked.connect(slot)
            buttons.addWidget(button, index // 2, index % 2)
        t.addLayout(buttons)

        around = QGroupBox("Neighbourhood and attributes")
        a = QVBoxLayout(around)
        a.addWidget(row("Directions", bound_combo(v, "directions", DIRECTIONS)))
        a.addWidget(ParamSlider(v, "grid_size", "Grid size", 3, 9, tooltip="k×k images around the point on show"))
        a.addWidget(ParamSlider(v, "grid_radius", "Radius", 0.1, 5, 0.1, 1, tooltip="How far the grid reaches, in standard deviations"))
        grid = QPushButton("Show grid around the point")
        grid.clicked.connect(self.show_grid)
        a.addWidget(grid)
        a.addWidget(row("Attribute", bound_line(v, "attribute", "a word in the labels: face, heart, red…",
                                                "Direction = mean latent of images labelled with it − mean of the rest")))
        self.attribute_slider = ParamSlider(v, "attribute_amount", "Amount", -3, 3, 0.05, 2,
                                            tooltip="Push the point on show along the attribute's direction")
        a.addWidget(self.attribute_slider)
        v.value_changed.connect(lambda name, value: self.decode_throttle(None) if name == "attribute_amount" else None)

        family = QGroupBox("Breed and dataset tools")
        f = QVBoxLayout(family)
        f.addWidget(ParamSlider(v, "children", "Children", 1, 9))
        f.addWidget(ParamSlider(v, "mutation", "Mutation", 0, 1, 0.05, 2, tooltip="How far children stray from their parents"))
        breed = QPushButton("Breed A × B (saved with their family tree)")
        breed.clicked.connect(self.breed)
        f.addWidget(breed)
        anomalies = QPushButton("Find unusual images in a folder…")
        anomalies.setToolTip("Ranks images by how badly the VAE reconstructs them: the oddest first")
        anomalies.clicked.connect(self.find_anomalies)
        f.addWidget(anomalies)
        f.addWidget(ParamSlider(v, "augment_count", "Variations", 1, 32))
        f.addWidget(ParamSlider(v, "augment_amount", "Nudge", 0.01, 1, 0.01, 2))
        augment = QPushButton("Export variations of the point on show")
        augment.clicked.connect(self.augment)
        f.addWidget(augment)
        return scroll_column(map_box, travel, around, family, self._diffusion_box())

    def _diffusion_box(self) -> QWidget:
        v = self.values
        box = QGroupBox("Diffusion noise space (Image panel's prompt and model)")
        layout = QVBoxLayout(box)
        layout.addWidget(ParamSlider(v, "seed_b", "Seed B", 0, 2**31 - 1,
                                     tooltip="Seed travel goes from the Image panel's seed to this one (slerp of the noise)"))
        layout.addWidget(row("Prompt B", bound_line(v, "prompt_b", "prompt travel ends here",
                                                    "Prompt travel interpolates the text encoding between two prompts")))
        buttons = QHBoxLayout()
        for label, kind in (("Seed travel", "image.seed_travel"), ("Prompt travel", "image.prompt_travel")):
            button = QPushButton(label)
            button.clicked.connect(lambda _=False, k=kind: self.travel(k))
            buttons.addWidget(button)
        layout.addLayout(buttons)
        return box

    def travel(self, kind: str) -> None:
        image_values = self.state.image
        if not image_values.get("prompt"):
            self._say("Type a prompt in the Image panel first: travel renders it frame by frame.")
            return
        if kind == "image.prompt_travel" and not self.values.get("prompt_b"):
            self._say("Type Prompt B first.")
            return
        recipe = image_values.recipe()
        job = Job(kind, recipe, args={"seed_b": self.values.get("seed_b"), "prompt_b": self.values.get("prompt_b"),
                                      "frames": self.values.get("frames"), "fps": self.values.get("fps")})
        self._jobs[job.id] = "saved"
        self.state.submit(job)
        self._say("Rendering frames; they appear in the gallery as an animation.")

    def _stage(self) -> QWidget:
        self.map = LatentMapView()
        self.map.point_clicked.connect(self.show_point)
        self.map.point_dragged.connect(lambda x, y: self.show_point(x, y, throttled=True))
        self.preview = ImageView(placeholder="Click the map to decode a point.")
        self.preview.setMinimumSize(220, 220)
        self.results = QListWidget()
        self.results.setViewMode(QListWidget.ViewMode.IconMode)
        self.results.setMaximumHeight(150)
        from PySide6.QtCore import QSize

        self.results.setIconSize(QSize(64, 64))
        self.results.hide()  # shown with the first saved result or ranking
        self.message = QLabel("Build a map, then click it.")
        self.message.setObjectName("hint")
        self.message.setWordWrap(True)
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.map)
        top.addWidget(self.preview)
        top.setSizes([520, 260])
        holder = QWidget()
        layout = QVBoxLayout(holder)
        layout.addWidget(top, 1)
        layout.addWidget(self.results)
        layout.addWidget(self.message)
        return holder

    # --- melodies ------------------------------------------------------------------------------

    def _melodies_tab(self) -> QWidget:
        v = self.values
        ends = QGroupBox("Two melodies (two bars each)")
        e = QVBoxLayout(ends)
        self.melody_sources = {}
        for name in ("a", "b"):
            combo = QComboBox()
            combo.setToolTip("A random melody (a point drawn from the VAE's prior with the seed below), "
                             "or the first two bars of a piece in your gallery")
            combo.currentIndexChanged.connect(lambda _i, n=name, c=combo: v.set(f"melody_{n}", c.currentData()))
            self.melody_sources[name] = combo
            e.addWidget(row(f"Melody {name.upper()}", combo))
            e.addWidget(ParamSlider(v, f"melody_seed_{name}", f"Seed {name.upper()}", 0, 9999,
                                    tooltip="Used when the melody is a random one"))
        self.refresh_melody_sources()
        path = QGroupBox("Interpolation")
        p = QVBoxLayout(path)
        p.addWidget(ParamSlider(v, "melody_steps", "Steps", 2, 16, tooltip="Melodies from A to B, both included"))
        p.addWidget(row("Path", bound_combo(v, "melody_mode", MODES, "Slerp keeps prior samples on their shell; lerp cuts across")))
        p.addWidget(ParamSlider(v, "melody_tempo", "Tempo (bpm)", 40, 200))
        go = QPushButton("Interpolate A → B")
        go.setObjectName("primary")
        go.clicked.connect(self.interpolate_melodies)
        save = QPushButton("Interpolate and save to the gallery")
        save.setToolTip("The whole strip as one piece: MIDI + WAV with its recipe")
        save.clicked.connect(lambda: self.interpolate_melodies(save=True))
        p.addWidget(go)
        p.addWidget(save)
        note = QLabel("Built-in melody VAE (models/melody-vae): melodies are 2 bars of 4/4 on a 16th grid, "
                      "pitches C3–C6; a gallery piece contributes the first two bars of its top voice.")
        note.setObjectName("hint")
        note.setWordWrap(True)
        p.addWidget(note)

        self.melody_roll = PianoRoll()
        self.melody_roll.setToolTip("Each step of the interpolation is two bars, in alternating colours")
        self.melody_play = QPushButton("▶ Play")
        self.melody_play.setEnabled(False)
        self.melody_play.clicked.connect(self.toggle_melody_play)
        self.melody_step = QLabel("")
        self.melody_message = QLabel("Pick two melodies, then Interpolate.")
        self.melody_message.setObjectName("hint")
        self.melody_message.setWordWrap(True)
        self.melody_player.unavailable.connect(self.melody_message.setText)
        self.melody_player.playing_changed.connect(self._on_melody_playing)
        self.melody_player.position_changed.connect(self._on_melody_position)
        controls = QHBoxLayout()
        controls.addWidget(self.melody_play)
        controls.addWidget(self.melody_step, 1)
        stage = QWidget()
        s = QVBoxLayout(stage)
        s.addWidget(self.melody_roll, 1)
        s.addLayout(controls)
        s.addWidget(self.melody_message)
        return ColumnSplitter(scroll_column(ends, path), stage)

    def _on_tab_value(self, name: str, value) -> None:
        if name == "tab":
            self.tabs.setCurrentIndex(1 if value == "melodies" else 0)
            if value == "melodies":
                self.refresh_melody_sources()  # a restored strip's ends may name a gallery piece

    def refresh_melody_sources(self) -> None:
        """Random, or one of the gallery's recent music pieces (their MIDI files)."""
        items = [("Random melody (seed below)", "seed")]
        history = getattr(self.window(), "history", None)
        if history is not None:
            for entry in history.search(modality="music", limit=40):
                midi = next((f for f in entry.files if f.suffix == ".mid"), None)
                if midi is not None:
                    items.append((f"Gallery: {(entry.prompt or midi.stem)[:40]}", str(midi)))
        for name, combo in self.melody_sources.items():
            wanted = self.values.get(f"melody_{name}")
            combo.blockSignals(True)
            combo.clear()
            choices = list(items)
            if wanted and wanted != "seed" and wanted not in dict(items).values() and Path(wanted).is_file():
                choices.append((f"File: {Path(wanted).name}", wanted))  # a restored recipe's older piece
            for label, value in choices:
                combo.addItem(label, value)
            index = combo.findData(wanted)
            combo.setCurrentIndex(max(0, index))
            combo.blockSignals(False)
            if index < 0:
                self.values.set(f"melody_{name}", "seed")

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh_melody_sources()  # new music may have been composed since

    def _melody_spec(self, name: str) -> dict:
        source = self.values.get(f"melody_{name}")
        if source and source != "seed":
            return {"path": source}
        return {"seed": int(self.values.get(f"melody_seed_{name}"))}

    def interpolate_melodies(self, save: bool = False) -> Job:
        self.melody_player.stop()
        self.melody_message.setText("Encoding and decoding melodies…")
        job = Job("latent.melody_interpolate", save=save, supersede_key=None if save else "latent.melody_interpolate",
                  args={"model": self.values.get("melody_model"), "a": self._melody_spec("a"), "b": self._melody_spec("b"), "steps": self.values.get("melody_steps"),
                        "method": self.values.get("melody_mode"), "tempo": self.values.get("melody_tempo")})
        self._jobs[job.id] = "melodies"
        return self.state.submit(job)

    def _show_melodies(self, result) -> None:
        self.melody_player.stop()  # the old strip's sound and playhead must not run over the new roll
        self.melody_result = result
        self.melody_roll.set_notes(result.sequence.notes, beats_per_bar=4)
        self.melody_play.setEnabled(True)
        counts = ", ".join(str(len(m.notes)) for m in result.melodies)
        self.melody_message.setText(f"{len(result.melodies)} melodies from A to B (notes per step: {counts}). "
                                    "Play to hear them one after another.")
        self.melody_step.setText("")

    def toggle_melody_play(self) -> None:
        if self.melody_player.playing:
            self.melody_player.stop()
        elif self.melody_result is not None:
            self.melody_player.play(self.melody_result.audio, self.melody_result.sample_rate)

    def _on_melody_playing(self, playing: bool) -> None:
        self.melody_play.setText("■ Stop" if playing else "▶ Play")
        if not playing:
            self.melody_roll.set_playhead(None)
            self.melody_step.setText("")

    def _on_melody_position(self, seconds: float) -> None:
        result = self.melody_result
        beats = seconds * result.sequence.tempo_bpm / 60.0
        self.melody_roll.set_playhead(beats)
        step = min(len(result.melodies), int(beats // result.beats_per_melody) + 1)
        self.melody_step.setText(f"Step {step} of {len(result.melodies)}")

    # --- jobs ----------------------------------------------------------------------------------

    def _submit(self, kind: str, purpose: str, save: bool = False, supersede: str | None = None, **args) -> Job:
        job = Job(kind, args={"model": self.values.get("model"), **args}, save=save, supersede_key=supersede)
        self._jobs[job.id] = purpose
        return self.state.submit(job)

    def build_map(self) -> None:
        source = self.values.get("source")
        args: dict = {"source": source}
        if source == "folder":
            folder = self.values.get("folder") or QFileDialog.getExistingDirectory(self, "Images to map")
            if not folder:
                return
            self.values.set("folder", folder)
            args["folder"] = folder
        elif source == "gallery":
            args = {"source": "paths", "paths": self._gallery_paths()}
            if not args["paths"]:
                self._say("The gallery has no images yet.")
                return
        self._say("Encoding images…")
        self._submit("latent.map", "map", **args)

    def _gallery_paths(self) -> list[str]:
        window = self.window()
        history = getattr(window, "history", None)
        if history is None:
            return []
        return [str(e.files[0]) for e in history.search(modality="image", limit=2000) if e.files]

    def show_point(self, x: float, y: float, throttled: bool = False) -> None:
        self.current = {"point": [x, y]}
        self.map.mark("current", x, y)
        if throttled:
            self.decode_throttle(None)
        else:
            self._request_decode(None)

    def _request_decode(self, _value) -> None:
        if self.current is None:
            return
        amount = float(self.values.get("attribute_amount") or 0)
        attributes = {self.values.get("attribute"): amount} if amount and self.values.get("attribute") else {}
        self._submit("latent.decode", "decode", supersede=DECODE_KEY, at=self.current, attributes=attributes)

    def pick(self, name: str) -> None:
        if self.current is None:
            self._say("Click the map first.")
            return
        self.picks[name] = self._shown_spec()
        if "point" in self.current:
            self.map.mark(name, *self.current["point"])
        self._say(f"{name} set.")

    def _shown_spec(self) -> dict:
        """The picture on show as a latent (so attribute pushes count, and a rebuilt map doesn't move it); the
        clicked point itself while its decode is still on the way."""
        if self.shown is not None and self.shown[0] == self.current:
            latent = self.shown[1]
            return {"latent": latent.ravel().tolist(), "shape": list(latent.shape)}
        return dict(self.current)

    def _take_restored_ends(self, ends: dict) -> None:
        """End points of a saved strip or walk, as exact latents: they need no map (nothing is marked on it)."""
        self.state.pending_latent_ends = None
        if "picks" in ends:
            self.picks = dict(ends["picks"])
            self.map.clear_marks("A")
            self.map.clear_marks("B")
            self._say("A and B are back from the saved strip: 'Strip A→B' makes it again.")
        if "walk" in ends:
            self.clear_walk()
            self.walk_points = list(ends["walk"])
            self._say(f"The saved walk's {len(self.walk_points)} key points are back: 'Play walk' or 'Save walk'.")

    def add_walk_point(self) -> None:
        if self.current is None:
            self._say("Click the map first.")
            return
        self.walk_points.append(self._shown_spec())
        if "point" in self.current:
            self.map.mark("walk", *self.current["point"], keep=True)
        self._say(f"The walk has {len(self.walk_points)} key points.")

    def clear_walk(self) -> None:
        self.walk_points.clear()
        self.map.clear_marks("walk")
        self.player.stop()

    def _need_ab(self) -> bool:
        if "A" in self.picks and "B" in self.picks:
            return True
        self._say("Set A and B first: click a point, then 'Set A'; another, then 'Set B'.")
        return False

    def make_strip(self) -> None:
        if self._need_ab():
            self._submit("latent.strip", "saved", save=True, a=self.picks["A"], b=self.picks["B"],
                         frames=self.values.get("frames"), mode=self.values.get("mode"), fps=self.values.get("fps"))

    def _walk_args(self) -> dict | None:
        if len(self.walk_points) >= 2:
            return {"points": self.walk_points, "frames_per_leg": self.values.get("frames"), "mode": self.values.get("mode")}
        if self.current is not None:
            return {"start": self.current, "steps": 4 * self.values.get("frames"), "seed": self._seed()}
        self._say("Click the map (a random walk starts there) or add two or more walk points.")
        return None

    def play_walk(self) -> None:
        args = self._walk_args()
        if args:
            self._submit("latent.walk", "walk", **args)

    def save_walk(self) -> None:
        args = self._walk_args()
        if args:
            self._submit("latent.walk", "saved", save=True, fps=self.values.get("fps"), **args)

    def show_grid(self) -> None:
        if self.current is None:
            self._say("Click the map first.")
            return
        self._submit("latent.grid", "grid", at=self.current, size=self.values.get("grid_size"),
                     radius=self.values.get("grid_radius"), directions=self.values.get("directions"))

    @staticmethod
    def _seed() -> int:
        """A fresh seed per breeding, augmentation or random walk (recorded in the output's recipe): breeding
        A x B again gives new children, not copies."""
        return random.randint(0, MAX_SEED)

    def breed(self) -> None:
        if self._need_ab():
            self._submit("latent.breed", "saved", save=True, parent_specs=[self.picks["A"], self.picks["B"]],
                         children=self.values.get("children"), mutation=self.values.get("mutation"),
                         seed=self._seed())

    def find_anomalies(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of images to check")
        if folder:
            self._submit("latent.anomaly", "anomaly", folder=folder)

    def augment(self) -> None:
        if self.current is None:
            self._say("Click the map first.")
            return
        self._submit("latent.augment", "saved", save=True, at=self.current, count=self.values.get("augment_count"),
                     amount=self.values.get("augment_amount"), seed=self._seed())

    # --- results -------------------------------------------------------------------------------

    def _on_job(self, info) -> None:
        if info.job.id in self._jobs and info.error:
            self._say(info.error)
            if self._jobs.get(info.job.id) == "melodies":
                self.melody_message.setText(info.error)

    def _on_result(self, job, result) -> None:
        purpose = self._jobs.pop(job.id, None)
        if purpose == "map":
            view = result.value
            self.map_paths = view.paths
            self.map.set_map(view.points, view.thumbnails, view.labels)
            explained = sum(view.explained[:2]) * 100
            self._say(f"{len(view.points)} images mapped; the two axes hold {explained:.0f}% of the variance. Click anywhere.")
        elif purpose == "decode":
            image, z = result.value
            self.preview.set_image(image)
            self.shown = (job.args["at"], z)  # what is on show, attribute pushes included: what Set A/B takes
        elif purpose == "walk":
            self.frames = result.value
            self._frame = 0
            self.player.start(int(1000 / max(1, self.values.get("fps"))))
            self._say(f"Playing a {len(self.frames)}-frame walk.")
        elif purpose == "melodies":
            self._show_melodies(result.value)
            if result.artifacts and result.artifacts[0].files:
                self.melody_message.setText(f"{self.melody_message.text()} Saved to the gallery: "
                                            f"{result.artifacts[0].files[0].name}.")
        elif purpose == "grid":
            images, size = result.value
            self._show_grid(images, size)
        elif purpose == "anomaly":
            self._show_ranking(result.value)
        elif purpose == "saved":
            for artifact in result.artifacts:
                payload = artifact.payload[0] if isinstance(artifact.payload, list) else artifact.payload
                self.results.insertItem(0, self._result_item(payload, artifact.recipe.prompt))
                self.results.show()
                if isinstance(artifact.payload, list):  # an animation: play it in the preview
                    self.frames, self._frame = artifact.payload, 0
                    self.player.start(int(1000 / max(1, self.values.get("fps"))))
            saved = ", ".join(str(f.name) for a in result.artifacts for f in a.files[:1])
            self._say(f"Saved to the gallery: {saved}")

    def _result_item(self, image, text: str):
        from PySide6.QtGui import QIcon
        from PySide6.QtWidgets import QListWidgetItem

        return QListWidgetItem(QIcon(pil_to_pixmap(image)), text[:20])

    def _next_frame(self) -> None:
        if not self.frames:
            self.player.stop()
            return
        self.preview.set_image(self.frames[self._frame % len(self.frames)])
        self._frame += 1

    def _show_grid(self, images, size: int) -> None:
        from PIL import Image

        width, height = images[0].size
        sheet = Image.new("RGB", (size * width, size * height), "white")
        for index, image in enumerate(images):
            sheet.paste(image, ((index % size) * width, (index // size) * height))
        self.preview.set_image(sheet)
        self._say(f"{size}×{size} neighbourhood: x and y along the chosen directions.")

    def _show_ranking(self, ranking) -> None:
        from PIL import Image

        self.results.clear()
        self.results.show()
        for path, error in ranking[:40]:
            with Image.open(path) as image:
                item = self._result_item(image.convert("RGB"), f"{error:.4f}")
            item.setToolTip(f"{path}\nreconstruction error {error:.5f}")
            self.results.addItem(item)
        self._say("Most unusual first (highest VAE reconstruction error).")

    def _say(self, text: str) -> None:
        self.message.setText(text)
