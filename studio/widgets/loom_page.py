"""The Text panel's page: one path of the loom, each generated passage tinted, every generated token hoverable.

Completion: the path's text, editable (what the user types becomes a passage of their own at the next action).
Chat: the conversation, read-only; a message with other versions says so ("2/3"), and its context menu edits it
(a new version beside the old one). Hovering or clicking a generated token emits `token_hovered` with its entry
(the engine's record: the token, its span, its candidates), which the token inspector shows.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QTextEdit, QWidget

from studio.core.loom import Loom

# Generated passages alternate two tints, so where one generation ends and the next begins shows.
TINTS = (QColor(70, 110, 170, 90), QColor(110, 160, 90, 90))
STREAMING = QColor(70, 110, 170, 90)


def chat_lines(tree: Loom) -> tuple[str, list[tuple[str, int, int]]]:
    """The conversation on show as text, and each message's (node, start, end) in it."""
    parts, spans, position = [], [], 0
    for node in tree.path()[1:]:
        versions = tree.siblings(node.id)
        mark = f" ({versions.index(node) + 1}/{len(versions)})" if len(versions) > 1 else ""
        head = f"{(node.role or 'user').capitalize()}{mark}: "
        if parts:
            position += 1  # the newline between messages
        spans.append((node.id, position + len(head), position + len(head) + len(node.text)))
        parts.append(head + node.text)
        position += len(head) + len(node.text)
    return "\n".join(parts), spans


def completion_spans(tree: Loom) -> list[tuple[str, int, int]]:
    spans, position = [], 0
    for node in tree.path()[1:]:
        spans.append((node.id, position, position + len(node.text)))
        position += len(node.text)
    return spans


class LoomPage(QPlainTextEdit):
    token_hovered = Signal(str, int, object)  # node id, token index, its inspector entry
    bare_passage_hovered = Signal(str)  # a generated passage that kept no candidates
    edit_requested = Signal(str)  # node id of a chat message to write a new version of

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree: Loom | None = None
        self.spans: list[tuple[str, int, int]] = []  # (node, start, end) of each passage in the rendered text
        self.rendered = ""
        self.viewport().setMouseTracking(True)
        self.viewport().installEventFilter(self)
        self.cursorPositionChanged.connect(lambda: self._hover_at(self.textCursor().position()))
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)

    # --- showing --------------------------------------------------------------------------------------

    def show_text(self, text: str) -> None:
        """Text that is not (yet) a path of the tree: a draft, a stream in progress."""
        self.tree, self.spans, self.rendered = None, [], text
        self._set(text)
        self.setExtraSelections([])

    def show_path(self, tree: Loom) -> None:
        """The tree's path on show, its generated passages tinted."""
        if tree.mode == "chat":
            text, spans = chat_lines(tree)
        else:
            text, spans = tree.text(), completion_spans(tree)
        self.tree, self.spans, self.rendered = tree, spans, text
        self._set(text)
        selections, tint = [], 0
        for node_id, start, end in spans:
            if tree.nodes[node_id].kind in ("generated", "fork") and end > start:
                selections.append(self._selection(start, end, TINTS[tint % 2]))
                tint += 1
        self.setExtraSelections(selections)

    def show_stream(self, base: str, generated: str) -> None:
        """A generation streaming in after `base`; the end stays in view."""
        self.tree, self.spans, self.rendered = None, [], base + generated
        self._set(base + generated)
        self.setExtraSelections([self._selection(len(base), len(base) + len(generated), STREAMING)])
        self.moveCursor(QTextCursor.MoveOperation.End)

    def _set(self, text: str) -> None:
        if text != self.toPlainText():
            self.blockSignals(True)
            self.setPlainText(text)
            self.blockSignals(False)

    def _selection(self, start: int, end: int, colour: QColor) -> QTextEdit.ExtraSelection:
        selection = QTextEdit.ExtraSelection()
        selection.format = QTextCharFormat()
        selection.format.setBackground(colour)
        cursor = self.textCursor()
        cursor.setPosition(start)
        cursor.setPosition(min(end, len(self.toPlainText())), QTextCursor.MoveMode.KeepAnchor)
        selection.cursor = cursor
        return selection

    # --- pointing at tokens ---------------------------------------------------------------------------

    def token_at(self, position: int) -> tuple[str, int, dict] | None:
        """(node, token index, entry) of the generated token at a character of the page, if it is one."""
        if self.tree is None or self.toPlainText() != self.rendered:
            return None  # edited since it was drawn: the spans no longer say where tokens are
        for node_id, start, end in self.spans:
            if start <= position < end:
                tokens = self.tree.nodes[node_id].tokens
                inside = position - start
                for index, entry in enumerate(tokens):
                    if entry.get("start", -1) <= inside < entry.get("end", -1):
                        return node_id, index, entry
                return None
        return None

    def node_at(self, position: int) -> str | None:
        return next((node_id for node_id, start, end in self.spans if start <= position <= end), None)

    def _hover_at(self, position: int) -> None:
        found = self.token_at(position)
        if found is not None:
            self.token_hovered.emit(*found)
            return
        node_id = self.node_at(position) if self.tree is not None and self.toPlainText() == self.rendered else None
        if node_id is not None:
            node = self.tree.nodes[node_id]
            if node.kind in ("generated", "fork") and not node.tokens:
                self.bare_passage_hovered.emit(node_id)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt's name)
        if watched is self.viewport() and event.type() == QEvent.Type.MouseMove:
            self._hover_at(self.cursorForPosition(event.position().toPoint()).position())
        return super().eventFilter(watched, event)

    def _menu(self, point) -> None:
        menu = self.createStandardContextMenu()
        node_id = self.node_at(self.cursorForPosition(point).position())
        if self.tree is not None and self.tree.mode == "chat" and node_id is not None:
            role = self.tree.nodes[node_id].role or "user"
            menu.insertAction(menu.actions()[0] if menu.actions() else None,
                              menu.addAction(f"Edit this {role} message (a new version; the old one stays)…",
                                             lambda: self.edit_requested.emit(node_id)))
        menu.exec(self.viewport().mapToGlobal(point))
        menu.deleteLater()
