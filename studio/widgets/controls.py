"""Small reusable controls bound to a PanelState: sliders with numeric boxes, seed box, prompt edit.

Each control writes the state on user edits and follows the state's `value_changed` (a restored
recipe moves the sliders). The state is the truth; widgets are never read back to build a job.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent, QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.recipe import SEED_LIMIT
from studio.state import MAX_SEED, RANDOM_SEED, PanelState


class ParamSlider(QWidget):
    """A labelled slider + numeric box for one numeric setting, with a plain-words tooltip."""

    def __init__(
        self,
        state: PanelState,
        name: str,
        label: str,
        minimum: float,
        maximum: float,
        step: float = 1.0,
        decimals: int = 0,
        tooltip: str = "",
        parent: QWidget | None = None,
        special: str = "",
    ) -> None:
        super().__init__(parent)
        self.state, self.name = state, name
        self._scale = 10**decimals  # the QSlider is integer-only; scale floats onto it
        self._decimals = decimals
        self.label = QLabel(label)
        self.label.setMinimumWidth(LABEL_WIDTH)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(int(minimum * self._scale), int(maximum * self._scale))
        self.slider.setSingleStep(max(1, int(step * self._scale)))
        self.box: QSpinBox | QDoubleSpinBox
        if decimals:
            self.box = QDoubleSpinBox()
            self.box.setDecimals(decimals)
        else:
            self.box = QSpinBox()
        self.box.setRange(minimum, maximum)
        self.box.setSingleStep(step)
        # As wide as its longest value (asked after the theme is applied): a fixed 78 px cut 10-digit seeds.
        self.box.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        if special:  # what the minimum means, e.g. top-k 0 = "off", tempo 0 = "auto"
            self.box.setSpecialValueText(special)
        self.box.setKeyboardTracking(False)
        for widget in (self, self.label, self.slider, self.box):
            widget.setToolTip(tooltip)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.box)
        self._show(state.get(name))
        self.slider.valueChanged.connect(lambda v: self._commit(v / self._scale))
        self.box.valueChanged.connect(self._commit)
        state.value_changed.connect(self._on_state)

    def _commit(self, value: float) -> None:
        value = round(value, self._decimals) if self._decimals else int(round(value))
        self.state.set(self.name, value)

    def _on_state(self, name: str, value: Any) -> None:
        if name == self.name:
            self._show(value)

    def _show(self, value: Any) -> None:
        """Show a value; one outside the widgets' range (an A1111 variation seed up to 2**32 - 1) is shown at
        the nearest end while the state keeps it, and one that is not a number (a hand-edited recipe) is
        left unshown: a restore must never take the control down with it."""
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an int too big for a float
            return
        if number != number:  # NaN
            return
        for widget in (self.slider, self.box):
            widget.blockSignals(True)
        try:
            scaled = number * self._scale
            self.slider.setValue(int(round(min(max(scaled, self.slider.minimum()), self.slider.maximum()))))
            shown = min(max(number, self.box.minimum()), self.box.maximum())
            self.box.setValue(float(shown) if self._decimals else int(shown))
        finally:
            for widget in (self.slider, self.box):
                widget.blockSignals(False)


LABEL_WIDTH = 100  # the label column every row lines up on (narrow enough for a panel at 960 px)


class SeedSpin(QAbstractSpinBox):
    """A spin box for seeds 0 .. 2**64 - 1, held as a Python int: QSpinBox is 32-bit signed and a
    QDoubleSpinBox rounds past 2**53, and A1111, Fooocus and ComfyUI write 64-bit seeds."""

    valueChanged = Signal(object)  # int

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._value = 0
        self._minimum, self._maximum = 0, SEED_LIMIT
        self.lineEdit().setText("0")
        self.lineEdit().textEdited.connect(self._on_edited)
        self.editingFinished.connect(lambda: self.lineEdit().setText(str(self._value)))

    def value(self) -> int:
        return self._value

    def minimum(self) -> int:
        return self._minimum

    def maximum(self) -> int:
        return self._maximum

    def setRange(self, minimum: int, maximum: int) -> None:
        self._minimum, self._maximum = int(minimum), int(maximum)
        self.setValue(self._value)

    def setValue(self, value: Any) -> None:
        value = min(max(int(value), self._minimum), self._maximum)
        if str(value) != self.lineEdit().text():
            self.lineEdit().setText(str(value))
        if value != self._value:
            self._value = value
            self.valueChanged.emit(value)

    def _on_edited(self, text: str) -> None:
        if text.strip().isdigit() and self._minimum <= int(text) <= self._maximum and int(text) != self._value:
            self._value = int(text)
            self.valueChanged.emit(self._value)

    def validate(self, text: str, pos: int):
        stripped = text.strip()
        if not stripped:
            return QValidator.State.Intermediate, text, pos
        if not stripped.isdigit() or not stripped.isascii():
            return QValidator.State.Invalid, text, pos
        if int(stripped) > self._maximum:
            return QValidator.State.Invalid, text, pos
        return QValidator.State.Acceptable, text, pos

    def fixup(self, text: str) -> str:
        return str(self._value)

    def stepBy(self, steps: int) -> None:
        self.setValue(self._value + steps)

    def stepEnabled(self) -> QAbstractSpinBox.StepEnabledFlag:
        flags = QAbstractSpinBox.StepEnabledFlag.StepNone
        if self._value > self._minimum:
            flags |= QAbstractSpinBox.StepEnabledFlag.StepDownEnabled
        if self._value < self._maximum:
            flags |= QAbstractSpinBox.StepEnabledFlag.StepUpEnabled
        return flags

    def sizeHint(self) -> QSize:
        # As wide as a 32-bit seed, like the box it replaced; a 20-digit seed scrolls inside it.
        hint = super().sizeHint()
        return QSize(self.fontMetrics().horizontalAdvance("0" * 10) + 30, hint.height())

    def minimumSizeHint(self) -> QSize:
        return QSize(self.fontMetrics().horizontalAdvance("0" * 6) + 24, super().minimumSizeHint().height())


class SeedBox(QWidget):
    """Seed number, a dice for a new random seed, and a lock: unlocked means a fresh seed each time."""

    def __init__(self, state: PanelState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.label = QLabel("Seed")
        self.label.setMinimumWidth(LABEL_WIDTH)
        self.spin = SeedSpin()  # seeds up to 2**64 - 1, every digit kept
        self.spin.setMinimumWidth(96)  # its hint fits 4294967295 plus margins: the panel's widest row at 960 px
        self.spin.setToolTip("The starting noise. The same seed with the same settings makes the same output.")
        self.spin.lineEdit().setPlaceholderText("random")
        self.dice = QToolButton()
        self.dice.setText("🎲")
        self.dice.setToolTip("Pick a new random seed")
        self.lock = QCheckBox("lock")
        self.lock.setToolTip("Locked: every generation uses this seed. Unlocked: a new random seed each time.")
        self.reuse = QToolButton()
        self.reuse.setText("♻")
        self.reuse.setToolTip("Reuse the seed of the last generation")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.spin, 1)
        layout.addWidget(self.dice)
        layout.addWidget(self.reuse)
        layout.addWidget(self.lock)
        self._show(state.get("seed"))
        self.spin.valueChanged.connect(self._on_spin)
        self.lock.toggled.connect(self._on_lock)
        self.dice.clicked.connect(lambda: self._set_locked_seed(random.randint(0, MAX_SEED)))
        self.reuse.clicked.connect(self._reuse_last)
        state.value_changed.connect(lambda name, value: self._show(value) if name == "seed" else None)
        state.last_seed_changed.connect(self.show_last_seed)

    def _set_locked_seed(self, seed: int) -> None:
        self.state.set("seed", int(seed))

    def _reuse_last(self) -> None:
        if self.state.last_seed is not None:
            self._set_locked_seed(self.state.last_seed)

    def _on_spin(self, value: int) -> None:
        if self.lock.isChecked():
            self.state.set("seed", int(value))

    def _on_lock(self, locked: bool) -> None:
        self.state.set("seed", int(self.spin.value()) if locked else RANDOM_SEED)

    def _show(self, seed: Any) -> None:
        for widget in (self.spin, self.lock):
            widget.blockSignals(True)
        locked = seed is not None and int(seed) != RANDOM_SEED
        self.lock.setChecked(locked)
        self.spin.setEnabled(locked)
        if locked:
            self.spin.setValue(int(seed))
        elif getattr(self.state, "last_seed", None) is None:
            self.spin.lineEdit().clear()  # unlocked and nothing generated yet: "random", not a greyed 0
        for widget in (self.spin, self.lock):
            widget.blockSignals(False)

    def show_last_seed(self, seed: int) -> None:
        """After a random-seed generation, show the seed it used (without locking it)."""
        if not self.lock.isChecked():
            self.spin.blockSignals(True)
            self.spin.setValue(seed)
            self.spin.blockSignals(False)


class PromptEdit(QPlainTextEdit):
    """Multi-line prompt bound to a state value. Ctrl+Enter is left to the window's shortcut."""

    submitted = Signal()

    def __init__(self, state: PanelState, name: str = "prompt", placeholder: str = "", parent=None) -> None:
        super().__init__(parent)
        self.state, self.name = state, name
        self.setPlaceholderText(placeholder)
        self.setTabChangesFocus(True)
        self.setPlainText(str(state.get(name, "")))
        self.textChanged.connect(lambda: self.state.set(self.name, self.toPlainText()))
        state.value_changed.connect(self._on_state)

    def _on_state(self, name: str, value: Any) -> None:
        if name == self.name and value != self.toPlainText():
            self.blockSignals(True)
            self.setPlainText(str(value))
            self.blockSignals(False)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if enter and event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.submitted.emit()
            event.accept()
            return
        super().keyPressEvent(event)


def compact_combo(combo: QComboBox, characters: int = 10) -> QComboBox:
    """A combo whose width doesn't follow its longest item (which widened whole panels); its list pops up as
    wide as it needs."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(characters)
    return combo


def _same(item: Any, value: Any) -> bool:
    return type(item) is type(value) and item == value or (isinstance(item, str) and item == value)


def bound_combo(state: PanelState, name: str, items: list[tuple[str, Any]], tooltip: str = "") -> QComboBox:
    """A combo box whose items are (label, value) pairs, bound to a state value."""
    combo = QComboBox()
    combo.setToolTip(tooltip)
    compact_combo(combo)
    for label, value in items:
        combo.addItem(label, value)

    def show(value: Any) -> None:
        # compared in Python: findData turns the value into a QVariant, which raises OverflowError on an int
        # beyond 64 bits (a hand-edited recipe's "scheduler": 11805916207174113034)
        index = next((i for i in range(combo.count()) if _same(combo.itemData(i), value)), -1)
        if index < 0 and isinstance(value, str) and value:
            combo.addItem(value, value)  # a restored recipe may name a value we did not list
            index = combo.count() - 1
        combo.blockSignals(True)
        combo.setCurrentIndex(max(index, 0))
        combo.blockSignals(False)

    show(state.get(name))
    combo.currentIndexChanged.connect(lambda _i: state.set(name, combo.currentData()))
    state.value_changed.connect(lambda n, v: show(v) if n == name else None)
    return combo


def bound_check(state: PanelState, name: str, label: str, tooltip: str = "") -> QCheckBox:
    check = QCheckBox(label)
    check.setToolTip(tooltip)
    check.setChecked(bool(state.get(name)))
    check.toggled.connect(lambda on: state.set(name, bool(on)))
    state.value_changed.connect(lambda n, v: check.setChecked(bool(v)) if n == name else None)
    return check


def bound_line(state: PanelState, name: str, placeholder: str = "", tooltip: str = "") -> QLineEdit:
    line = QLineEdit(str(state.get(name, "")))
    line.setPlaceholderText(placeholder)
    line.setToolTip(tooltip)
    line.textChanged.connect(lambda text: state.set(name, text))
    state.value_changed.connect(lambda n, v: line.setText(str(v)) if n == name and str(v) != line.text() else None)
    return line


def row(label: str, widget: QWidget, tooltip: str = "") -> QWidget:
    """A label + widget line, labels aligned with ParamSlider's."""
    holder = QWidget()
    layout = QHBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    caption = QLabel(label)
    caption.setMinimumWidth(LABEL_WIDTH)
    caption.setToolTip(tooltip)
    layout.addWidget(caption)
    layout.addWidget(widget, 1)
    return holder


class _ControlColumn(QScrollArea):
    """Scrolls vertically, never sideways, and is never narrower than its widest row.

    The width is asked of the column each time (not fixed when built): the theme's stylesheet is applied
    after the window is built and widens buttons and spin boxes, and a fixed minimum taken before it let
    a splitter squeeze the column until its rows were clipped.
    """

    def __init__(self, column: QWidget, min_width: int) -> None:
        super().__init__()
        self.setWidget(column)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._min_width = min_width

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        scrollbar = self.verticalScrollBar().sizeHint().width()
        width = max(self._min_width, self.widget().minimumSizeHint().width() + scrollbar + 2 * self.frameWidth())
        return QSize(width, hint.height())

    def sizeHint(self) -> QSize:
        # As narrow as the rows allow: the canvas beside the column gets the rest of the window.
        return QSize(self.minimumSizeHint().width(), super().sizeHint().height())


class ColumnSplitter(QSplitter):
    """A control column on the left at its minimum width and a canvas taking the rest; the user may drag.

    Sizes set before the first layout are redistributed by Qt in proportion to size hints, so the
    column is placed once the splitter first has a width.
    """

    def __init__(self, column: QWidget, canvas: QWidget) -> None:
        super().__init__(Qt.Orientation.Horizontal)
        self.addWidget(column)
        self.addWidget(canvas)
        self.setStretchFactor(1, 1)
        self._placed = False

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if not self._placed and self.width() > 0:
            self._placed = True
            self.setSizes([1, max(1, self.width())])  # Qt raises the column to its minimum


class RecentPrompts(QToolButton):
    """A "Recent prompts" menu, read afresh from the history each time it opens; a pick fills the panel.

    `provider` returns the values to restore, newest first, e.g. {"prompt": …, "negative_prompt": …}.
    """

    def __init__(self, state: PanelState, provider: Callable[[], list[dict[str, Any]]], parent=None) -> None:
        super().__init__(parent)
        self.state, self.provider = state, provider
        self.setText("Recent prompts")
        self.setToolTip("Prompts you used before (from the gallery's history)")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.setMenu(QMenu(self))
        self.menu().aboutToShow.connect(self.fill)

    def fill(self) -> None:
        menu = self.menu()
        menu.clear()
        choices = self.provider()
        if not choices:
            menu.addAction("Nothing yet: generate something first").setEnabled(False)
        for values in choices:
            label = values["prompt"].replace("\n", " ")[:70]
            if values.get("negative_prompt"):
                label += f"   — not: {values['negative_prompt'][:30]}"
            # "&" marks a keyboard shortcut in a menu: double it so "salt & pepper" shows as written
            menu.addAction(label.replace("&", "&&"), lambda chosen=values: self.state.update(chosen))


def scroll_column(*widgets: QWidget, min_width: int = 320) -> QScrollArea:
    """A vertical column of control groups that scrolls vertically and never sideways."""
    column = QWidget()
    layout = QVBoxLayout(column)
    layout.setContentsMargins(4, 4, 10, 4)
    for widget in widgets:
        layout.addWidget(widget)
    layout.addStretch(1)
    return _ControlColumn(column, min_width)
