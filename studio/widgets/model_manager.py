"""The model manager: every model the app can see, what each is, whether it is ready, and what to do about it.

A table of the library (`state/model_library.py`): name, kind, family, size, dtype, licence, location, status.
Filter by kind or text; add a folder of models (an A1111, Forge, ComfyUI or InvokeAI install is found by itself);
download a catalog model with progress, pause/resume and cancel; delete; open a model's folder; use it in the
Image panel. Offline is said at the top, and on each model that would need a download.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.model_library import NOT_DOWNLOADED, READY, ModelEntry, size_text
from studio.state.model_library import ModelLibrary
from studio.widgets.labels import MessageLabel

COLUMNS = ("Name", "Kind", "Family", "Size", "Dtype", "Licence", "Location", "Status")
FILTERS = [
    ("All", None),
    ("Image models", ("builtin", "checkpoint", "diffusers", "download")),
    ("LoRAs", ("lora",)),
    ("Embeddings", ("embedding",)),
    ("VAEs and text encoders", ("vae", "text_encoder")),
    ("ControlNets and upscalers", ("controlnet", "upscaler")),
    ("Needs attention", "attention"),
]
KIND_LABELS = {"builtin": "built-in", "checkpoint": "checkpoint", "diffusers": "diffusers folder",
               "transformers": "transformers folder", "download": "to download", "lora": "LoRA",
               "embedding": "embedding", "vae": "VAE", "text_encoder": "text encoder", "controlnet": "ControlNet",
               "upscaler": "upscaler", "unknown": "unknown", "files": "files"}
STATUS_MARKS = {READY: "✓ ready", NOT_DOWNLOADED: "⇣ not downloaded", "partial": "◐ partial",
                "damaged": "✗ damaged", "needs files": "⚠ needs files", "not installed": "✗ not installed"}


def status_text(entry: ModelEntry) -> str:
    mark = STATUS_MARKS.get(entry.status, entry.status)
    return f"{mark}: {entry.note}" if entry.note and entry.status != READY else mark


class ModelManagerDialog(QDialog):
    def __init__(self, library: ModelLibrary, parent: QWidget | None = None, use_model=None) -> None:
        super().__init__(parent)
        self.library = library
        self.use_model = use_model  # callable(ref) that puts a model into the Image panel, or None
        self.setWindowTitle("Models")
        self.resize(980, 560)
        self.connection = MessageLabel()
        self.connection.setObjectName("hint")
        self.kind = QComboBox()
        for label, _kinds in FILTERS:
            self.kind.addItem(label)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter by name, family or folder")
        self.search.setClearButtonEnabled(True)
        add = QPushButton("Add a folder…")
        add.setToolTip("A folder of models: checkpoints, LoRAs, embeddings, VAEs (an A1111, Forge, ComfyUI or "
                       "InvokeAI install works as it is)")
        add.clicked.connect(self.add_folder)
        rescan = QPushButton("Rescan")
        rescan.clicked.connect(lambda: self.library.refresh())
        top = QHBoxLayout()
        top.addWidget(self.kind)
        top.addWidget(self.search, 1)
        top.addWidget(add)
        top.addWidget(rescan)
        self.table = self._table()
        self.details = MessageLabel()
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.hide()
        layout = QVBoxLayout(self)
        layout.addWidget(self.connection)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.details)
        layout.addWidget(self.progress)
        layout.addLayout(self._buttons())
        self.kind.currentIndexChanged.connect(self.fill)
        self.search.textChanged.connect(self.fill)
        self.table.itemSelectionChanged.connect(self._on_select)
        library.changed.connect(self.fill)
        library.download_changed.connect(self._on_download)
        self._pending_download = None
        self._throttle = QTimer(self, singleShot=True, interval=100)  # progress repaints at most 10 times a second
        self._throttle.timeout.connect(self._show_download)
        if not library.loaded:
            library.refresh()
        self.fill()

    def _table(self) -> QTableWidget:
        table = QTableWidget(0, len(COLUMNS))
        table.setHorizontalHeaderLabels(COLUMNS)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.verticalHeader().hide()
        table.setWordWrap(False)
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for column, width in enumerate((190, 90, 110, 70, 60, 120, 200)):
            table.setColumnWidth(column, width)
        return table

    def _buttons(self) -> QHBoxLayout:
        self.download_button = QPushButton("Download")
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.cancel_button = QPushButton("Cancel download")
        self.delete_button = QPushButton("Delete…")
        self.open_button = QPushButton("Open folder")
        self.use_button = QPushButton("Use in Image")
        self.download_button.clicked.connect(lambda: self._with_entry(lambda e: self.library.download(e.ref)))
        self.resume_button.clicked.connect(lambda: self._with_entry(lambda e: self.library.download(e.ref)))
        self.pause_button.clicked.connect(lambda: self._with_entry(lambda e: self.library.pause(e.ref)))
        self.cancel_button.clicked.connect(lambda: self._with_entry(lambda e: self.library.cancel(e.ref)))
        self.delete_button.clicked.connect(self.delete_selected)
        self.open_button.clicked.connect(self.open_selected)
        self.use_button.clicked.connect(lambda: self._with_entry(self._use))
        row = QHBoxLayout()
        for button in (self.download_button, self.pause_button, self.resume_button, self.cancel_button,
                       self.delete_button, self.open_button):
            row.addWidget(button)
        row.addStretch(1)
        row.addWidget(self.use_button)
        return row

    # --- the list ----------------------------------------------------------------------------------------------

    def visible_entries(self) -> list[ModelEntry]:
        kinds = FILTERS[self.kind.currentIndex()][1]
        text = self.search.text().strip().lower()
        shown = []
        for entry in self.library.entries:
            if kinds == "attention" and entry.status == READY:
                continue
            if isinstance(kinds, tuple) and entry.kind not in kinds:
                continue
            if text and text not in f"{entry.name} {entry.family_text} {entry.location}".lower():
                continue
            shown.append(entry)
        return shown

    def fill(self) -> None:
        self._say_connection()
        selected = self.selected()
        entries = self.visible_entries()
        self.table.setRowCount(len(entries))
        for row, entry in enumerate(entries):
            values = (entry.name, KIND_LABELS.get(entry.kind, entry.kind), entry.family_text, size_text(entry.size),
                      entry.dtype, entry.licence, entry.location, status_text(entry))
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setToolTip(value)
                if column == 0:
                    item.setData(Qt.ItemDataRole.UserRole, entry)
                self.table.setItem(row, column, item)
            if selected is not None and entry.ref == selected.ref:
                self.table.selectRow(row)
        self._on_select()

    def _say_connection(self) -> None:
        if not self.library.loaded:
            self.connection.setText("Looking for models…")
            return
        roots = sorted({e.source for e in self.library.entries if e.source not in ("built-in", "catalog")})
        where = f"Found models in: {', '.join(roots)}." if roots else "No model folders yet: add one."
        if self.library.online is False:
            self.connection.setText(f"Offline: models marked ⇣ need a connection to download. {where}")
        else:
            self.connection.setText(where)

    def selected(self) -> ModelEntry | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def select_ref(self, ref: str) -> None:
        for row in range(self.table.rowCount()):
            entry = self.table.item(row, 0).data(Qt.ItemDataRole.UserRole)
            if entry.ref == ref:
                self.table.selectRow(row)
                return

    def _with_entry(self, action) -> None:
        entry = self.selected()
        if entry is not None:
            action(entry)

    def _on_select(self) -> None:
        entry = self.selected()
        download = self.library.downloads.get(entry.ref) if entry else None
        active = download is not None and download.active
        hub = entry is not None and (entry.kind == "download" or entry.source == "Hugging Face cache")
        self.download_button.setEnabled(hub and entry.status == NOT_DOWNLOADED and not active)
        self.resume_button.setEnabled(entry is not None and self.library.resumable(entry) and not active)
        self.pause_button.setEnabled(active)
        self.cancel_button.setEnabled(active or (entry is not None and self.library.resumable(entry)))
        self.delete_button.setEnabled(entry is not None and entry.kind != "builtin" and entry.status != NOT_DOWNLOADED)
        self.open_button.setEnabled(entry is not None and entry.status != NOT_DOWNLOADED)
        self.use_button.setEnabled(entry is not None and entry.medium == "image" and self.use_model is not None)
        if entry is None:
            self.details.setText("Choose a model to see what it is and what it needs.")
        else:
            lines = [f"{entry.name} — {KIND_LABELS.get(entry.kind, entry.kind)}"
                     + (f", {entry.family_text}" if entry.family else "") + f", {status_text(entry)}"]
            if entry.status == NOT_DOWNLOADED and self.library.online is False and "connection" not in entry.note:
                lines.append(f"Offline: needs a connection to download, {size_text(entry.size)}.")
            if download is not None:
                lines.append(download.message)
            self.details.setText("\n".join(line for line in lines if line))
        self._show_download_for(download)

    # --- actions -------------------------------------------------------------------------------------------------

    def add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder of models (or an A1111 / ComfyUI install)")
        if folder:
            self.library.add_folder(Path(folder))

    def delete_selected(self) -> None:
        entry = self.selected()
        if entry is None:
            return
        answer = QMessageBox.question(self, "Delete model", f"Delete {entry.name} from disk?\n{entry.location}\n"
                                      f"({size_text(entry.size)}; this cannot be undone)")
        if answer == QMessageBox.StandardButton.Yes:
            self.library.delete(entry)

    def open_selected(self) -> None:
        entry = self.selected()
        if entry is not None:
            target = Path(entry.location)
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(target if target.is_dir() else target.parent)))

    def _use(self, entry: ModelEntry) -> None:
        self.use_model(entry.ref)

    def _on_download(self, download) -> None:
        self._pending_download = download
        if download.state != "downloading":
            self._show_download()  # a state change is shown at once; byte counts are throttled
        elif not self._throttle.isActive():
            self._throttle.start()

    def _show_download(self) -> None:
        entry = self.selected()
        if entry is not None and self._pending_download is not None and entry.ref == self._pending_download.repo_id:
            self._on_select()

    def _show_download_for(self, download) -> None:
        if download is None or download.state in ("done", "cancelled") and not download.active:
            self.progress.hide()
            return
        total = max(1, download.total or download.size_hint)
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(1000 * min(1.0, download.done / total)))
        self.progress.setFormat(f"{download.state}: {download.message}")
        self.progress.show()
