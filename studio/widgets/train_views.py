"""The Train tab's two views of TrainState: the table of the folder's items (captions and tags, editable) and the
checkpoints with their samples (the grid of a picture model, the texts, the pieces on piano rolls), one picked."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.state.train import TrainState, checkpoint_samples
from studio.widgets.piano_roll import PianoRoll

CAPTION_TIP = "What the picture shows, in the words you would prompt with (the trigger word is added in front)."
STYLE_TIP = "The style word the pieces are learnt under ({}). Use it in the Music tab's prompt afterwards."


class ItemTable(QTableWidget):
    """One row per item: file, caption (pictures) or style (music), and what was read from it."""

    def __init__(self, train: TrainState, parent: QWidget | None = None) -> None:
        super().__init__(0, 3, parent)
        self.train = train
        self.setMinimumHeight(140)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.setHorizontalHeaderLabels(["File", "Caption", "Read from it"])  # before any folder: not "1 2 3"
        self._filling = False
        self.itemChanged.connect(self._edited)
        train.report_changed.connect(self.refill)

    def refill(self) -> None:
        self._filling = True
        medium = (self.train.report or {}).get("medium", "image")
        styles = ", ".join((self.train.report or {}).get("styles", []))
        editable = {"image": ("Caption", CAPTION_TIP), "music": ("Style", STYLE_TIP.format(styles))}.get(
            medium, ("Begins", ""))
        self.setHorizontalHeaderLabels(["File", editable[0], "Read from it"])
        self.horizontalHeaderItem(1).setToolTip(editable[1])
        items = self.train.items
        self.setRowCount(len(items))
        for row, item in enumerate(items):
            name = QTableWidgetItem(item["id"])
            name.setFlags(name.flags() & ~Qt.ItemFlag.ItemIsEditable)
            value = item.get("tags", {}).get("style", "") if medium == "music" else item.get("caption", "")
            text = QTableWidgetItem(value)
            if medium == "text":
                text.setFlags(text.flags() & ~Qt.ItemFlag.ItemIsEditable)
            text.setToolTip(editable[1])
            detail = QTableWidgetItem(item.get("detail", ""))
            detail.setFlags(detail.flags() & ~Qt.ItemFlag.ItemIsEditable)
            for column, cell in enumerate((name, text, detail)):
                self.setItem(row, column, cell)
        self.resizeColumnToContents(0)
        self.setColumnWidth(0, min(self.columnWidth(0), self.viewport().width() // 3 or 120))  # room for captions
        self._filling = False

    def _edited(self, cell: QTableWidgetItem) -> None:
        if self._filling or cell.column() != 1:
            return
        if (self.train.report or {}).get("medium") == "music":
            style, styles = cell.text().strip().lower(), self.train.report.get("styles", [])
            if style not in styles:
                self.train.say(f"“{cell.text()}” is not a style the model knows: {', '.join(styles)}")
                self.refill()
                return
            self.train.set_tag(cell.row(), "style", style)
        else:
            self.train.set_caption(cell.row(), cell.text())


class CheckpointView(QWidget):
    """The checkpoints (step, score) on the left; the picked one's samples on the right. Clicking one picks it."""

    def __init__(self, train: TrainState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.train = train
        self.list = QListWidget()
        self.list.setMinimumWidth(150)
        self.list.setMaximumWidth(190)
        self.list.setToolTip("Every checkpoint with its sample grid. ★ marks the best score; click one to look at "
                             "its samples and pick it.")
        self.picture = QLabel("The sample grid of the picked checkpoint shows here.")
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setWordWrap(True)
        self.texts = QPlainTextEdit()
        self.texts.setReadOnly(True)
        self.rolls = QWidget()
        self.roll_layout = QVBoxLayout(self.rolls)
        self.roll_layout.setContentsMargins(0, 0, 0, 0)
        self.stage = QStackedWidget()
        for page in (self.picture, self.texts, self.rolls):
            self.stage.addWidget(page)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)
        layout.addWidget(self.stage, 1)
        self._shown: dict | None = None  # the checkpoint on show (redrawn to fit when the view is resized)
        self.list.currentRowChanged.connect(self._clicked)
        train.checkpoints_changed.connect(self.refill)
        train.picked_changed.connect(self._show_picked)

    def refill(self) -> None:
        best = self.train.suggested()
        self.list.blockSignals(True)
        self.list.clear()
        for entry in sorted(self.train.checkpoints, key=lambda c: c["step"]):
            score = f" · {entry['score']:.3f}" if entry.get("score") is not None else ""
            item = QListWidgetItem(f"step {entry['step']}{score}{' ★' if entry['step'] == best else ''}")
            item.setData(Qt.ItemDataRole.UserRole, entry["step"])
            self.list.addItem(item)
        self.list.blockSignals(False)
        if self.train.picked is None and self.list.count():
            self._show(self.train.checkpoints[-1])  # the newest grid while training: watch the style arrive
        else:
            self._show_picked(self.train.picked)

    def _clicked(self, row: int) -> None:
        item = self.list.item(row)
        if item is not None:
            self.train.pick(int(item.data(Qt.ItemDataRole.UserRole)))

    def _show_picked(self, step) -> None:
        entry = next((c for c in self.train.checkpoints if c["step"] == step), None)
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) == step:
                self.list.blockSignals(True)
                self.list.setCurrentRow(row)
                self.list.blockSignals(False)
        if entry is not None:
            self._show(entry)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        if self._shown is not None and self.stage.currentWidget() is self.picture:
            self._show(self._shown)

    def _show(self, entry: dict) -> None:
        self._shown = entry
        samples = entry.get("samples") or checkpoint_samples(entry)
        if not samples:
            self.picture.setText(f"Step {entry['step']}: a checkpoint to resume from (no samples at this step).")
            self.stage.setCurrentWidget(self.picture)
            return
        prompts = " · ".join(dict.fromkeys(samples.get("prompts", [])))
        if samples.get("png"):
            pixmap = QPixmap()
            pixmap.loadFromData(samples["png"])
            room = self.stage.size()  # the whole grid in view, small emoji drawn big, their pixels kept sharp
            scale = max(0.25, min(4.0, room.width() / max(1, pixmap.width()), room.height() / max(1, pixmap.height())))
            self.picture.setPixmap(pixmap.scaled(int(pixmap.width() * scale), int(pixmap.height() * scale),
                                                 Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation))
            self.picture.setToolTip(f"Step {entry['step']}. Rows: {prompts}. Columns: fixed seeds.")
            self.stage.setCurrentWidget(self.picture)
        elif samples.get("kind") == "text":
            body = "\n\n".join(f"— {text.strip()}" for text in samples.get("texts", []))
            self.texts.setPlainText(f"Step {entry['step']} · prompts: {prompts}\n\n{body}")
            self.stage.setCurrentWidget(self.texts)
        else:
            self._show_pieces(samples.get("pieces", []))

    def _show_pieces(self, pieces: list[dict]) -> None:
        while self.roll_layout.count():
            widget = self.roll_layout.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        for piece in pieces:
            roll = PianoRoll()
            roll.setMinimumHeight(90)
            roll.set_notes(piece.get("notes", []))
            roll.setToolTip(f"{piece.get('key', '')}, {piece.get('metre', '')}")
            self.roll_layout.addWidget(roll)
        self.stage.setCurrentWidget(self.rolls)
