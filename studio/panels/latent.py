"""Latent Explorer: map the model's latent space, click to decode, interpolate, walk, grid, breed.

Two tabs: Images (the image model's VAE latent) and Melodies (the melody VAE: two melodies, from seeds
or from the gallery's music, interpolated step by step, shown on a piano roll and played).

The panel only draws: what it shows (the map, the point on show, the picks, the walk, the frames, the melody
strip) lives in `state.explorer` (studio/state/explorer.py), which also builds the jobs and takes their results.
Every computation is a worker job; dragging on the map or moving the attribute slider goes
through a Throttle (≤ 1 request per frame) and the worker's supersede key (a newer decode
replaces a queued one), so the GUI never waits and the last position always wins.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.state import State
from studio.widgets.audio_player import AudioPlayer
from studio.widgets.controls import (
    ColumnSplitter,
    ParamSlider,
    bound_combo,
    bound_line,
    compact_combo,
    row,
    scroll_column,
)
from studio.widgets.gan_controls import GanControls
from studio.widgets.image_view import ImageView, pil_to_pixmap
from studio.widgets.labels import MessageLabel
from studio.widgets.latent_map import LatentMapView
from studio.widgets.model_picker import ModelPicker
from studio.widgets.piano_roll import PianoRoll
from studio.widgets.throttle import Throttle

if TYPE_CHECKING:
    from studio.library.history import History

SOURCES = [("Built-in model's training images", "dataset"), ("My gallery's images", "gallery"), ("A folder…", "folder")]
MODES = [("Slerp (stays on the shell)", "slerp"), ("Lerp (straight line)", "lerp")]
DIRECTIONS = [("Principal components 1 & 2", "pca"), ("Random directions", "random")]


def _distinct_labels(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Two pieces with the same prompt got the same label: repeated labels gain their file's name."""
    from collections import Counter

    counts = Counter(label for label, _value in items)
    return [(f"{label} · {Path(value).stem}" if counts[label] > 1 else label, value) for label, value in items]


class LatentPanel(QWidget):
    modality = "latent"

    def __init__(self, state: State, history: History | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.history = state, history
        self.explorer = state.explorer
        self.values = state.panels["latent"]
        self._frame = 0  # the next frame of `explorer.frames` to show
        self.decode_throttle = Throttle(self._request_decode, parent=self)
        self.player = QTimer(self)
        self.player.timeout.connect(self._next_frame)
        splitter = ColumnSplitter(self._controls(), self._stage())
        self.melody_player = AudioPlayer(self)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.tabBar().setDrawBase(False)  # the base line drew a stray white rule across the panel
        self.tabs.addTab(splitter, "Images")
        self.tabs.addTab(self._melodies_tab(), "Melodies")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.tabs)
        # The sub-tab lives in state (so a restore can choose it even before this panel exists, and it persists).
        self.tabs.setCurrentIndex(1 if self.values.get("tab") == "melodies" else 0)
        self.tabs.currentChanged.connect(lambda index: self.values.set("tab", "melodies" if index == 1 else "images"))
        self.values.value_changed.connect(self._on_tab_value)
        self._bind()
        if self.values.get("tab") == "melodies":
            self.refresh_melody_sources()

    def _bind(self) -> None:
        """Draw what the explorer holds now (a recipe may have been restored before this panel was built), then
        follow its changes."""
        e = self.explorer
        self.message.setText(e.message)
        self.melody_message.setText(e.melody_message)
        if e.map is not None:
            self._draw_map(e.map)
        if e.shown_image is not None:
            self.preview.set_image(e.shown_image)
        if e.melody is not None:
            self._show_melodies(e.melody)
        e.message_changed.connect(self.message.setText)
        e.melody_message_changed.connect(self.melody_message.setText)
        e.map_changed.connect(self._draw_map)
        e.marks_changed.connect(self._draw_marks)
        e.shown_changed.connect(self.preview.set_image)
        e.frames_changed.connect(self._play_frames)
        e.grid_ready.connect(self._show_grid)
        e.ranking_ready.connect(self._show_ranking)
        e.saved_ready.connect(self._show_saved)
        e.melody_changed.connect(self._show_melodies)
        self.melody_player.unavailable.connect(e.say_melody)

    # --- building ----------------------------------------------------------------------------

    def _controls(self) -> QWidget:
        v, e = self.values, self.explorer
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
            button.clicked.connect(lambda _=False, n=name: e.pick(n))
            picks.addWidget(button)
        add = QPushButton("Add to walk")
        add.setToolTip("Add the point on show to the loop the walk goes through")
        add.clicked.connect(lambda: e.add_walk_point())
        picks.addWidget(add)
        t.addLayout(picks)
        t.addWidget(row("Path", bound_combo(v, "mode", MODES, "Slerp keeps Gaussian samples on their shell; lerp cuts across")))
        t.addWidget(ParamSlider(v, "frames", "Frames", 2, 64, tooltip="Frames from A to B, or per leg of a walk"))
        t.addWidget(ParamSlider(v, "fps", "Playback fps", 1, 60, tooltip="Speed of the live walk and of exported GIF/MP4 animations"))
        buttons = QGridLayout()
        for index, (label, slot) in enumerate([("Strip A→B (save)", e.make_strip), ("Play walk", e.play_walk),
                                               ("Save walk (GIF + MP4)", e.save_walk), ("Clear walk", e.clear_walk)]):
            button = QPushButton(label)
            button.clicked.connect(lambda _=False, slot=slot: slot())
            buttons.addWidget(button, index // 2, index % 2)
        t.addLayout(buttons)
        self.gan_box = GanControls(e, lambda: self.decode_throttle(None))
        return scroll_column(map_box, self.gan_box, travel, self._around_box(), self._family_box(),
                             self._diffusion_box())

    def _around_box(self) -> QWidget:
        v = self.values
        around = QGroupBox("Neighbourhood and attributes")
        a = QVBoxLayout(around)
        a.addWidget(row("Directions", bound_combo(v, "directions", DIRECTIONS)))
        a.addWidget(ParamSlider(v, "grid_size", "Grid size", 3, 9, tooltip="k×k images around the point on show"))
        a.addWidget(ParamSlider(v, "grid_radius", "Radius", 0.1, 5, 0.1, 1, tooltip="How far the grid reaches, in standard deviations"))
        grid = QPushButton("Show grid around the point")
        grid.clicked.connect(lambda: self.explorer.show_grid())
        a.addWidget(grid)
        a.addWidget(row("Attribute", bound_line(v, "attribute", "a word in the labels: face, heart, red…",
                                                "Direction = mean latent of images labelled with it − mean of the rest")))
        self.attribute_slider = ParamSlider(v, "attribute_amount", "Amount", -3, 3, 0.05, 2,
                                            tooltip="Push the point on show along the attribute's direction")
        a.addWidget(self.attribute_slider)
        v.value_changed.connect(lambda name, value: self.decode_throttle(None) if name == "attribute_amount" else None)
        return around

    def _family_box(self) -> QWidget:
        v = self.values
        family = QGroupBox("Breed and dataset tools")
        f = QVBoxLayout(family)
        f.addWidget(ParamSlider(v, "children", "Children", 1, 9))
        f.addWidget(ParamSlider(v, "mutation", "Mutation", 0, 1, 0.05, 2, tooltip="How far children stray from their parents"))
        breed = QPushButton("Breed A × B")
        breed.setToolTip("Children of A and B, saved with their family tree")
        breed.clicked.connect(lambda: self.explorer.breed())
        f.addWidget(breed)
        anomalies = QPushButton("Find unusual images in a folder…")
        anomalies.setToolTip("Ranks images by how badly the VAE reconstructs them: the oddest first")
        anomalies.clicked.connect(self.find_anomalies)
        f.addWidget(anomalies)
        f.addWidget(ParamSlider(v, "augment_count", "Variations", 1, 32))
        f.addWidget(ParamSlider(v, "augment_amount", "Nudge", 0.01, 1, 0.01, 2))
        augment = QPushButton("Export variations of the point on show")
        augment.clicked.connect(lambda: self.explorer.augment())
        f.addWidget(augment)
        return family

    def _diffusion_box(self) -> QWidget:
        v = self.values
        box = QGroupBox("Diffusion noise space")
        box.setToolTip("Seed and prompt travel with the Image panel's prompt and model")
        layout = QVBoxLayout(box)
        layout.addWidget(ParamSlider(v, "seed_b", "Seed B", 0, 2**31 - 1,
                                     tooltip="Seed travel goes from the Image panel's seed to this one (slerp of the noise)"))
        layout.addWidget(row("Prompt B", bound_line(v, "prompt_b", "prompt travel ends here",
                                                    "Prompt travel interpolates the text encoding between two prompts")))
        buttons = QHBoxLayout()
        for label, kind in (("Seed travel", "image.seed_travel"), ("Prompt travel", "image.prompt_travel")):
            button = QPushButton(label)
            button.clicked.connect(lambda _=False, k=kind: self.explorer.travel(k))
            buttons.addWidget(button)
        layout.addLayout(buttons)
        return box

    def _stage(self) -> QWidget:
        self.map = LatentMapView()
        self.map.point_clicked.connect(self.show_point)
        self.map.point_dragged.connect(lambda x, y: self.show_point(x, y, throttled=True))
        self.preview = ImageView(placeholder="Click the map to decode a point.")
        self.preview.setMinimumSize(160, 160)
        self.results = QListWidget()
        self.results.setViewMode(QListWidget.ViewMode.IconMode)
        self.results.setIconSize(QSize(64, 64))
        self.results.setWordWrap(True)  # captions wrap onto three lines instead of being cut
        self.results.setGridSize(QSize(132, 64 + 3 * self.fontMetrics().height() + 12))
        self.results.setMaximumHeight(64 + 3 * self.fontMetrics().height() + 40)
        self.results.hide()  # shown with the first saved result or ranking
        self.message = MessageLabel()
        self.message.setObjectName("hint")
        # The map takes the stage's whole width and most of its height; the decoded picture sits under it (side
        # by side, the map got ~70 px of a 1,024 px window).
        top = QSplitter(Qt.Orientation.Vertical)
        top.addWidget(self.map)
        top.addWidget(self.preview)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 1)
        top.setSizes([3000, 1000])
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
            combo = compact_combo(QComboBox())
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
        go.clicked.connect(lambda: self.interpolate_melodies())
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
        return ColumnSplitter(scroll_column(ends, path), self._melody_stage())

    def _melody_stage(self) -> QWidget:
        self.melody_roll = PianoRoll()
        self.melody_roll.setToolTip("Each step of the interpolation is two bars, in alternating colours")
        self.melody_play = QPushButton("▶ Play")
        self.melody_play.setEnabled(False)
        self.melody_play.clicked.connect(self.toggle_melody_play)
        self.melody_step = QLabel("")
        self.melody_message = MessageLabel()
        self.melody_message.setObjectName("hint")
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
        return stage

    def _on_tab_value(self, name: str, value) -> None:
        if name == "tab":
            self.tabs.setCurrentIndex(1 if value == "melodies" else 0)
            if value == "melodies":
                self.refresh_melody_sources()  # a restored strip's ends may name a gallery piece

    def refresh_melody_sources(self) -> None:
        """Random, or one of the gallery's recent music pieces (their MIDI files)."""
        items = [("Random melody (seed below)", "seed")]
        if self.history is not None:
            for entry in self.history.search(modality="music", limit=40):
                midi = next((f for f in entry.files if f.suffix == ".mid"), None)
                if midi is not None:
                    items.append((f"Gallery: {(entry.prompt or midi.stem)[:40]}", str(midi)))
        items = _distinct_labels(items)
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

    def interpolate_melodies(self, save: bool = False):
        self.melody_player.stop()
        return self.explorer.interpolate_melodies(save=save)

    def _show_melodies(self, result) -> None:
        self.melody_player.stop()  # the old strip's sound and playhead must not run over the new roll
        self.melody_roll.set_notes(result.sequence.notes, beats_per_bar=4)
        self.melody_play.setEnabled(True)
        self.melody_step.setText("")

    def toggle_melody_play(self) -> None:
        melody = self.explorer.melody
        if self.melody_player.playing:
            self.melody_player.stop()
        elif melody is not None:
            self.melody_player.play(melody.audio, melody.sample_rate)

    def _on_melody_playing(self, playing: bool) -> None:
        self.melody_play.setText("■ Stop" if playing else "▶ Play")
        if not playing:
            self.melody_roll.set_playhead(None)
            self.melody_step.setText("")

    def _on_melody_position(self, seconds: float) -> None:
        melody = self.explorer.melody
        beats = seconds * melody.sequence.tempo_bpm / 60.0
        self.melody_roll.set_playhead(beats)
        step = min(len(melody.melodies), int(beats // melody.beats_per_melody) + 1)
        self.melody_step.setText(f"Step {step} of {len(melody.melodies)}")

    # --- gestures that need the panel (dialogs, the history, the throttle) ----------------------

    def build_map(self) -> None:
        if self.values.get("source") == "folder" and not self.values.get("folder"):
            folder = QFileDialog.getExistingDirectory(self, "Images to map")
            if not folder:
                return
            self.values.set("folder", folder)
        gallery = self._gallery_paths() if self.values.get("source") == "gallery" else None
        self.explorer.build_map(gallery_paths=gallery)

    def _gallery_paths(self) -> list[str]:
        if self.history is None:
            return []
        return [str(e.files[0]) for e in self.history.search(modality="image", limit=2000) if e.files]

    def show_point(self, x: float, y: float, throttled: bool = False) -> None:
        self.explorer.point(x, y)
        if throttled:
            self.decode_throttle(None)
        else:
            self._request_decode(None)

    def _request_decode(self, _value) -> None:
        self.explorer.decode()

    def find_anomalies(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of images to check")
        if folder:
            self.explorer.find_anomalies(folder)

    # --- drawing what the explorer holds --------------------------------------------------------

    def _draw_map(self, view) -> None:
        self.map.set_map(view.points, view.thumbnails, view.labels)
        for name in list(self.explorer.marks):
            self._draw_marks(name)

    def _draw_marks(self, name: str) -> None:
        self.map.clear_marks(name)
        for x, y in self.explorer.marks.get(name, []):
            self.map.mark(name, x, y, keep=True)

    def _play_frames(self, frames: list) -> None:
        self._frame = 0
        if frames:
            self.player.start(int(1000 / max(1, self.values.get("fps"))))
        else:
            self.player.stop()

    def _next_frame(self) -> None:
        frames = self.explorer.frames
        if not frames:
            self.player.stop()
            return
        self.preview.set_image(frames[self._frame % len(frames)])
        self._frame += 1

    def _show_saved(self, artifacts: list) -> None:
        for artifact in artifacts:
            payload = artifact.payload[0] if isinstance(artifact.payload, list) else artifact.payload
            self.results.insertItem(0, self._result_item(payload, artifact.recipe.prompt))
            self.results.show()

    def _result_item(self, image, text: str) -> QListWidgetItem:
        """An icon with its caption on up to three lines (the whole text in its tooltip)."""
        shown = text if len(text) <= 60 else text[:59] + "…"
        item = QListWidgetItem(QIcon(pil_to_pixmap(image)), shown)
        item.setToolTip(text)
        return item

    def _show_grid(self, images, size: int) -> None:
        from PIL import Image

        width, height = images[0].size
        sheet = Image.new("RGB", (size * width, size * height), "white")
        for index, image in enumerate(images):
            sheet.paste(image, ((index % size) * width, (index // size) * height))
        self.preview.set_image(sheet)

    def _show_ranking(self, ranking) -> None:
        from PIL import Image

        self.results.clear()
        self.results.show()
        for path, error in ranking[:40]:
            with Image.open(path) as image:
                item = self._result_item(image.convert("RGB"), f"{error:.4f}")
            item.setToolTip(f"{path}\nreconstruction error {error:.5f}")
            self.results.addItem(item)
