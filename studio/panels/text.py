"""Text panel: a loom — a tree of texts the model and you write together — shown one path at a time as a page the
model continues (or a chat), tokens streaming in, every sampling control beside it.

The tree and its generations live in `state.loom` (studio/state/loom.py); this panel draws the path on show
(widgets/loom_page.py), the token under the mouse with its candidates (click one: a fork), the branches (the bar
above the page, the Tree tab, the Siblings tab) and the controls (widgets/text_controls.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.library.export import read_text_body
from studio.state import State
from studio.widgets.compare_view import compare_button
from studio.widgets.controls import scroll_column
from studio.widgets.flow import FlowLayout
from studio.widgets.labels import MessageLabel
from studio.widgets.loom_page import LoomPage, chat_lines
from studio.widgets.loom_view import BranchBar, LoomTree, SiblingsView
from studio.widgets.progress import GenerateBar
from studio.widgets.text_controls import TextControls, format_stops, parse_stops  # noqa: F401 - re-exported
from studio.widgets.token_candidates import CandidateList

if TYPE_CHECKING:
    from studio.library.history import History

MAX_SIBLINGS = 8  # "Write N siblings": more would take long and not fit side by side


class TextPanel(QWidget):
    modality = "text"

    def __init__(self, state: State, history: History | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.history = state, history  # every panel is built as (state, history); text needs none yet
        self.values = state.text
        self.loom = state.loom
        self._base = ""  # the page's text before the running generation (the stream is shown after it)
        self.info = MessageLabel()  # a long "saved to" path must not widen the window
        self.info.setObjectName("hint")
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self._page_column())
        splitter.addWidget(self._controls())
        splitter.setStretchFactor(0, 1)
        splitter.setSizes([640, 440])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(splitter)
        state.preview_changed.connect(self._on_preview)
        state.output_added.connect(self._on_output)
        state.output_restored.connect(self._on_output_restored)
        self.values.value_changed.connect(self._on_value)
        self.loom.changed.connect(self._on_loom)
        self.loom.started.connect(self._on_started)
        self.loom.busy_changed.connect(self._set_busy)
        self.loom.note.connect(self.info.setText)
        self.loom.draft_provider = self._draft
        self._show_mode(self.values.get("mode"))
        self._set_busy(self.loom.busy())

    # --- building ----------------------------------------------------------------------------

    def _page_column(self) -> QWidget:
        self.page = LoomPage()
        self.page.setPlaceholderText("Write the beginning of a text; the model continues it. Ctrl+Enter generates.")
        self.page.textChanged.connect(self._on_page_edited)
        self.page.token_hovered.connect(self._show_token)
        self.page.bare_passage_hovered.connect(lambda _node: self.inspector.show_nothing_recorded())
        self.page.edit_requested.connect(self.edit_message)
        self.inspector = CandidateList()
        self.inspector.chosen.connect(self._fork_with)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.inspector, "Tokens")
        self.siblings = SiblingsView(self.loom)
        self.tabs.addTab(self.siblings, "Siblings")
        self.tree_view = LoomTree(self.loom)
        self.tabs.addTab(self.tree_view, "Tree")
        page_and_tabs = QSplitter(Qt.Orientation.Vertical)
        page_and_tabs.addWidget(self.page)
        page_and_tabs.addWidget(self.tabs)
        page_and_tabs.setStretchFactor(0, 3)
        page_and_tabs.setStretchFactor(1, 1)
        self.tabs.setMinimumHeight(150)  # the candidates' heading and a few rows, however short the window
        self.chat_input = QLineEdit()
        self.chat_input.setPlaceholderText("Your message… (Enter sends)")
        self.chat_input.returnPressed.connect(self.generate)
        self.bar = GenerateBar(self.state, "text", unit="tok")
        self.bar.generate.clicked.connect(self.generate)
        holder = QWidget()
        layout = QVBoxLayout(holder)
        layout.addWidget(BranchBar(self.loom))
        layout.addWidget(page_and_tabs, 1)
        layout.addWidget(self.chat_input)
        layout.addWidget(self.bar)
        layout.addLayout(self._action_buttons())
        layout.addWidget(self.info)
        return holder

    def _action_buttons(self) -> FlowLayout:
        self.continue_button = QPushButton("Continue")
        self.continue_button.setToolTip("Generate more after the current end of the page")
        self.continue_button.clicked.connect(self.generate)
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setToolTip("Sample the last generation again with a new seed; the old one stays as "
                                          "another branch")
        self.regenerate_button.clicked.connect(self.regenerate)
        self.undo_button = QPushButton("Undo last")
        self.undo_button.setToolTip("Go back to before the last generation (it stays in the tree)")
        self.undo_button.clicked.connect(self.undo)
        self.sibling_count = QSpinBox()
        self.sibling_count.setRange(2, MAX_SIBLINGS)
        self.sibling_count.setValue(3)
        self.sibling_count.setMaximumWidth(64)
        self.sibling_count.setToolTip("How many continuations “Write siblings” makes at once")
        self.siblings_button = QPushButton("Write siblings")
        self.siblings_button.setToolTip("Several continuations of the page at once (new seeds), side by side in "
                                        "the Siblings tab")
        self.siblings_button.clicked.connect(self.write_siblings)
        siblings = QWidget()  # the count and its button wrap as one
        pair = QHBoxLayout(siblings)
        pair.setContentsMargins(0, 0, 0, 0)
        pair.addWidget(self.siblings_button)
        pair.addWidget(self.sibling_count)
        extra = FlowLayout()  # wraps onto a second line in a narrow window
        for widget in (self.continue_button, self.regenerate_button, self.undo_button, siblings):
            extra.addWidget(widget)
        self.compare_button = compare_button(self.state.compare, "text", self)  # Markov, RNN, GPT side by side
        extra.addWidget(self.compare_button)
        return extra

    def _controls(self) -> QWidget:
        self.side = TextControls(self.values, self.info)
        self.controls, self.stops = self.side.controls, self.side.stops
        self.presets, self.delete_preset_button = self.side.presets, self.side.delete_preset_button
        self.mode_combo, self.runtime_combo = self.side.mode_combo, self.side.runtime_combo
        return scroll_column(*self.side.groups)

    def save_preset(self, name: str) -> None:
        self.side.save_preset(name)

    def _apply_preset(self, index: int) -> None:
        self.side.apply_preset(index)

    def _delete_preset(self) -> None:
        self.side.delete_preset()

    # --- showing -----------------------------------------------------------------------------

    def _chat_mode(self) -> bool:
        return self.values.get("mode") == "chat"

    def _show_mode(self, mode) -> None:
        """Each mode has its own tree: completion shows its page, chat its conversation."""
        chat = mode == "chat"
        self.chat_input.setVisible(chat)
        self.continue_button.setVisible(not chat)
        self.inspector.clear()
        self._render()

    def _render(self) -> None:
        """The path on show (or, before anything was generated, the draft in "prompt")."""
        if self.loom.busy():
            return  # the stream owns the page until its generations end
        tree = self.loom.tree
        if tree.mode == "completion" and tree.current == tree.root:
            self.page.show_text(str(self.values.get("prompt", "")))
        else:
            self.page.show_path(tree)
        if tree.mode == "chat":
            if list(self.values.get("messages") or []) != tree.messages():
                self.values.set("messages", tree.messages())
        elif tree.current != tree.root:
            self.values.set("prompt", tree.text())
        self.page.setReadOnly(self._chat_mode() or self.loom.busy())

    def _on_loom(self) -> None:
        self._render()

    def _set_busy(self, busy: bool) -> None:
        """While a text job runs, nothing may change the page under it: no second job, no undo, no typing."""
        for widget in (self.bar.generate, self.continue_button, self.regenerate_button, self.undo_button,
                       self.chat_input, self.mode_combo, self.siblings_button):
            widget.setEnabled(not busy)
        self.page.setReadOnly(busy or self._chat_mode())
        if not busy:
            self._render()

    def _draft(self) -> str | None:
        """What the user typed on a completion page since it was drawn (the loom keeps it before it moves)."""
        if self._chat_mode() or self.loom.busy():
            return None
        return self.page.toPlainText()

    def _show_token(self, node_id: str, index: int, entry: dict) -> None:
        forkable = not self._chat_mode() and not self.loom.busy()
        self.inspector.show_token(entry, forkable, where=f" (token {index + 1})")
        self._hovered = (node_id, index)

    # --- acting ------------------------------------------------------------------------------

    def generate(self) -> None:
        self._submit(fresh_seed=False)

    def write_siblings(self) -> None:
        if self._submit(fresh_seed=False, count=self.sibling_count.value()):
            self.tabs.setCurrentWidget(self.siblings)

    def _submit(self, fresh_seed: bool, count: int = 1) -> bool:
        if self.loom.busy():
            return False  # Ctrl+Enter while streaming: the buttons are disabled, the shortcut must agree
        self.inspector.clear()
        if self._chat_mode():
            message = self.chat_input.text().strip()
            if not message:
                return False
            jobs = self.loom.send(message, count)
            if jobs:
                self.chat_input.clear()
            return bool(jobs)
        node = self.loom.tree.attach_page(self.page.toPlainText())
        return bool(self.loom.continue_from(node, fresh_seed, count))

    def regenerate(self) -> None:
        """The last generation again with a new seed (even a locked one); the old one stays, one branch over."""
        if self.loom.busy():
            return
        node = self._last_generated()
        if node is not None:
            self.inspector.clear()
            self.loom.continue_from(node.parent, fresh_seed=True)

    def undo(self) -> None:
        """Back to before the last generation; in a chat, the whole turn, the question back in the input."""
        if self.loom.busy():
            return
        tree, node = self.loom.tree, self._last_generated()
        if node is None:
            return
        self.inspector.clear()
        if self._chat_mode():
            question = tree.node(node.parent)
            self.chat_input.setText(question.text)
            self.loom.select(question.parent or tree.root)
        else:
            self.loom.select(node.parent)

    def _last_generated(self):
        """The generated passage at the end of the page, or None (nothing generated, or typed after it)."""
        tree = self.loom.tree
        if tree.current == tree.root:
            return None
        if not self._chat_mode():
            tree.attach_page(self.page.toPlainText())  # typed after it: that text is the page's end now
        node = tree.node()
        return node if node.kind in ("generated", "fork") and node.parent else None

    def _fork_with(self, candidate: str) -> None:
        hovered = getattr(self, "_hovered", None)
        if hovered is None or self.loom.busy() or self._chat_mode():
            return
        node_id, index = hovered
        self.inspector.clear()
        self.loom.fork(node_id, index, candidate)

    def edit_message(self, node_id: str) -> None:
        """A chat message rewritten: a new version beside the old (a user's is answered again)."""
        if self.loom.busy():
            return
        old = self.loom.tree.node(node_id)
        text, ok = QInputDialog.getMultiLineText(self, "Edit message", "A new version of this message (the old "
                                                 "one stays, one branch over):", old.text)
        if ok and text.strip() and text.strip() != old.text:
            self.loom.edit(node_id, text.strip())

    # --- following the state -----------------------------------------------------------------

    def _on_value(self, name: str, value) -> None:
        if name == "mode":
            self._show_mode(value)
        elif name == "prompt" and not self.loom.busy() and not self._chat_mode():
            if self.loom.tree.current == self.loom.tree.root or value != self.loom.tree.text():
                if value != self.page.toPlainText():
                    self.page.show_text(str(value))
        elif name == "messages" and list(value or []) != self.loom.trees["chat"].messages():
            self._load_chat(list(value or []))

    def _load_chat(self, messages: list[dict]) -> None:
        """A restored chat recipe ends with the message it answered: it goes back in the input, ready to send."""
        if messages and messages[-1].get("role") == "user":
            self.chat_input.setText(str(messages[-1].get("content", "")))
            messages = messages[:-1]
        self.loom.start_over("chat", messages)

    def _on_page_edited(self) -> None:
        if not self.loom.busy() and not self._chat_mode():
            self.values.set("prompt", self.page.toPlainText())

    def _on_started(self, node_id: str) -> None:
        tree = self.loom.tree
        if tree.mode == "chat":
            self._base = chat_lines(tree)[0] + "\nAssistant: "
        else:
            self._base = tree.text(node_id)
        self.page.show_stream(self._base, "")

    def _on_preview(self, modality: str, progress) -> None:
        if modality == "text" and self.loom.busy() and isinstance(progress.preview, str):
            generated = progress.preview.lstrip() if self._chat_mode() else progress.preview
            self.page.show_stream(self._base, generated)

    def _on_output_restored(self, modality: str, files: list) -> None:
        """A restored text: its whole page (prompt and what the model wrote) back on the page, not only the prompt."""
        document = next((Path(f) for f in files if Path(f).suffix.lower() in (".md", ".txt")), None)
        if modality != "text" or document is None or self._chat_mode() or self.loom.busy():
            return
        try:
            body = read_text_body(document)
        except (OSError, ValueError) as exc:
            self.info.setText(f"{document.name}: the text itself could not be read ({exc})")
            return
        self.values.set("prompt", body)

    def _on_output(self, artifact) -> None:
        if artifact.modality != "text" or not self.loom.busy():  # arrives just before the job's "finished"
            return
        speed = artifact.info.get("tokens_per_s")
        first = artifact.info.get("first_token_s")
        parts = [f"seed {artifact.recipe.seed}"]
        if artifact.info.get("runtime") in ("llama.cpp", "transformers"):
            parts.append(artifact.info["runtime"])
        if speed:
            parts.append(f"{speed:.0f} tokens/s")
        if first:
            parts.append(f"first token after {first * 1000:.0f} ms")
        if artifact.info.get("ignored_settings"):
            parts.append("not sent to the server: " + ", ".join(artifact.info["ignored_settings"]))
        if artifact.files:
            parts.append(f"saved to {artifact.files[0]}")
        self.info.setText(" · ".join(parts))


def inspector_spans(inspector: list[dict], shift: int = 0) -> list[dict]:
    """Each inspected token's character span in the generated text, moved by `shift` (text not shown).

    The engine records the spans itself (a token's decoded text alone is wrong for the first token after a
    healed trailing space and for the bytes of a multi-byte character); older entries without them get
    consecutive spans from the token texts."""
    spans, position = [], 0
    for token in inspector:
        text = token.get("token", "")
        start, end = token.get("start"), token.get("end")
        if start is None or end is None:
            start, end = position, position + len(text)
        position = end
        if end > start:  # a token that added no character (half a UTF-8 character) can't be pointed at
            spans.append({**token, "start": start + shift, "end": end + shift})
    return spans
