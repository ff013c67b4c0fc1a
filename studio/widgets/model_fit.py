"""Settings that fit the chosen image model: its family's defaults, size presets at its native size, and a warning
with one click back when the size is far from it (a 512² picture from the 64-px built-in is tiled mush).

The family comes from the model list (file headers, read off the GUI thread) or, for a model not listed yet, from
the file's header or the folder's configs (milliseconds, no weights read). The numbers live in
`engine/image/settings.py` (FAMILY_DEFAULTS) and the catalog's per-model `defaults`.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from studio.core import catalog
from studio.engine.image.settings import model_defaults, native_size, size_is_far, size_presets
from studio.state import PanelState
from studio.widgets.flow import FlowLayout
from studio.widgets.labels import MessageLabel


def model_fit(ref: str, library=None) -> tuple[str, dict]:
    """(family, catalog defaults) of a model reference; ("", {}) when it can't be told."""
    entry = library.find(ref) if library is not None else None
    if entry is not None and (entry.family or entry.defaults):
        return entry.family, dict(entry.defaults)
    listed = next((m for m in catalog.read_catalog() if m.get("id") == ref), None)
    if listed is not None:
        return str(listed.get("family", "")), dict(listed.get("defaults", {}))
    try:
        path = Path(ref).expanduser()
        if path.is_file():
            from studio.core.model_files import describe_file

            return describe_file(path).family, {}
        if (path / "model_index.json").is_file():
            from studio.core.model_files import folder_family

            return folder_family(path), {}
    except Exception:  # noqa: BLE001 - an unreadable model says nothing here; loading it will say why
        pass
    return "", {}


def apply_model_defaults(values: PanelState, ref: str) -> None:
    """A model was picked: its steps, guidance, scheduler, CLIP skip and native size."""
    family, defaults = model_fit(ref, getattr(values, "model_library", None))
    fitted = model_defaults(family, defaults)
    if fitted:
        values.update(fitted)


def fit_schedulers(combo: QComboBox, values: PanelState) -> None:
    """Show only the samplers the picked model can use (one list for the GUI and the CLI: the engine's table);
    kept in step with the model. A restored recipe's sampler stays visible even when it doesn't fit: the engine
    then says why."""
    from studio.engine.image.settings import schedulers_for

    def refit() -> None:
        family, defaults = model_fit(str(values.get("model", "")), getattr(values, "model_library", None))
        offered = set(schedulers_for(family, defaults)) | {values.get("scheduler")}
        view = combo.view()
        for row in range(combo.count()):
            view.setRowHidden(row, combo.itemData(row) not in offered)

    values.value_changed.connect(lambda name, _value: refit() if name in ("model", "scheduler") else None)
    library = getattr(values, "model_library", None)
    if library is not None:
        library.changed.connect(refit)
    refit()


class SizeFit(QWidget):
    """Size presets from the model's native size, and the far-from-native warning with its one-click fix."""

    def __init__(self, values: PanelState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.values = values
        self.native: tuple[int, int] | None = None
        chips = QWidget()
        self.chips = FlowLayout(chips)  # wraps at narrow widths instead of widening the panel
        self.warning = MessageLabel()
        self.warning.setObjectName("warning")
        self.fix = QPushButton()
        self.fix.clicked.connect(self.use_native_size)
        warning_row = QHBoxLayout()
        warning_row.setContentsMargins(0, 0, 0, 0)
        warning_row.addWidget(self.warning, 1)
        warning_row.addWidget(self.fix)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(chips)
        layout.addLayout(warning_row)
        values.value_changed.connect(self._on_value)
        library = getattr(values, "model_library", None)
        if library is not None:
            library.changed.connect(self.update_model)
        self.update_model()

    def _on_value(self, name: str, _value) -> None:
        if name == "model":
            self.update_model()
        elif name in ("width", "height"):
            self.update_warning()

    def update_model(self) -> None:
        family, defaults = model_fit(str(self.values.get("model", "")), getattr(self.values, "model_library", None))
        self.native = native_size(family, defaults)
        self._rebuild_chips()
        self.update_warning()

    def _rebuild_chips(self) -> None:
        while self.chips.count():
            widget = self.chips.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        for width, height in size_presets(self.native) if self.native else [(512, 512), (768, 768), (1024, 1024)]:
            button = QPushButton(f"{width}" if width == height else f"{width}×{height}")
            button.setObjectName("chip")
            button.setToolTip(f"{width}×{height}" + (" (the model's native area)" if self.native else ""))
            button.clicked.connect(lambda _=False, w=width, h=height: self.values.update({"width": w, "height": h}))
            self.chips.addWidget(button)

    def is_far(self) -> bool:
        width, height = int(self.values.get("width", 0) or 0), int(self.values.get("height", 0) or 0)
        return bool(self.native and width and height and size_is_far(width, height, self.native))

    def update_warning(self) -> None:
        far = self.is_far()
        if far:
            width, height = self.values.get("width"), self.values.get("height")
            native = f"{self.native[0]}×{self.native[1]}"
            self.warning.setText(f"{width}×{height} is far from this model's native {native}: expect repeats or mush.")
            self.fix.setText(f"Use {native}")
        self.warning.setVisible(far)
        self.fix.setVisible(far)

    def use_native_size(self) -> None:
        if self.native:
            self.values.update({"width": self.native[0], "height": self.native[1]})
