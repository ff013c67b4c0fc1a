"""Model picker: built-ins, the catalog's hub models, recently used models, and "Add…" (file, folder, hub id)."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QInputDialog, QMenu, QToolButton, QWidget

from studio import paths
from studio.core.catalog import read_catalog
from studio.state import PanelState

RECENT_LIMIT = 8
BACKEND_ROLE = Qt.ItemDataRole.UserRole + 1  # the server an item runs on ("" = this computer)


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
        if self.modality == "text":  # LM Studio's, Ollama's, KoboldCpp's models: run by llama.cpp
            menu.addAction("A GGUF file (llama.cpp)…", self.add_gguf)
        self.browse.setMenu(menu)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo, 1)
        layout.addWidget(self.browse)
        self.refill()
        self.combo.currentIndexChanged.connect(self._on_pick)
        state.value_changed.connect(lambda name, value: self.refill() if name in ("model", "backend") else None)
        state.backend_models.changed.connect(self.refill)

    def _settings_key(self) -> str:
        return f"models/recent_{self.state.modality}"

    def recent(self) -> list[str]:
        value = QSettings().value(self._settings_key(), [])
        return [value] if isinstance(value, str) else list(value or [])

    def remember(self, ref: str) -> None:
        items = [ref] + [r for r in self.recent() if r != ref]
        QSettings().setValue(self._settings_key(), items[:RECENT_LIMIT])

    def refill(self) -> None:
        current, where = self.state.get("model"), self.state.get("backend") or ""
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
            if self._index_of(ref, "") < 0:
                self.combo.addItem(ref, ref)
        for model in self.state.backend_models.for_medium(self.modality):  # servers' models: "sd15 — on gpu-box"
            self._add_remote(model.ref, model.where, model.label, model.ready, model.note)
        if current and self._index_of(current, where) < 0:
            if where:  # a recipe made on a server that is not connected now
                self._add_remote(current, where, current, False, f"{where} is not connected")
            else:
                self.combo.addItem(current, current)
        self.combo.setCurrentIndex(max(0, self._index_of(current, where)))
        self.combo.blockSignals(False)

    def _add_remote(self, ref: str, where: str, label: str, ready: bool, note: str) -> None:
        self.combo.addItem(f"{label} — on {where}" + ("" if ready else " (not ready)"), ref)
        self.combo.setItemData(self.combo.count() - 1, where, BACKEND_ROLE)
        self.combo.setItemData(self.combo.count() - 1, note or f"runs on the server {where}", Qt.ItemDataRole.ToolTipRole)

    def _index_of(self, ref: str | None, where: str) -> int:
        for index in range(self.combo.count()):
            if self.combo.itemData(index) == ref and (self.combo.itemData(index, BACKEND_ROLE) or "") == where:
                return index
        return -1

    def _on_pick(self, index: int) -> None:
        ref = self.combo.currentData()
        if ref:
            self.state.set("backend", self.combo.itemData(index, BACKEND_ROLE) or "")
            self.state.set("model", ref)

    def add_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a .safetensors checkpoint", "",
                                              "Safetensors (*.safetensors);;All files (*)")
        self.use(path)

    def add_gguf(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF model (F16, Q8, Q4…)", "",
                                              "GGUF models (*.gguf);;All files (*)")
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
            self.state.set("backend", "")  # a file, folder or hub id runs on this computer
            self.state.set("model", ref)
