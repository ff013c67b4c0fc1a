"""Model picker: built-ins, the catalog's hub models, recently used models, and "Add…" (file, folder, hub id)."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QInputDialog, QMenu, QToolButton, QWidget

from studio import paths
from studio.core.catalog import read_catalog
from studio.state import PanelState

RECENT_LIMIT = 8


def _builtin_installed(model_id: str) -> bool:
    name = model_id.split(":", 1)[1]
    folder = paths.builtin_model_dir(name)
    return folder.is_dir() and any(folder.iterdir())


class ModelPicker(QWidget):
    def __init__(self, state: PanelState, modality: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.modality = modality or state.modality  # the latent explorer lists image models
        self.combo = QComboBox()
        # A long model name or path must not set the panel's minimum width (the list pops up as wide as it needs).
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(12)
        self.combo.setToolTip("Which model generates. Built-in models work offline; add your own files or folders.")
        self.browse = QToolButton()
        self.browse.setText("…")
        self.browse.setToolTip("Add a model: a .safetensors file, a diffusers/transformers folder, or a Hugging Face id")
        self.browse.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.browse)
        menu.addAction("A .safetensors file…", self.add_file)
        menu.addAction("A model folder (diffusers or transformers)…", self.add_folder)
        menu.addAction("A Hugging Face id…", self.add_hub_id)
        self.browse.setMenu(menu)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo, 1)
        layout.addWidget(self.browse)
        self.refill()
        self.combo.currentIndexChanged.connect(self._on_pick)
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
        catalog = [model for model in read_catalog() if model.get("modality") == self.modality]
        for model in catalog:
            if model.get("builtin"):
                installed = _builtin_installed(model["id"])
                label = model["name"] + ("" if installed else "  (not installed yet)")
                self.combo.addItem(label, model["id"])
        for model in catalog:  # well-known hub models: from the user's HF cache, or downloaded when online
            if not model.get("builtin"):
                self.combo.addItem(f"{model['name']} (Hugging Face, {model.get('size_mb', '?')} MB)", model["id"])
                self.combo.setItemData(self.combo.count() - 1, model.get("about", ""), Qt.ItemDataRole.ToolTipRole)
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

    def add_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a .safetensors checkpoint", "",
                                              "Safetensors (*.safetensors);;All files (*)")
        self.use(path)

    def add_folder(self) -> None:
        self.use(QFileDialog.getExistingDirectory(self, "Choose a model folder (diffusers or transformers)"))

    def add_hub_id(self) -> None:
        ref, ok = QInputDialog.getText(self, "Hugging Face model", "Model id (e.g. stabilityai/sd-turbo). It is read "
                                       "from your Hugging Face cache, or downloaded when you are online:")
        if ok:
            self.use(ref.strip())

    def use(self, ref: str) -> None:
        """Select a model reference; problems with it are reported when it is loaded, by the worker."""
        if ref:
            self.remember(ref)
            self.state.set("model", ref)
