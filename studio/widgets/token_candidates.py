"""The token inspector: one token's top candidates, before and after the sampling controls; click one to fork.

The Text panel shows here the token under the mouse (or the cursor). Probabilities come from the engine's own
record of each step (`before` = the model's distribution, `after` = what the token was drawn from); a server gives
only the model's log-probabilities (its samplers run inside it), so its tokens show one column.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

PLACEHOLDER = "Hover a generated token: its top candidates appear here. Click one to fork a new branch."
NO_CANDIDATES = ("This passage kept no candidates (“Record token candidates” was off when it was written, or its "
                 "server gave no log-probabilities).")


def shown_token(text: str) -> str:
    """A token as a reader can see it: spaces and newlines made visible, quoted."""
    return "‘" + text.replace("\n", "⏎").replace("\t", "⇥") + "’"


class CandidateList(QWidget):
    chosen = Signal(str)  # a candidate's text: fork with it

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.heading = QLabel(PLACEHOLDER)
        self.heading.setWordWrap(True)
        self.heading.setObjectName("hint")
        self.list = QListWidget()
        self.list.setToolTip("Click a candidate to fork here: the text up to this token, the candidate, then a new "
                             "continuation (the old branch stays)")
        self.list.itemClicked.connect(self._clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.heading)
        layout.addWidget(self.list, 1)
        self.entry: dict | None = None
        self.can_fork = False

    def show_token(self, entry: dict, can_fork: bool = True, where: str = "") -> None:
        """One token's candidates; `can_fork` False lists them without offering to fork (chat, a running job)."""
        self.entry, self.can_fork = entry, can_fork
        from_server = entry.get("source") == "server" or not entry.get("after")
        columns = "the model's odds (the server's samplers ran inside it)" if from_server else (
            "before → after the sampling controls")
        action = "click one to fork here" if can_fork else "forks: completion mode, when nothing runs"
        self.heading.setText(f"{shown_token(str(entry.get('token', '')))}{where} — top candidates, {columns}; "
                             f"{action}.")
        after = {c["id"]: c["p"] for c in entry.get("after") or []}
        self.list.clear()
        for candidate in (entry.get("before") or [])[:10]:
            odds = f"{candidate['p']:.1%}" if from_server else f"{candidate['p']:.1%} → {after.get(candidate['id'], 0.0):.1%}"
            mark = "  ◀ chosen" if candidate["id"] == entry.get("id") else ""
            item = QListWidgetItem(f"{shown_token(str(candidate['token']))}   {odds}{mark}")
            item.setData(Qt.ItemDataRole.UserRole, str(candidate["token"]))
            if not can_fork:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
            self.list.addItem(item)

    def show_nothing_recorded(self) -> None:
        self.entry = None
        self.heading.setText(NO_CANDIDATES)
        self.list.clear()

    def clear(self) -> None:
        self.entry = None
        self.heading.setText(PLACEHOLDER)
        self.list.clear()

    def toPlainText(self) -> str:  # noqa: N802 - read like the QTextEdit it replaced (tests, screenshots)
        rows = [self.list.item(i).text() for i in range(self.list.count())]
        return "\n".join([self.heading.text(), *rows]) if self.entry else ""

    def choose(self, row_index: int) -> None:
        """What a click on a row does (tests and the keyboard use it)."""
        item = self.list.item(row_index)
        if item is not None:
            self._clicked(item)

    def _clicked(self, item: QListWidgetItem) -> None:
        if self.can_fork and self.entry is not None:
            self.chosen.emit(str(item.data(Qt.ItemDataRole.UserRole)))
