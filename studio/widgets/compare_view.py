"""Compare families: three columns (Markov, RNN, transformer), each the model's output (a text or a piano roll)
with its tokens/s and surprise. Bound to `State.compare` (studio/state/compare.py): it draws the columns state
holds and never keeps values of its own; "Compare again" and "Cancel" go back to state."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from studio.state.compare import RATE_TIP, SURPRISE_TIP, CompareState, figures
from studio.widgets.labels import MessageLabel
from studio.widgets.piano_roll import PianoRoll

COMPARE_TIP = ("Run the prompt, seed and sampling settings through the built-in Markov, RNN and transformer models "
               "side by side, with each one's speed and surprise; saved to the Gallery as one comparison.")


class CompareColumn(QFrame):
    """One family: a header (family, model), its output, and its figures."""

    def __init__(self, medium: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.header = QLabel()
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.header.setWordWrap(True)
        if medium == "music":
            self.body: QWidget = PianoRoll()
            self.body.setMinimumHeight(160)
        else:
            self.body = QPlainTextEdit()
            self.body.setReadOnly(True)
            self.body.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.body.setMinimumWidth(120)
        self.figures = QLabel()
        self.figures.setWordWrap(True)
        self.figures.setObjectName("hint")
        self.figures.setToolTip(RATE_TIP + "\n\n" + SURPRISE_TIP)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.header)
        layout.addWidget(self.body, 1)
        layout.addWidget(self.figures)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def show_column(self, column: dict) -> None:
        model = str(column.get("model", "")).removeprefix("builtin:")
        where = f" · {column['key']}, {column.get('metre', '')}" if column.get("key") else ""  # music: what it chose
        self.header.setText(f"<b>{column.get('family', '')}</b> · {model}{where}")
        self.figures.setText(figures(column))
        if isinstance(self.body, PianoRoll):
            self.body.set_notes(column.get("notes") or [], _beats_per_bar(column.get("metre")))
        elif self.body.toPlainText() != column.get("text", ""):
            self.body.setPlainText(str(column.get("text", "")))

    def text(self) -> str:
        return self.body.toPlainText() if isinstance(self.body, QPlainTextEdit) else ""


def _beats_per_bar(metre) -> float | None:
    try:
        top, bottom = str(metre).split("/")
        return int(top) * 4.0 / int(bottom)
    except (ValueError, ZeroDivisionError):
        return None


class CompareView(QWidget):
    def __init__(self, compare: CompareState, medium: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.compare, self.medium = compare, medium
        self.title = title = QLabel()
        title.setWordWrap(True)
        self.message = MessageLabel()
        self.message.setObjectName("hint")
        self.again = QPushButton("Compare again")
        self.again.setToolTip(COMPARE_TIP)
        self.again.clicked.connect(lambda: compare.run(medium))
        self.stop = QPushButton("Cancel")
        self.stop.setToolTip("Cancel the comparison's jobs")
        self.stop.clicked.connect(lambda: compare.cancel(medium))
        top = QHBoxLayout()
        top.addWidget(title, 1)
        top.addWidget(self.again)
        top.addWidget(self.stop)
        self.row = QHBoxLayout()
        self.row.setSpacing(8)
        self.columns = [CompareColumn(medium) for _ in compare.families[medium]]
        for column in self.columns:
            self.row.addWidget(column, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(self.row, 1)
        layout.addWidget(self.message)
        compare.changed.connect(self._on_changed)
        self.refresh()

    def _on_changed(self, medium: str) -> None:
        if medium == self.medium:
            self.refresh()

    def refresh(self) -> None:
        columns = self.compare.columns[self.medium]
        for index, widget in enumerate(self.columns):
            if index < len(columns):
                widget.show_column(columns[index])
            else:
                family, model = self.compare.families[self.medium][index]
                widget.show_column({"family": family, "model": model, "status": "queued", "tokens_per_s": None})
                widget.figures.setText("not run yet")
        self.message.setText(self.compare.messages[self.medium])
        recipe = self.compare.recipes[self.medium]
        prompt = " ".join(str(recipe.prompt if recipe else "").split())
        prompt = prompt if len(prompt) <= 70 else prompt[:69] + "…"
        seed = f", seed {recipe.seed}" if recipe else ""
        self.title.setText(f"“{prompt}” — the same prompt{seed} and settings through three model families"
                           if prompt else f"The same prompt{seed} and settings through three model families")
        running = self.compare.running(self.medium)
        self.again.setEnabled(not running)
        self.stop.setEnabled(running)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        if self.medium == "music":
            self.refresh()  # the rolls fit the piece to their new width


class CompareDialog(QDialog):
    """The comparison in its own window beside the panel (not modal: the panel stays usable)."""

    def __init__(self, compare: CompareState, medium: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Compare model families — {medium}")
        self.view = CompareView(compare, medium, self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.view)
        self.resize(1100, 560 if medium == "text" else 480)


def compare_button(compare: CompareState, medium: str, parent: QWidget) -> QPushButton:
    """The panels' "Compare families" action: runs the comparison and shows it (also when one is restored)."""
    button = QPushButton("Compare families")
    button.setToolTip(COMPARE_TIP)
    holder: dict[str, CompareDialog] = {}

    def show(which: str) -> None:
        if which != medium:
            return
        compare.unshown.discard(medium)
        if "dialog" not in holder:
            holder["dialog"] = CompareDialog(compare, medium, parent)
        holder["dialog"].show()
        holder["dialog"].raise_()

    button.clicked.connect(lambda: compare.run(medium))
    compare.show_requested.connect(show)
    button.dialogs = holder  # tests reach the dialog here
    if medium in compare.unshown:  # restored from the Gallery before this panel was built
        QTimer.singleShot(0, lambda: show(medium))
    return button
