"""The Text panel's control column: the model (picker, mode, runtime), presets, every sampling control, and the
greying-out of what a server's model can't honour. Bound to the panel's state; the page and the loom are the
panel's (studio/panels/text.py)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.engine.text.settings import PRESET_KEYS
from studio.engine.text.settings import PRESETS as BUILTIN_PRESETS
from studio.library import presets
from studio.state import PanelState
from studio.widgets.controls import ParamSlider, SeedBox, bound_check, bound_combo, compact_combo, row
from studio.widgets.labels import MessageLabel
from studio.widgets.model_picker import ModelPicker
from studio.widgets.sampler_controls import UnsupportedControls, more_samplers


def parse_stops(text: str) -> list[str]:
    """Stop sequences are typed separated by `;`; `\\n` stands for a newline."""
    return [part.replace("\\n", "\n") for part in text.split(";") if part]


def format_stops(stops: list[str]) -> str:
    return ";".join(s.replace("\n", "\\n") for s in stops)


class TextControls:
    """Builds the groups of the column (`groups`) and keeps the controls by setting name (`controls`)."""

    def __init__(self, values: PanelState, info: MessageLabel) -> None:
        self.values, self.info = values, info
        self.groups = [self._model_box(), self._sampling()]
        more, more_controls = more_samplers(values)
        self.controls.update(more_controls)
        self.controls["runtime"] = self.runtime_combo
        self.groups.append(more)
        self.unsupported = UnsupportedControls(self.controls)
        values.backend_models.changed.connect(self.grey_out_unsupported)
        values.value_changed.connect(self._on_value)

    def _model_box(self) -> QGroupBox:
        v = self.values
        model_box = QGroupBox("Model")
        model_layout = QVBoxLayout(model_box)
        model_layout.addWidget(row("Model", ModelPicker(v)))
        self.mode_combo = bound_combo(v, "mode", [("Completion", "completion"), ("Chat", "chat")],
                                      "Completion continues the page; chat answers your messages")
        model_layout.addWidget(row("Mode", self.mode_combo))
        self.runtime_combo = bound_combo(v, "runtime", [("Auto", "auto"), ("llama.cpp", "llama.cpp"),
                                                        ("transformers", "transformers")],
                                         "What runs the model: Auto takes llama.cpp for GGUF files and the built-in "
                                         "(fastest), else transformers")
        model_layout.addWidget(row("Runtime", self.runtime_combo))
        self.presets = compact_combo(QComboBox(), 6)
        self.presets.setToolTip("Move the sliders to a tested combination, or to one you saved")
        self.presets.activated.connect(self.apply_preset)
        save = QPushButton("Save…")
        save.setToolTip("Save the current sampling sliders as a named preset")
        save.clicked.connect(self._ask_preset_name)
        self.delete_preset_button = QPushButton("Delete")
        self.delete_preset_button.setToolTip("Delete the chosen saved preset (built-in presets stay)")
        self.delete_preset_button.clicked.connect(self.delete_preset)
        preset_row = QHBoxLayout()
        preset_row.setContentsMargins(0, 0, 0, 0)
        preset_row.addWidget(self.presets, 1)
        preset_row.addWidget(save)
        preset_row.addWidget(self.delete_preset_button)
        holder = QWidget()
        holder.setLayout(preset_row)
        model_layout.addWidget(row("Preset", holder))
        self.fill_presets()
        return model_box

    def _sampling(self) -> QGroupBox:
        v = self.values
        sampling = QGroupBox("Sampling")
        s = QVBoxLayout(sampling)
        c = self.controls = {  # by setting name: a server that can't honour one greys it out (UnsupportedControls)
            "temperature": ParamSlider(v, "temperature", "Temperature", 0, 2, 0.05, 2, tooltip=(
                "Flattens (high) or sharpens (low) the odds of every next token. 0 = always the likeliest.")),
            "top_k": ParamSlider(v, "top_k", "Top-k", 0, 200, special="off",
                                 tooltip="Only the k likeliest tokens may be picked (0 = no limit)."),
            "top_p": ParamSlider(v, "top_p", "Top-p", 0.05, 1, 0.01, 2, tooltip=(
                "Only the likeliest tokens that together hold p of the probability (nucleus).")),
            "min_p": ParamSlider(v, "min_p", "Min-p", 0, 1, 0.01, 2,
                                 tooltip="Drop tokens less likely than min-p × the likeliest token's probability."),
            "typical_p": ParamSlider(v, "typical_p", "Typical-p", 0.05, 1, 0.01, 2,
                                     tooltip="Keep tokens whose surprise is close to the average surprise (1 = off)."),
            "repetition_penalty": ParamSlider(v, "repetition_penalty", "Repetition penalty", 1, 2, 0.01, 2,
                                              tooltip="Makes tokens already in the recent text less likely (1 = off)."),
            "repetition_window": ParamSlider(v, "repetition_window", "Penalty window", 0, 1024, special="all", tooltip=(
                "How many recent tokens the repetition penalty looks at (0 = all).")),
            "presence_penalty": ParamSlider(v, "presence_penalty", "Presence penalty", 0, 2, 0.05, 2,
                                            tooltip="A flat penalty on any token that appeared at all."),
            "frequency_penalty": ParamSlider(v, "frequency_penalty", "Frequency penalty", 0, 2, 0.05, 2,
                                             tooltip="A penalty that grows with how often a token appeared."),
            "max_new_tokens": ParamSlider(v, "max_new_tokens", "Max new tokens", 1, 2048,
                                          tooltip="Stop after this many tokens."),
            "seed": SeedBox(v),
        }
        for widget in c.values():
            s.addWidget(widget)
        self.stops = QLineEdit(format_stops(v.get("stop", [])))
        self.stops.setPlaceholderText("e.g. \\n\\n;THE END")
        self.stops.setToolTip("Generation ends when one of these appears (not included). Separate with ;  — \\n is a newline.")
        self.stops.textChanged.connect(lambda text: v.set("stop", parse_stops(text)))
        s.addWidget(row("Stop sequences", self.stops))
        c["stop"] = self.stops
        c["greedy"] = bound_check(v, "greedy", "Greedy (always the likeliest token)",
                                  "Ignores temperature and filters: deterministic, often repetitive.")
        c["inspect"] = bound_check(v, "inspect", "Record token candidates",
                                   "Keep each token's top-10 candidates: hover a token to see them, click one to fork "
                                   "(a little slower).")
        s.addWidget(c["greedy"])
        s.addWidget(c["inspect"])
        return sampling

    def grey_out_unsupported(self) -> None:
        """A server's model: the settings its server can't honour are greyed out, saying why."""
        info = self.values.backend_models.find(self.values.get("model"), self.values.get("backend") or "")
        self.unsupported.apply(dict(info.unsupported) if info is not None else {})

    def _on_value(self, name: str, value) -> None:
        if name in ("model", "backend"):
            self.grey_out_unsupported()
        elif name == "stop" and parse_stops(self.stops.text()) != list(value or []):
            self.stops.blockSignals(True)
            self.stops.setText(format_stops(list(value or [])))
            self.stops.blockSignals(False)

    # --- presets: built-in ones from the engine, the user's own saved by name ------------------

    def fill_presets(self, select: str | None = None) -> None:
        self.presets.clear()
        self.presets.addItem("Choose a preset…")
        for name in BUILTIN_PRESETS:
            self.presets.addItem(name, f"builtin:{name}")
        saved = presets.user_presets("text")
        if saved:
            self.presets.insertSeparator(self.presets.count())
            for name in sorted(saved):
                self.presets.addItem(f"★ {name}", f"user:{name}")
        index = self.presets.findData(f"user:{select}") if select else 0
        self.presets.setCurrentIndex(max(0, index))
        self.delete_preset_button.setEnabled(bool(select))

    def apply_preset(self, index: int) -> None:
        kind, _, name = (self.presets.itemData(index) or "").partition(":")
        self.delete_preset_button.setEnabled(kind == "user")
        values = BUILTIN_PRESETS.get(name) if kind == "builtin" else presets.user_presets("text").get(name)
        if values:
            self.values.update({k: v for k, v in values.items() if k in PRESET_KEYS})

    def save_preset(self, name: str) -> None:
        values = {key: self.values.get(key) for key in PRESET_KEYS}
        try:
            presets.save_user_preset("text", name, values)
        except (ValueError, OSError) as exc:
            self.info.setText(f"Could not save the preset: {exc}")
            return
        self.fill_presets(select=name.strip())

    def _ask_preset_name(self) -> None:
        name, ok = QInputDialog.getText(self.presets, "Save preset", "Name for the current sampling settings:")
        if ok and name.strip():
            self.save_preset(name)

    def delete_preset(self) -> None:
        kind, _, name = (self.presets.currentData() or "").partition(":")
        if kind == "user":
            presets.delete_user_preset("text", name)
            self.fill_presets()
