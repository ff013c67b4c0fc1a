"""The loom's views (studio/state/loom.py holds the tree): the branch bar above the page, the whole tree, and the
siblings of the passage on show side by side. Each is built from the LoomState alone and redraws on its
`changed`; what the user does goes back through LoomState's methods.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.loom import LoomNode
from studio.state.loom import LoomState
from studio.widgets.flow import FlowLayout

KIND_MARKS = {"root": "", "written": "✎", "generated": "✦", "fork": "↪", "edited": "✐"}
KIND_WORDS = {"written": "written by you", "generated": "generated", "fork": "forked at a token",
              "edited": "an edited version"}


def snippet(node: LoomNode, length: int = 48) -> str:
    """A node's name in lists: its label, else the start of its text on one line."""
    if node.kind == "root":
        return "(start)"
    text = node.label or " ".join(node.text.split())
    return text if len(text) <= length else text[: length - 1] + "…"


def describe(node: LoomNode) -> str:
    """A tooltip: what the node is, how it was made, whether it was cut short."""
    parts = [KIND_WORDS.get(node.kind, node.kind)]
    if node.role:
        parts.insert(0, node.role)
    if node.seed is not None and node.kind in ("generated", "fork"):
        parts.append(f"seed {node.seed}")
    if node.model:
        parts.append(node.model)
    if node.partial:
        parts.append(f"cut short: {node.partial}")
    return " · ".join(parts)


class BranchBar(QWidget):
    """Which branch is on show (◀ n of m ▶ where the path last forked), how many the page doesn't show, and the
    tending of the passage on show: bookmark, rename, prune, export."""

    def __init__(self, loom: LoomState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loom = loom
        self.previous = self._tool("◀", "The previous branch where this path forks", lambda: loom.switch_sibling(-1))
        self.next = self._tool("▶", "The next branch where this path forks", lambda: loom.switch_sibling(+1))
        self.where = QLabel()
        self.hidden = QLabel()
        self.hidden.setObjectName("hint")
        self.star = self._tool("☆", "Bookmark the passage on show (★ in the tree)", self._toggle_bookmark)
        self.rename_button = QPushButton("Rename…")
        self.rename_button.setToolTip("Name the passage on show (the tree lists it by name)")
        self.rename_button.clicked.connect(self._rename)
        self.prune_button = QPushButton("Prune")
        self.prune_button.setToolTip("Delete the passage on show and every branch below it")
        self.prune_button.clicked.connect(self._prune)
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setToolTip("Save the path on show as Markdown with its recipe, or the whole tree as JSON")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export_button)
        menu.addAction("This path as Markdown…", self._export_path)
        menu.addAction("The whole tree as JSON…", self._export_tree)
        self.export_button.setMenu(menu)
        layout = FlowLayout(self)  # wraps in a narrow window
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.previous, self.where, self.next, self.hidden, self.star, self.rename_button,
                       self.prune_button, self.export_button):
            layout.addWidget(widget)
        loom.changed.connect(self.refresh)
        loom.busy_changed.connect(lambda _busy: self.refresh())
        self.refresh()

    @staticmethod
    def _tool(text: str, tip: str, action) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        button.clicked.connect(action)
        return button

    def refresh(self) -> None:
        tree, busy = self.loom.tree, self.loom.busy()
        points = tree.branch_points()
        if points:
            node = points[-1]
            siblings = tree.siblings(node.id)
            self.where.setText(f"branch {siblings.index(node) + 1} of {len(siblings)}")
            self.where.setToolTip(f"Where the path on show forks: “{snippet(node)}” has {len(siblings) - 1} "
                                  "other version(s)")
        else:
            self.where.setText("one branch")
            self.where.setToolTip("Regenerate, fork at a token or write N siblings to make others")
        hidden = tree.hidden()
        self.hidden.setText(f"· {hidden} more in the tree" if hidden else "")
        self.hidden.setToolTip(f"{hidden} passage(s) on other branches: the Tree tab lists them all" if hidden else "")
        current = tree.node()
        self.star.setText("★" if current.bookmarked else "☆")
        at_root = current.kind == "root"
        for widget in (self.previous, self.next):
            widget.setEnabled(bool(points) and not busy)
        for widget in (self.star, self.rename_button, self.prune_button):
            widget.setEnabled(not at_root and not busy)

    def _toggle_bookmark(self) -> None:
        node = self.loom.tree.node()
        self.loom.bookmark(node.id, not node.bookmarked)

    def _rename(self) -> None:
        node = self.loom.tree.node()
        label, ok = QInputDialog.getText(self, "Name this passage", "Name (shown in the tree):", text=node.label)
        if ok:
            self.loom.rename(node.id, label)

    def _prune(self) -> None:
        self.loom.prune(self.loom.tree.current)

    def _export_path(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save this path as Markdown", "path.md", "Markdown (*.md)")
        if path:
            self.loom.export_path(path)

    def _export_tree(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the whole tree as JSON", "tree.loom.json", "JSON (*.json)")
        if path:
            self.loom.export_tree(path)


class LoomTree(QTreeWidget):
    """Every passage of the tree; the path on show in bold, bookmarks starred. Double-click shows a branch."""

    def __init__(self, loom: LoomState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loom = loom
        self.setHeaderHidden(True)
        self.setToolTip("Every branch of this text. Double-click to show one; right-click to rename, bookmark or "
                        "prune it. ✎ written · ✦ generated · ↪ forked at a token · ✐ edited · ★ bookmarked")
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self.itemDoubleClicked.connect(lambda item, _column: self._show(item))
        loom.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        tree = self.loom.tree
        on_path = {n.id for n in tree.path()}
        self.clear()
        items = {tree.root: self.invisibleRootItem()}
        pending = [tree.root]
        while pending:
            node_id = pending.pop(0)
            for child in tree.children(node_id):
                item = QTreeWidgetItem(items[node_id])
                star = "★ " if child.bookmarked else ""
                item.setText(0, f"{KIND_MARKS.get(child.kind, '')} {star}{snippet(child)}")
                item.setToolTip(0, describe(child))
                item.setData(0, Qt.ItemDataRole.UserRole, child.id)
                if child.id in on_path:
                    font = QFont(item.font(0))
                    font.setBold(True)
                    item.setFont(0, font)
                if child.id == tree.current:
                    self.setCurrentItem(item)
                items[child.id] = item
                pending.append(child.id)
        self.expandAll()

    def node_items(self) -> list[QTreeWidgetItem]:
        found, pending = [], [self.invisibleRootItem()]
        while pending:
            item = pending.pop()
            for index in range(item.childCount()):
                found.append(item.child(index))
                pending.append(item.child(index))
        return found

    def _show(self, item: QTreeWidgetItem) -> None:
        if not self.loom.busy():
            self.loom.show_branch(item.data(0, Qt.ItemDataRole.UserRole))

    def _menu(self, position) -> None:
        item = self.itemAt(position)
        if item is None or self.loom.busy():
            return
        node_id = item.data(0, Qt.ItemDataRole.UserRole)
        node = self.loom.tree.node(node_id)
        menu = QMenu(self)
        menu.addAction("Show this branch", lambda: self.loom.show_branch(node_id))
        menu.addAction("Remove bookmark" if node.bookmarked else "Bookmark",
                       lambda: self.loom.bookmark(node_id, not node.bookmarked))
        menu.addAction("Rename…", lambda: self._rename(node_id))
        menu.addAction("Prune (with its branches)", lambda: self.loom.prune(node_id))
        menu.exec(self.viewport().mapToGlobal(position))

    def _rename(self, node_id: str) -> None:
        label, ok = QInputDialog.getText(self, "Name this passage", "Name (shown in the tree):",
                                         text=self.loom.tree.node(node_id).label)
        if ok:
            self.loom.rename(node_id, label)


class SiblingsView(QScrollArea):
    """The passage on show and its siblings (other continuations of the same text), side by side."""

    COLUMN_WIDTH = 240

    def __init__(self, loom: LoomState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loom = loom
        self.setWidgetResizable(True)
        self.columns: list[QWidget] = []
        loom.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        tree = self.loom.tree
        current = tree.node()
        siblings = tree.siblings(current.id) if current.kind != "root" else []
        holder = QWidget()
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        self.columns = []
        if len(siblings) < 2:
            hint = QLabel("One continuation here. “Write N siblings” makes several at once and lays them out side "
                          "by side; Regenerate and forks add more.")
            hint.setWordWrap(True)
            hint.setObjectName("hint")
            row.addWidget(hint)
        for number, node in enumerate(siblings, 1):
            row.addWidget(self._column(number, node, node.id == current.id))
        self.setWidget(holder)

    def _column(self, number: int, node: LoomNode, on_show: bool) -> QWidget:
        column = QWidget()
        column.setMinimumWidth(self.COLUMN_WIDTH)
        layout = QVBoxLayout(column)
        layout.setContentsMargins(2, 2, 2, 2)
        title = QLabel(f"{'▶ ' if on_show else ''}{number}. {snippet(node, 28) if node.label else KIND_WORDS.get(node.kind, '')}"
                       + (f" · seed {node.seed}" if node.seed is not None else ""))
        title.setToolTip(describe(node))
        text = QPlainTextEdit(node.text)
        text.setReadOnly(True)
        use = QPushButton("On show" if on_show else "Show this one")
        use.setEnabled(not on_show)
        use.setToolTip("Show this continuation (and its branch) on the page")
        use.clicked.connect(lambda: None if self.loom.busy() else self.loom.show_branch(node.id))
        layout.addWidget(title)
        layout.addWidget(text, 1)
        layout.addWidget(use)
        column.setProperty("node_id", node.id)
        self.columns.append(column)
        return column
