"""Gallery: every output of every session, with search, filters, favourites and restore."""

from __future__ import annotations

import sqlite3
import time

from PySide6.QtCore import QSize, Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio import media
from studio.library.history import Entry, History
from studio.state import State
from studio.widgets.image_view import png_to_pixmap
from studio.widgets.labels import MessageLabel

ICON_SIZE = 128
GALLERY_LIMIT = 500  # thumbnails built per page


def text_icon(summary: str) -> QPixmap:
    """A page-like tile with the first lines of a text output."""
    from PySide6.QtGui import QColor, QPainter

    pixmap = QPixmap(ICON_SIZE, ICON_SIZE)
    pixmap.fill(QColor("#f4f1ea"))
    painter = QPainter(pixmap)
    painter.setPen(QColor("#2b2b2b"))
    font = painter.font()
    font.setPointSize(7)
    painter.setFont(font)
    painter.drawText(pixmap.rect().adjusted(6, 6, -6, -6), Qt.TextFlag.TextWordWrap, summary[:220])
    painter.end()
    return pixmap


def tile(pixmap: QPixmap) -> QPixmap:
    """Fit a thumbnail into the square cell, centred: a 64 px emoji is scaled up (crisp pixels, it is
    pixel art at that size), a wide piano roll scaled down, so every cell lines up."""
    from PySide6.QtGui import QColor, QPainter

    small = pixmap.width() < ICON_SIZE and pixmap.height() < ICON_SIZE
    mode = Qt.TransformationMode.FastTransformation if small else Qt.TransformationMode.SmoothTransformation
    scaled = pixmap.scaled(ICON_SIZE, ICON_SIZE, Qt.AspectRatioMode.KeepAspectRatio, mode)
    square = QPixmap(ICON_SIZE, ICON_SIZE)
    square.fill(QColor(0, 0, 0, 0))
    painter = QPainter(square)
    painter.drawPixmap((ICON_SIZE - scaled.width()) // 2, (ICON_SIZE - scaled.height()) // 2, scaled)
    painter.end()
    return square


class FamilyTreeDialog(QDialog):
    """An output and its ancestors: parents under children, as the breeding recorded them."""

    def __init__(self, history: History, entry_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Family tree")
        self.history = history
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Output", "Recipe"])
        self.tree.setIconSize(QSize(48, 48))
        root = self._node(history.get(entry_id), set())
        if root is not None:
            self.tree.addTopLevelItem(root)
        self.tree.expandAll()
        self.tree.resizeColumnToContents(0)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Each output lists the parents it was bred or derived from."))
        layout.addWidget(self.tree)
        self.resize(560, 420)

    def _node(self, entry: Entry | None, seen: set[int]) -> QTreeWidgetItem | None:
        if entry is None or entry.id in seen:
            return None
        seen = seen | {entry.id}
        item = QTreeWidgetItem([f"#{entry.id} {entry.prompt[:40]}", entry.recipe.param("operation", entry.modality)])
        if entry.thumbnail:
            item.setIcon(0, QIcon(png_to_pixmap(entry.thumbnail)))
        for parent_id in entry.parents:
            child = self._node(self.history.get(parent_id), seen)
            if child is not None:
                item.addChild(child)
        return item


class GalleryPanel(QWidget):
    def __init__(self, state: State, history: History, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.history = state, history
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search prompts, tags and text…")
        self.search.setClearButtonEnabled(True)
        self.kind = QComboBox()
        # One filter per gallery label of the media's outputs ("Music" covers note pieces and MusicGen audio).
        for label, value in [("All", None), *media.gallery_filters()]:
            self.kind.addItem(label, value)
        self.favourites = QCheckBox("★ favourites only")
        self.count = QLabel()
        self.count.setObjectName("hint")
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.kind)
        top.addWidget(self.favourites)
        top.addWidget(self.count)
        self.grid = QListWidget()
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setIconSize(QSize(ICON_SIZE, ICON_SIZE))
        self.grid.setGridSize(QSize(ICON_SIZE + 24, ICON_SIZE + 44))
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setWordWrap(True)
        self.grid.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.hint = MessageLabel("Double-click an item to load its recipe into its panel. Right-click for more.")
        self.hint.setObjectName("hint")
        self.limit = GALLERY_LIMIT  # thumbnails built at once; "Show older" adds a page
        self.older = QPushButton("Show older")
        self.older.setToolTip(f"Show the next {GALLERY_LIMIT} outputs")
        self.older.clicked.connect(self.show_older)
        bottom = QHBoxLayout()
        bottom.addWidget(self.hint, 1)
        bottom.addWidget(self.older)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(top)
        layout.addWidget(self.grid, 1)
        layout.addLayout(bottom)
        self.search.textChanged.connect(self._new_query)
        self.kind.currentIndexChanged.connect(self._new_query)
        self.favourites.toggled.connect(self._new_query)
        self.grid.itemDoubleClicked.connect(self._restore)
        self.grid.customContextMenuRequested.connect(self._menu)
        state.output_added.connect(lambda _artifact: self.refresh())
        self.refresh()

    def _new_query(self, *_args) -> None:
        self.limit = GALLERY_LIMIT
        self.refresh()

    def show_older(self) -> None:
        self.limit += GALLERY_LIMIT
        self.refresh()

    def refresh(self) -> None:
        try:
            entries = self.history.search(self.search.text().strip(), self.kind.currentData(),
                                          self.favourites.isChecked(), limit=self.limit + 1)
        except sqlite3.DatabaseError as exc:  # a damaged page: say so; the files on disk are untouched
            self.grid.clear()
            self.count.setText("")
            self.older.hide()
            self.hint.setText(f"The history database can't be read ({exc}). Your files are in the output folder "
                              "(File > Open output folder); File > Open loads any of them.")
            return
        more = len(entries) > self.limit
        entries = entries[: self.limit]
        self.grid.clear()
        for entry in entries:
            self.grid.addItem(self._item(entry))
        self.count.setText(f"newest {len(entries)} shown" if more else f"{len(entries)} shown")
        self.older.setVisible(more)
        if not entries and not self.search.text() and not self.favourites.isChecked():
            self.hint.setText("Nothing here yet: everything you generate in any panel lands here, with its recipe.")
        else:
            self.hint.setText("Double-click an item to load its recipe into its panel. Right-click for more.")

    def _item(self, entry: Entry) -> QListWidgetItem:
        if entry.thumbnail:
            pixmap = tile(png_to_pixmap(entry.thumbnail))
        else:
            pixmap = text_icon(entry.summary or entry.prompt)
        title = ("★ " if entry.favourite else "") + (entry.prompt.strip().splitlines() or [entry.modality])[0][:28]
        item = QListWidgetItem(QIcon(pixmap), title)
        item.setData(Qt.ItemDataRole.UserRole, entry.id)
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.created))
        item.setToolTip(f"{entry.modality} · {created} · seed {entry.recipe.seed}\n{entry.prompt[:300]}")
        return item

    def selected_entry(self) -> Entry | None:
        item = self.grid.currentItem()
        return self.history.get(item.data(Qt.ItemDataRole.UserRole)) if item else None

    def _restore(self, item: QListWidgetItem) -> None:
        entry = self.history.get(item.data(Qt.ItemDataRole.UserRole))
        if entry:
            self.state.restore_output(entry.recipe, list(entry.files))

    def _menu(self, position) -> None:
        item = self.grid.itemAt(position)
        if item is None:
            return
        entry = self.history.get(item.data(Qt.ItemDataRole.UserRole))
        menu = QMenu(self)
        actions = {
            QAction("Load recipe into its panel", menu): lambda: self.state.restore_output(entry.recipe, entry.files),
            QAction("Unfavourite" if entry.favourite else "★ Favourite", menu): lambda: self._favourite(entry),
            QAction("Show family tree", menu): lambda: FamilyTreeDialog(self.history, entry.id, self).exec(),
            QAction("Open file", menu): lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(entry.files[0]))),
            QAction("Show in folder", menu): lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(entry.files[0].parent))),
            QAction("Remove from history (keep files)", menu): lambda: self._delete(entry),
        }
        for action, callback in actions.items():
            action.triggered.connect(callback)
            menu.addAction(action)
        menu.exec(self.grid.mapToGlobal(position))

    def _favourite(self, entry: Entry) -> None:
        self.history.set_favourite(entry.id, not entry.favourite)
        self.refresh()

    def _delete(self, entry: Entry) -> None:
        self.history.delete(entry.id)
        self.refresh()
