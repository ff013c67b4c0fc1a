"""Model picker: the model list this computer has (built-ins, model folders, the Hugging Face cache, catalog models
to download — each marked when not ready), recently used models, servers' models, and "…" (add a file, folder or
hub id; open the model manager)."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QInputDialog, QMenu, QToolButton, QWidget

from studio import paths
from studio.core import adapters as lora
from studio.core.catalog import read_catalog
from studio.core.jobs import UserError
from studio.core.model_library import READY, ModelEntry, size_text
from studio.state import PanelState

RECENT_LIMIT = 8
ADAPTER_PREFIX = "adapter:"  # an item that is a base model + one of the Train tab's adapters
BACKEND_ROLE = Qt.ItemDataRole.UserRole + 1  # the server an item runs on ("" = this computer)


def _builtin_installed(model_id: str) -> bool:
    name = model_id.split(":", 1)[1]
    folder = paths.builtin_model_dir(name)
    return folder.is_dir() and any(folder.iterdir())


def entry_label(entry: ModelEntry) -> str:
    """How the picker names a model: not-ready ones say why in a word or two."""
    if entry.status == READY:
        return entry.name + (f"  ({entry.family_text})" if entry.family and entry.kind != "builtin" else "")
    why = {"not downloaded": f"not downloaded, {size_text(entry.size)}", "needs files": "needs files",
           "not installed": "not installed yet"}.get(entry.status, entry.status)
    return f"{entry.name}  ({why})"


class ModelPicker(QWidget):
    picked = Signal(str)  # the user chose a model (not a restore): the panel may fit its settings to it

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
        menu.addSeparator()
        menu.addAction("Model manager…", self.open_manager)
        self.browse.setMenu(menu)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo, 1)
        layout.addWidget(self.browse)
        self.refill()
        self.combo.currentIndexChanged.connect(self._on_pick)
        state.value_changed.connect(
            lambda name, value: self.refill() if name in ("model", "backend", "adapters") else None)
        state.backend_models.changed.connect(self.refill)
        state.model_library.changed.connect(self.refill)

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
        library = self.state.model_library
        if library.loaded:
            for entry in library.for_medium(self.modality):
                self._add_local(entry.ref, entry_label(entry), entry.note or entry.location)
        else:  # before the first listing: the catalog alone
            for model in read_catalog():
                if model.get("modality") != self.modality:
                    continue
                if model.get("builtin"):
                    installed = _builtin_installed(model["id"])
                    self._add_local(model["id"], model["name"] + ("" if installed else "  (not installed yet)"),
                                    model.get("about", ""))
                else:
                    self._add_local(model["id"], f"{model['name']} (Hugging Face, {model.get('size_mb', '?')} MB)",
                                    model.get("about", ""))
        for ref in self.recent():
            if self._index_of(ref, "") < 0:
                self.combo.addItem(ref, ref)
        for model in self.state.backend_models.for_medium(self.modality):  # servers' models: "sd15 — on gpu-box"
            self._add_remote(model.ref, model.where, model.label, model.ready, model.note)
        self._add_adapters([model for model in read_catalog() if model.get("modality") == self.modality])
        chosen = self._chosen_adapter()
        if chosen is not None and self._index_of(chosen, "") >= 0:
            current, where = chosen, ""
        elif current and self._index_of(current, where) < 0:
            if where:  # a recipe made on a server that is not connected now
                self._add_remote(current, where, current, False, f"{where} is not connected")
            else:
                self.combo.addItem(current, current)
        self.combo.setCurrentIndex(max(0, self._index_of(current, where)))
        self.combo.blockSignals(False)

    def _add_local(self, ref: str, label: str, tip: str) -> None:
        if self._index_of(ref, "") >= 0:
            return
        self.combo.addItem(label, ref)
        self.combo.setItemData(self.combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
    def _takes_adapters(self) -> bool:
        return "adapters" in self.state.values() and self.modality == self.state.modality

    def _add_adapters(self, catalog: list[dict]) -> None:
        """The Train tab's adapters for this medium, each as "<base model> + <adapter>" (the base is set with it)."""
        if not self._takes_adapters():
            return
        names = {model["id"]: model["name"].replace(" (built-in)", "") for model in catalog}
        for info in lora.list_adapters(self.modality):
            base = names.get(info["base_model"], info["base_model"].replace("\\", "/").rsplit("/", 1)[-1])
            self.combo.addItem(f"{base} + {info.get('name', '?')}", ADAPTER_PREFIX + info["path"])
            tip = f"Your adapter (trained in the Train tab) on {info['base_model']}"
            if info.get("trigger"):
                tip += f"; put “{info['trigger']}” in the prompt"
            self.combo.setItemData(self.combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)

    def _chosen_adapter(self) -> str | None:
        """The item of the one adapter the panel uses now, if it uses exactly one."""
        chosen = self.state.get("adapters") or [] if self._takes_adapters() else []
        if len(chosen) == 1 and isinstance(chosen[0], dict) and chosen[0].get("path"):
            return ADAPTER_PREFIX + str(chosen[0]["path"])
        return None

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
        if ref and ref.startswith(ADAPTER_PREFIX):
            self.use_adapter(ref[len(ADAPTER_PREFIX):])
        elif ref:
            if self._takes_adapters() and self.state.get("adapters"):
                self.state.set("adapters", [])
            self.state.set("backend", self.combo.itemData(index, BACKEND_ROLE) or "")
            self.state.set("model", ref)
            self.picked.emit(ref)

    def open_manager(self) -> None:
        from studio.widgets.model_manager import ModelManagerDialog

        dialog = ModelManagerDialog(self.state.model_library, self.window(), use_model=self.use)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        dialog.select_ref(str(self.state.get("model", "")))

    def use_adapter(self, folder: str, weight: float = 1.0) -> None:
        """The adapter's base model with the adapter on it (its hash is recorded when the job runs)."""
        try:
            info = lora.read_adapter(folder)
        except UserError as exc:
            self.combo.setToolTip(str(exc))
            return
        self.state.set("adapters", [{"path": info["path"], "weight": weight}])
        self.state.set("backend", "")
        self.state.set("model", info["base_model"])

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
            if self._takes_adapters() and self.state.get("adapters"):
                self.state.set("adapters", [])
            self.state.set("backend", "")  # a file, folder or hub id runs on this computer
            self.state.set("model", ref)
            self.picked.emit(ref)
