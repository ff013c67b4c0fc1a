"""Train panel: teach a model your own pictures, texts or music in six steps, and use the result as an adapter.

1 Data (a folder, what is in it, what is wrong with it) · 2 Captions / tags (a table; a trigger word) · 3 Base model
and preset (named by minutes on a 2-core computer) · 4 Strength, and an Advanced box · 5 Run (a job in the engine,
a live loss curve, a sample grid every few steps, Resume after a cancel or a restart) · 6 Pick the best grid and
save it as an adapter, which the model pickers then list as "<base model> + <adapter>".

The panel binds to `state.panels["train"]` (the values, defaults in engine/train/settings.py) and
`state.training` (TrainState: the folder read, the run, the checkpoints); it holds nothing of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.engine.train import settings as train_settings
from studio.state import State
from studio.widgets.controls import (
    ColumnSplitter,
    ParamSlider,
    bound_check,
    bound_combo,
    bound_line,
    compact_combo,
    row,
    scroll_column,
)
from studio.widgets.flow import FlowLayout
from studio.widgets.labels import MessageLabel
from studio.widgets.loss_plot import LossPlot
from studio.widgets.train_views import CheckpointView, ItemTable

if TYPE_CHECKING:
    from studio.library.history import History

HELP = train_settings.HELP
MEDIA = [("Pictures", "image"), ("Text", "text"), ("Music", "music")]
BASE_LABELS = {"builtin:emoji-ldm": "Emoji LDM (built-in)", "builtin:text-gpt": "Text GPT (built-in)",
               "builtin:music-gpt": "Music GPT (built-in)"}


def problem_lines(report: dict | None) -> str:
    """The Data step's problems as rich text: errors first, in red; warnings after."""
    if not report:
        return ""
    lines = []
    for problem in sorted(report["problems"], key=lambda p: p["level"] != "error"):
        colour = "#b00" if problem["level"] == "error" else "#a60"
        mark = "✖" if problem["level"] == "error" else "⚠"
        text = problem["text"].replace("&", "&amp;").replace("<", "&lt;")
        lines.append(f'<span style="color:{colour}">{mark} {text}</span>')
    return "<br>".join(lines)


class TrainPanel(QWidget):
    modality = "train"

    def __init__(self, state: State, history: History | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.values, self.train = state, state.panels["train"], state.training
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(ColumnSplitter(self._steps(), self._stage()))
        self.values.value_changed.connect(self._on_value)
        self.train.report_changed.connect(self._on_report)
        self.train.message_changed.connect(self.message.setText)
        self.train.history_reset.connect(lambda: self.plot.set_points(self.train.history))
        self.train.loss_added.connect(self.plot.add_point)
        self.train.checkpoints_changed.connect(self._on_checkpoints)
        self.train.picked_changed.connect(lambda _step: self._on_checkpoints())
        self.train.busy_changed.connect(lambda _busy: self._update_buttons())
        self.train.saved.connect(self._on_saved)
        self._fill_models()
        self._refresh_runs()
        self._on_report()

    # --- steps 1-4: the left column -----------------------------------------------------------------------------------

    def _steps(self) -> QWidget:
        return scroll_column(self._data_step(), self._captions_step(), self._model_step(), self._knob_step(),
                             min_width=340)

    def _data_step(self) -> QWidget:
        box = QGroupBox("1 · Your folder")
        layout = QVBoxLayout(box)
        layout.addWidget(row("Material", bound_combo(self.values, "medium", MEDIA, "What the folder holds")))
        folder = QHBoxLayout()
        self.folder = bound_line(self.values, "folder", "a folder of pictures, texts or music", HELP["folder"])
        browse = QPushButton("Choose…")
        browse.setToolTip(HELP["folder"])
        browse.clicked.connect(self.choose_folder)
        folder.addWidget(self.folder, 1)
        folder.addWidget(browse)
        layout.addLayout(folder)
        self.read_button = QPushButton("Read the folder")
        self.read_button.setToolTip("List what is in the folder and anything that would spoil the training. Nothing "
                                    "is trained yet.")
        self.read_button.clicked.connect(lambda: self.train.scan())
        layout.addWidget(self.read_button)
        self.summary = MessageLabel("")
        self.problems = QLabel("")
        self.problems.setWordWrap(True)
        self.problems.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.summary)
        layout.addWidget(self.problems)
        return box

    def _captions_step(self) -> QWidget:
        box = QGroupBox("2 · Captions and tags")
        layout = QVBoxLayout(box)
        self.trigger = bound_line(self.values, "trigger", "e.g. pxlart", HELP["trigger"])
        layout.addWidget(row("Trigger word", self.trigger, HELP["trigger"]))
        self.draft_button = QPushButton("Draft captions from the pictures")
        self.draft_button.setToolTip("First-draft captions: the file name's words and each picture's main colour. "
                                     "Edit them in the table; sidecar .txt files are read first.")
        self.draft_button.clicked.connect(lambda: self.train.scan(draft_captions=True))
        layout.addWidget(self.draft_button)
        self.table = ItemTable(self.train)
        layout.addWidget(self.table)
        return box

    def _model_step(self) -> QWidget:
        box = QGroupBox("3 · Model and length")
        layout = QVBoxLayout(box)
        self.model = compact_combo(QComboBox())  # a long model or adapter name must not widen the panel
        self.model.setToolTip(HELP["model"])
        self.model.activated.connect(self._on_model_picked)
        layout.addWidget(row("Base model", self.model, HELP["model"]))
        presets = [(train_settings.preset_label(p.name), p.name) for p in train_settings.PRESETS]
        self.preset = bound_combo(self.values, "preset", presets, HELP["preset"])
        for index, preset in enumerate(train_settings.PRESETS):
            self.preset.setItemData(index, preset.about, Qt.ItemDataRole.ToolTipRole)
        layout.addWidget(row("Length", self.preset, HELP["preset"]))
        self.gpu_note = MessageLabel("")
        self.gpu_note.setObjectName("hint")
        layout.addWidget(self.gpu_note)
        return box

    def _knob_step(self) -> QWidget:
        box = QGroupBox("4 · Strength")
        layout = QVBoxLayout(box)
        layout.addWidget(ParamSlider(self.values, "strength", "Strength", 0.25, 2.0, 0.05, 2, HELP["strength"]))
        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setText("Advanced ▸")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.advanced = self._advanced()
        self.advanced.setVisible(False)
        self.advanced_toggle.toggled.connect(self._toggle_advanced)
        layout.addWidget(self.advanced_toggle, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.advanced)
        return box

    def _advanced(self) -> QWidget:
        v = self.values
        holder = QWidget()
        layout = QVBoxLayout(holder)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(ParamSlider(v, "rank", "Rank", 1, 64, 1, 0, HELP["rank"]))
        layout.addWidget(ParamSlider(v, "learning_rate", "Learning rate", 0, 0.01, 0.0001, 4, HELP["learning_rate"],
                                     special="usual"))
        layout.addWidget(ParamSlider(v, "batch", "Batch", 0, 64, 1, 0, HELP["batch"], special="usual"))
        layout.addWidget(ParamSlider(v, "steps", "Steps", 0, 20000, 10, 0, HELP["steps"], special="preset"))
        layout.addWidget(ParamSlider(v, "resolution", "Picture size", 0, 1024, 8, 0, HELP["resolution"],
                                     special="model's"))
        layout.addWidget(ParamSlider(v, "sample_every", "Grid every", 0, 5000, 5, 0, HELP["sample_every"],
                                     special="auto"))
        layout.addWidget(ParamSlider(v, "checkpoint_minutes", "Save every (min)", 0.5, 30, 0.5, 1,
                                     HELP["checkpoint_minutes"]))
        layout.addWidget(ParamSlider(v, "seed", "Seed", 0, 99999, 1, 0, HELP["seed"]))
        self.text_encoder = bound_check(v, "train_text_encoder", "Also teach the text encoder", HELP["train_text_encoder"])
        layout.addWidget(self.text_encoder)
        return holder

    # --- steps 5-6: the stage -----------------------------------------------------------------------------------------

    def _stage(self) -> QWidget:
        holder = QWidget()
        layout = QVBoxLayout(holder)
        run_box = QGroupBox("5 · Train")
        run = QVBoxLayout(run_box)
        buttons = FlowLayout()
        self.start_button = QPushButton("Start training")
        self.start_button.setToolTip("Train a new adapter from the folder (a job in the Jobs list; the app stays usable)")
        self.start_button.clicked.connect(lambda: self.train.start())
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current step; the last checkpoint is kept and Resume goes on from it")
        self.stop_button.clicked.connect(self.train.cancel)
        self.runs = compact_combo(QComboBox())
        self.runs.setToolTip("Runs that were stopped or interrupted (also by closing the app): pick one to resume")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Go on from the run's last checkpoint, with the very same data and settings")
        self.resume_button.clicked.connect(self._resume)
        for widget in (self.start_button, self.stop_button, self.runs, self.resume_button):
            buttons.addWidget(widget)
        run.addLayout(buttons)
        self.plot = LossPlot()
        run.addWidget(self.plot, 1)
        self.message = MessageLabel("")
        run.addWidget(self.message)
        layout.addWidget(run_box, 2)
        layout.addWidget(self._pick_step(), 3)
        return holder

    def _pick_step(self) -> QWidget:
        box = QGroupBox("6 · Pick and use")
        layout = QVBoxLayout(box)
        self.checkpoints = CheckpointView(self.train)
        layout.addWidget(self.checkpoints, 1)
        save = FlowLayout()
        self.name = bound_line(self.values, "name", "adapter name (default: the folder's)", HELP["name"])
        self.save_button = QPushButton("Save as adapter")
        self.save_button.setToolTip("Save the picked checkpoint (★ the best score if you pick none) as an adapter with "
                                    "its card; it then appears in the model lists as “base model + name”")
        self.save_button.clicked.connect(lambda: self.train.save(str(self.values.get("name") or "")))
        save.addWidget(self.name)
        save.addWidget(self.save_button)
        layout.addLayout(save)
        self.saved_note = MessageLabel("")
        self.saved_note.setObjectName("hint")
        layout.addWidget(self.saved_note)
        return box

    # --- behaviour ----------------------------------------------------------------------------------------------------

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the folder to learn from",
                                                  str(self.values.get("folder") or ""))
        if folder:
            self.values.set("folder", folder)
            self.train.scan()

    def _toggle_advanced(self, shown: bool) -> None:
        self.advanced.setVisible(shown)
        self.advanced_toggle.setText("Advanced ▾" if shown else "Advanced ▸")

    def _fill_models(self) -> None:
        medium = self.values.get("medium") or "image"
        builtin = train_settings.BASE_MODELS[medium]
        current = str(self.values.get("model") or builtin)
        self.model.clear()
        self.model.addItem(BASE_LABELS.get(builtin, builtin), builtin)
        if current != builtin:
            self.model.addItem(current.replace("\\", "/").rsplit("/", 1)[-1], current)
        if medium == "image":
            self.model.addItem("A Stable Diffusion 1.x/2.x folder or file…", "…")
        self.model.setCurrentIndex(0 if current == builtin else 1)
        self.draft_button.setVisible(medium == "image")
        self.trigger.parentWidget().setVisible(medium == "image")
        self.text_encoder.setVisible(medium == "image")

    def _on_model_picked(self, index: int) -> None:
        ref = self.model.itemData(index)
        if ref == "…":
            path, _ = QFileDialog.getOpenFileName(self, "A Stable Diffusion checkpoint", "",
                                                  "Safetensors (*.safetensors);;All files (*)")
            ref = path or self.values.get("model") or ""
        if ref and ref != "…":
            self.values.set("model", "" if ref == train_settings.BASE_MODELS.get(self.values.get("medium")) else ref)

    def _on_value(self, name: str, _value) -> None:
        if name in ("medium", "model"):
            self._fill_models()
            self._on_report()
        if name == "medium":
            self.values.set("model", "")

    def _on_report(self) -> None:
        report = self.train.report
        fits = bool(report) and report.get("medium") == self.values.get("medium")
        self.summary.setText(report["summary"] if fits else "Choose a folder and read it: nothing is trained yet.")
        self.problems.setText(problem_lines(report) if fits else "")
        needs_gpu = [p["text"] for p in (report or {}).get("problems", []) if "NVIDIA GPU" in p["text"]]
        self.gpu_note.setText(needs_gpu[0] if fits and needs_gpu else "")
        self._update_buttons()

    def _on_checkpoints(self) -> None:
        self.plot.set_checkpoints([c["step"] for c in self.train.checkpoints], self.train.picked)
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.train.running()
        if not running:
            self._refresh_runs()  # a run just stopped is one to resume
        self.start_button.setEnabled(self.train.can_start() and not running)
        self.stop_button.setEnabled(running)
        self.resume_button.setEnabled(self.runs.count() > 0 and not running)
        self.save_button.setEnabled(bool(self.train.run_dir and self.train.checkpoints) and not running)

    def _refresh_runs(self) -> None:
        current = self.runs.currentData()
        self.runs.clear()
        for run in self.train.unfinished_runs():
            self.runs.addItem(f"{run['name']} ({run['medium']}, step {run['step']} of {run['steps']})", run["run_dir"])
        self.runs.setVisible(self.runs.count() > 0)
        self.resume_button.setVisible(self.runs.count() > 0)
        index = self.runs.findData(current)
        if index >= 0:
            self.runs.setCurrentIndex(index)

    def _resume(self) -> None:
        run_dir = self.runs.currentData()
        if run_dir:
            self.train.resume(run_dir)

    def _on_saved(self, folder: str) -> None:
        medium = {"image": "Image", "text": "Text", "music": "Music"}.get(self.values.get("medium"), "")
        self.saved_note.setText(f"Saved to {folder}. In the {medium} tab, pick it in the model list "
                                "(“base model + name”); every output records it and its hash.")
