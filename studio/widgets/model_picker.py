"""Model picker: built-ins from the catalog, recently used models, and "Add file or folder…"."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QToolButton, QWidget

from studio import paths
from studio.engine.catalog import read_catalog
from studio.state import PanelState

RECENT_LIMIT = 8


def _builtin_installed(model_id: str) -> bool:
    name = model_id.split(":", 1)[1]
    folder = paths.builtin_model_dir(name)
    return folder.is_dir() and any(folder.iterdir())


class ModelPicker(QWidget):
    def __init__(self, state: PanelState, allow_demo: bool = True, modality: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.modality = modality or state.modality  # the latent explorer lists image models
        self.allow_demo = allow_demo
        self.combo = QComboBox()
        self.combo.setToolTip("Which model generates. Built-in models work offline; add your own files or folders.")
        self.browse = QToolButton()
        self.browse.setText("…")
        self.browse.setToolTip("Add a model: a diffusers or transformers folder, or a .safetensors file")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo, 1)
        layout.addWidget(self.browse)
        self.refill()
        self.combo.currentIndexChanged.connect(self._on_pick)
        self.browse.clicked.connect(self.add_model)
        state.value_changed.connect(lambda name, value: self.refill() if name == "model" else None)

    def _settings_key(self) -> str:
        return f"models/recent_{self.state.modality}"

    def recent(self) -> list[str]:
        value = QSettings().value(self._settings_key(), [])
        return [value] if isinstance(value, str) else list(value or [])

    def remember(self, ref: str) -> None:
        items = [ref] + [r for r in self.recent() if r != ref]
        QSettings().setValue(self._settings_key(), items[:RECENT_LIMIT])

    def refill(self) -> None:
        current = self.state.get("model")
        self.combo.blockSignals(True)
        self.combo.clear()
        for model in read_catalog():
            if model.get("modality") == self.modality and model.get("builtin"):
                installed = _builtin_installed(model["id"])
                label = model["name"] + ("" if installed else "  (not installed yet)")
                self.combo.addItem(label, model["id"])
        for ref in self.recent():
            if self.combo.findData(ref) < 0:
                self.combo.addItem(ref, ref)
        if current and self.combo.findData(current) < 0:
            self.combo.addItem(current, current)
        self.combo.setCurrentIndex(max(0, self.combo.findData(current)))
        self.combo.blockSignals(False)

    def _on_pick(self, _index: int) -> None:
        ref = self.combo.currentData()
        if ref:
            self.state.set("model", ref)

    def add_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a .safetensors checkpoint (Cancel to pick a folder)",
                                              "", "Safetensors (*.safetensors);;All files (*)")
        if not path:
            path = QFileDialog.getExistingDirectory(self, "Choose a model folder (diffusers or transformers)")
        if path:
            self.remember(path)
            self.state.set("model", path)
