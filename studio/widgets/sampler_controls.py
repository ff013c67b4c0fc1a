"""The Text panel's newer samplers (DRY, XTC, mirostat, dynamic temperature, logit bias, banned strings), the order
of the sampling chain, and the one place a control is greyed out because the chosen server can't honour it.

Every control is bound to the panel's state (`PanelState`); defaults and meanings live in
`studio/engine/text/settings.py`, the tooltips here say the same in one line.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.engine.text.settings import SAMPLER_ORDER, complete_order
from studio.state import PanelState
from studio.widgets.controls import ParamSlider, bound_check, row

# What each stage of the chain is called on screen (the order list) and what it does, in one line.
STAGE_LABELS = {
    "repetition_penalty": "Repetition penalty",
    "presence_penalty": "Presence penalty",
    "frequency_penalty": "Frequency penalty",
    "dry": "DRY",
    "temperature": "Temperature (or dynamic)",
    "top_k": "Top-k",
    "top_p": "Top-p",
    "typical_p": "Typical-p",
    "min_p": "Min-p",
    "mirostat": "Mirostat v2",
    "xtc": "XTC",
}


def parse_texts(text: str) -> list[str]:
    """Texts typed separated by `;`; `\\n` stands for a newline (as the stop sequences)."""
    return [part.replace("\\n", "\n") for part in text.split(";") if part]


def format_texts(texts) -> str:
    return ";".join(str(t).replace("\n", "\\n") for t in texts or [])


def parse_bias(text: str) -> list[list]:
    """`word:-5; " cat":+2` -> [["word", -5.0], [" cat", 2.0]]; quotes keep a leading space; bad entries are left
    out (the field shows what it understood in its tooltip)."""
    pairs = []
    for part in text.split(";"):
        word, colon, amount = part.strip().rpartition(":")
        if not colon:
            continue
        word = word.strip()
        if len(word) >= 2 and word[0] == word[-1] == '"':
            word = word[1:-1]
        try:
            value = float(amount)
        except ValueError:
            continue
        if word and value == value and abs(value) != float("inf"):
            pairs.append([word.replace("\\n", "\n"), value])
    return pairs


def format_bias(pairs) -> str:
    shown = []
    for word, value in pairs or []:
        word = str(word).replace("\n", "\\n")
        shown.append(f'"{word}":{value:g}' if word != word.strip() or ":" in word else f"{word}:{value:g}")
    return "; ".join(shown)


class _TextListLine(QLineEdit):
    """A line edit bound to a list value of the state, through a parse/format pair."""

    def __init__(self, state: PanelState, name: str, parse, show, placeholder: str, tooltip: str) -> None:
        super().__init__(show(state.get(name)))
        self.state, self.name, self.parse, self.show = state, name, parse, show
        self.setPlaceholderText(placeholder)
        self.setToolTip(tooltip)
        self.textEdited.connect(lambda text: state.set(name, parse(text)))
        state.value_changed.connect(self._on_state)

    def _on_state(self, name: str, value) -> None:
        if name == self.name and self.parse(self.text()) != list(value or []):
            self.setText(self.show(value))


class SamplerOrderList(QListWidget):
    """The chain's stages, top to bottom in the order they run; drag one to move it."""

    def __init__(self, state: PanelState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.setToolTip("The order the sampling steps run in, top first; drag to reorder (text-generation-webui's "
                        "order by default). Greedy keeps only the penalties.")
        self._show(state.get("sampler_order"))
        # every stage in view, no scrolling: the order is the point of the list
        self.setFixedHeight(self.sizeHintForRow(0) * self.count() + 2 * self.frameWidth() + 4)
        self.model().rowsMoved.connect(self._commit)
        state.value_changed.connect(lambda name, value: self._show(value) if name == "sampler_order" else None)

    def order(self) -> list[str]:
        return [self.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.count())]

    def _show(self, order) -> None:
        try:
            names = complete_order(order or SAMPLER_ORDER)
        except Exception:  # noqa: BLE001 - an unknown stage in a hand-edited recipe: show the default order
            names = SAMPLER_ORDER
        if list(names) == self.order():
            return
        self.blockSignals(True)
        self.clear()
        for name in names:
            item = QListWidgetItem(STAGE_LABELS.get(name, name))
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.addItem(item)
        self.blockSignals(False)

    def _commit(self, *_args) -> None:
        self.state.set("sampler_order", self.order())

    def move(self, name: str, row_index: int) -> None:
        """Move a stage to a row (what a drag does; tests and the keyboard use it)."""
        current = self.order()
        current.remove(name)
        current.insert(row_index, name)
        self.state.set("sampler_order", current)


def more_samplers(state: PanelState) -> tuple[QGroupBox, dict[str, QWidget]]:
    """The group of newer samplers and the chain's order; returns it with its controls by setting name."""
    box = QGroupBox("More samplers")
    layout = QVBoxLayout(box)
    controls: dict[str, QWidget] = {
        "dry_multiplier": ParamSlider(state, "dry_multiplier", "DRY", 0, 3, 0.05, 2, special="off", tooltip=(
            "Don't repeat yourself: penalises a word that would repeat a longer stretch of the text (0 = off; 0.8 "
            "is its author's advice).")),
        "dry_base": ParamSlider(state, "dry_base", "DRY base", 1, 4, 0.05, 2,
                                tooltip="How fast DRY's penalty grows with the length of the repeat."),
        "dry_allowed_length": ParamSlider(state, "dry_allowed_length", "DRY allowed", 1, 20,
                                          tooltip="Repeats this many tokens long are free (short phrases recur)."),
        "dry_sequence_breakers": _TextListLine(
            state, "dry_sequence_breakers", parse_texts, format_texts, "\\n;:;\";*",
            "DRY never counts a repeat across these (names after a newline or colon may recur). Separate with ;"),
        "xtc_probability": ParamSlider(state, "xtc_probability", "XTC chance", 0, 1, 0.05, 2, special="off",
                                       tooltip="Exclude top choices: how often (per token) XTC removes the most "
                                               "obvious words (0 = off; 0.5 suggested)."),
        "xtc_threshold": ParamSlider(state, "xtc_threshold", "XTC threshold", 0, 0.5, 0.01, 2,
                                     tooltip="Words at least this likely count as obvious; the least likely of "
                                             "them always stays."),
        "mirostat": bound_check(state, "mirostat", "Mirostat v2 (adaptive)",
                                "Keeps the text's surprise near tau by cutting the unlikely tail adaptively; set "
                                "top-k 0 and top-p 1 with it."),
        "mirostat_tau": ParamSlider(state, "mirostat_tau", "Mirostat tau", 0.5, 10, 0.1, 1,
                                    tooltip="Target surprise in bits per token: higher = more varied text."),
        "mirostat_eta": ParamSlider(state, "mirostat_eta", "Mirostat eta", 0.01, 1, 0.01, 2,
                                    tooltip="How fast mirostat adapts to the text it writes."),
        "dynamic_temperature": bound_check(state, "dynamic_temperature", "Dynamic temperature",
                                           "Replaces the temperature: low where the model is sure, high where "
                                           "it hesitates."),
        "dynatemp_low": ParamSlider(state, "dynatemp_low", "Temp. low", 0, 2, 0.05, 2,
                                    tooltip="The temperature where the model is sure of the next word."),
        "dynatemp_high": ParamSlider(state, "dynatemp_high", "Temp. high", 0, 3, 0.05, 2,
                                     tooltip="The temperature where the model hesitates most."),
        "dynatemp_exponent": ParamSlider(state, "dynatemp_exponent", "Temp. exponent", 0.1, 4, 0.1, 1,
                                         tooltip="Above 1, stays near low unless the model is very unsure."),
        "logit_bias": _TextListLine(
            state, "logit_bias", parse_bias, format_bias, 'word:-5; " cat":+3',
            "Make these texts' tokens likelier (+) or rarer (−); -100 all but bans. Quote to keep a leading space."),
        "banned_strings": _TextListLine(
            state, "banned_strings", parse_texts, format_texts, "shivers down;a testament to",
            "Never written (any case): the writer backs up and chooses again. Separate with ;"),
    }
    labels = {"dry_sequence_breakers": "DRY breakers", "logit_bias": "Logit bias", "banned_strings": "Banned"}
    for name, widget in controls.items():
        layout.addWidget(row(labels[name], widget, widget.toolTip()) if name in labels else widget)
    order = SamplerOrderList(state)
    reset = QPushButton("Default order")
    reset.setToolTip("Put the sampling steps back in text-generation-webui's order")
    reset.clicked.connect(lambda: state.set("sampler_order", list(SAMPLER_ORDER)))
    heading = QHBoxLayout()
    heading.addWidget(row("Chain order", order, order.toolTip()), 1)
    layout.addLayout(heading)
    layout.addWidget(reset, 0, Qt.AlignmentFlag.AlignRight)
    controls["sampler_order"] = order
    return box, controls


class UnsupportedControls:
    """Greys out the controls the chosen server can't honour, with the reason as their tooltip, and gives them
    back (with their own tooltip) when the model changes."""

    def __init__(self, controls: dict[str, QWidget]) -> None:
        self.controls = controls
        self.tips = {name: widget.toolTip() for name, widget in controls.items()}
        self.disabled: dict[str, str] = {}

    def apply(self, unsupported: dict[str, str]) -> None:
        for name, widget in self.controls.items():
            why = unsupported.get(name)
            widget.setEnabled(why is None)
            tip = f"Not available: {why}" if why else self.tips[name]
            for part in [widget, *widget.findChildren(QWidget)]:
                part.setToolTip(tip)
        self.disabled = {n: w for n, w in unsupported.items() if n in self.controls}
