"""Text panel: a page the model continues (or a chat), streaming tokens, every sampling control."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from studio.core.jobs import JobEvent
from studio.engine.text.settings import PRESET_KEYS
from studio.engine.text.settings import PRESETS as BUILTIN_PRESETS
from studio.library import presets
from studio.state import State
from studio.widgets.compare_view import compare_button
from studio.widgets.controls import (
    ParamSlider,
    SeedBox,
    bound_check,
    bound_combo,
    compact_combo,
    row,
    scroll_column,
)
from studio.widgets.flow import FlowLayout
from studio.widgets.labels import MessageLabel
from studio.widgets.model_picker import ModelPicker
from studio.widgets.progress import GenerateBar
from studio.widgets.sampler_controls import UnsupportedControls, more_samplers

if TYPE_CHECKING:
    from studio.library.history import History

GENERATED_BACKGROUND = QColor(70, 110, 170, 90)


def parse_stops(text: str) -> list[str]:
    """Stop sequences are typed separated by `;`; `\\n` stands for a newline."""
    return [part.replace("\\n", "\n") for part in text.split(";") if part]


def format_stops(stops: list[str]) -> str:
    return ";".join(s.replace("\n", "\\n") for s in stops)


class TextPanel(QWidget):
    modality = "text"

    def __init__(self, state: State, history: History | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.history = state, history  # every panel is built as (state, history); text needs none yet
        self.values = state.text
        self._base = ""  # page text before the running generation (the generated span starts after it)
        # Undo steps per mode: completion keeps earlier pages; chat keeps (messages before the turn, message sent).
        self._undo: list[str] = []
        self._chat_undo: list[tuple[list[dict], str]] = []
        self._job_id: int | None = None  # this panel's text job, from Generate until it ends
        self._chat: list[dict] = list(self.values.get("messages") or [])
        self._reply_offset = 0  # leading whitespace of a chat reply, not shown
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self._page())
        splitter.addWidget(self._controls())
        splitter.setStretchFactor(0, 1)
        splitter.setSizes([640, 440])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(splitter)
        state.preview_changed.connect(self._on_preview)
        state.output_added.connect(self._on_output)
        state.job_changed.connect(self._on_job)
        self.values.value_changed.connect(self._on_value)
        self._show_mode(self.values.get("mode"))
        self._set_busy(False)

    # --- building ----------------------------------------------------------------------------

    def _page(self) -> QWidget:
        self.page = QPlainTextEdit()
        self.page.setPlaceholderText("Write the beginning of a text; the model continues it. Ctrl+Enter generates.")
        self.page.setPlainText(self.values.get("prompt", ""))
        self.page.textChanged.connect(self._on_page_edited)
        self.chat_input = QLineEdit()
        self.chat_input.setPlaceholderText("Your message… (Enter sends)")
        self.chat_input.returnPressed.connect(self.generate)
        self.bar = GenerateBar(self.state, "text", unit="tok")
        self.bar.generate.clicked.connect(self.generate)
        self.continue_button = QPushButton("Continue")
        self.continue_button.setToolTip("Generate more after the current end of the page")
        self.continue_button.clicked.connect(self.generate)
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setToolTip("Undo the last generation and sample it again with a new seed")
        self.regenerate_button.clicked.connect(self.regenerate)
        self.undo_button = QPushButton("Undo last")
        self.undo_button.setToolTip("Remove the last generated span")
        self.undo_button.clicked.connect(self.undo)
        extra = FlowLayout()  # wraps onto a second line in a narrow window
        for button in (self.continue_button, self.regenerate_button, self.undo_button):
            extra.addWidget(button)
        self.compare_button = compare_button(self.state.compare, "text", self)  # Markov, RNN, GPT side by side
        extra.addWidget(self.compare_button)
        self.info = MessageLabel()  # a long "saved to" path must not widen the window
        self.info.setObjectName("hint")
        holder = QWidget()
        layout = QVBoxLayout(holder)
        layout.addWidget(self.page, 1)
        layout.addWidget(self.chat_input)
        layout.addWidget(self.bar)
        layout.addLayout(extra)
        layout.addWidget(self.info)
        return holder

    def _model_box(self) -> QGroupBox:
        v = self.values
        model_box = QGroupBox("Model")
        model_layout = QVBoxLayout(model_box)
        model_layout.addWidget(row("Model", ModelPicker(v)))
        self.mode_combo = bound_combo(v, "mode", [("Completion", "completion"), ("Chat", "chat")],
                                      "Completion continues the page; chat answers your messages")
        model_layout.addWidget(row("Mode", self.mode_combo))
        self.runtime_combo = bound_combo(v, "runtime", [("Auto", "auto"), ("llama.cpp", "llama.cpp"),
                                                        ("transformers", "transformers")],
                                         "What runs the model: Auto takes llama.cpp for GGUF files and the built-in "
                                         "(fastest), else transformers")
        model_layout.addWidget(row("Runtime", self.runtime_combo))
        self.presets = compact_combo(QComboBox(), 6)
        self.presets.setToolTip("Move the sliders to a tested combination, or to one you saved")
        self.presets.activated.connect(self._apply_preset)
        save = QPushButton("Save…")
        save.setToolTip("Save the current sampling sliders as a named preset")
        save.clicked.connect(self._ask_preset_name)
        self.delete_preset_button = QPushButton("Delete")
        self.delete_preset_button.setToolTip("Delete the chosen saved preset (built-in presets stay)")
        self.delete_preset_button.clicked.connect(self._delete_preset)
        preset_row = QHBoxLayout()
        preset_row.setContentsMargins(0, 0, 0, 0)
        preset_row.addWidget(self.presets, 1)
        preset_row.addWidget(save)
        preset_row.addWidget(self.delete_preset_button)
        holder = QWidget()
        holder.setLayout(preset_row)
        model_layout.addWidget(row("Preset", holder))
        self._fill_presets()
        return model_box

    def _controls(self) -> QWidget:
        v = self.values
        model_box = self._model_box()
        sampling = QGroupBox("Sampling")
        s = QVBoxLayout(sampling)
        c = self.controls = {  # by setting name: a server that can't honour one greys it out (UnsupportedControls)
            "temperature": ParamSlider(v, "temperature", "Temperature", 0, 2, 0.05, 2, tooltip=(
                "Flattens (high) or sharpens (low) the odds of every next token. 0 = always the likeliest.")),
            "top_k": ParamSlider(v, "top_k", "Top-k", 0, 200, special="off",
                                 tooltip="Only the k likeliest tokens may be picked (0 = no limit)."),
            "top_p": ParamSlider(v, "top_p", "Top-p", 0.05, 1, 0.01, 2, tooltip=(
                "Only the likeliest tokens that together hold p of the probability (nucleus).")),
            "min_p": ParamSlider(v, "min_p", "Min-p", 0, 1, 0.01, 2,
                                 tooltip="Drop tokens less likely than min-p × the likeliest token's probability."),
            "typical_p": ParamSlider(v, "typical_p", "Typical-p", 0.05, 1, 0.01, 2,
                                     tooltip="Keep tokens whose surprise is close to the average surprise (1 = off)."),
            "repetition_penalty": ParamSlider(v, "repetition_penalty", "Repetition penalty", 1, 2, 0.01, 2,
                                              tooltip="Makes tokens already in the recent text less likely (1 = off)."),
            "repetition_window": ParamSlider(v, "repetition_window", "Penalty window", 0, 1024, special="all", tooltip=(
                "How many recent tokens the repetition penalty looks at (0 = all).")),
            "presence_penalty": ParamSlider(v, "presence_penalty", "Presence penalty", 0, 2, 0.05, 2,
                                            tooltip="A flat penalty on any token that appeared at all."),
            "frequency_penalty": ParamSlider(v, "frequency_penalty", "Frequency penalty", 0, 2, 0.05, 2,
                                             tooltip="A penalty that grows with how often a token appeared."),
            "max_new_tokens": ParamSlider(v, "max_new_tokens", "Max new tokens", 1, 2048,
                                          tooltip="Stop after this many tokens."),
            "seed": SeedBox(v),
        }
        for widget in c.values():
            s.addWidget(widget)
        self.stops = QLineEdit(format_stops(v.get("stop", [])))
        self.stops.setPlaceholderText("e.g. \\n\\n;THE END")
        self.stops.setToolTip("Generation ends when one of these appears (not included). Separate with ;  — \\n is a newline.")
        self.stops.textChanged.connect(lambda text: v.set("stop", parse_stops(text)))
        s.addWidget(row("Stop sequences", self.stops))
        c["stop"] = self.stops
        c["greedy"] = bound_check(v, "greedy", "Greedy (always the likeliest token)",
                                  "Ignores temperature and filters: deterministic, often repetitive.")
        c["inspect"] = bound_check(v, "inspect", "Token inspector (slower)",
                                   "Record the top-10 candidates for each token so you can see what the sliders did.")
        s.addWidget(c["greedy"])
        s.addWidget(c["inspect"])
        more, more_controls = more_samplers(v)
        c.update(more_controls)
        c["runtime"] = self.runtime_combo
        self.unsupported = UnsupportedControls(c)
        v.backend_models.changed.connect(self._grey_out_unsupported)
        self.inspector = QTextEdit()
        self.inspector.setReadOnly(True)
        self.inspector.setPlaceholderText("Token inspector: click a generated token to see its top candidates.")
        self.inspector.setMaximumHeight(180)
        scroll = scroll_column(model_box, sampling, more, self.inspector)
        self.page.cursorPositionChanged.connect(self._inspect_at_cursor)
        self._tokens: list[dict] = []
        return scroll

    # --- behaviour ---------------------------------------------------------------------------

    def _chat_mode(self) -> bool:
        return self.values.get("mode") == "chat"

    def _show_mode(self, mode) -> None:
        """Each mode has its own page: completion shows the page in "prompt", chat shows the conversation."""
        chat = mode == "chat"
        self.chat_input.setVisible(chat)
        self.continue_button.setVisible(not chat)
        self.page.setReadOnly(chat or self._busy())
        self._forget_tokens()
        self.page.setExtraSelections([])
        self._set_page(self._render_chat() if chat else str(self.values.get("prompt", "")))

    def _busy(self) -> bool:
        return self._job_id is not None

    def _set_busy(self, busy: bool) -> None:
        """While a text job runs, nothing may change the page under it: no second job, no undo, no typing."""
        for widget in (self.bar.generate, self.continue_button, self.regenerate_button, self.undo_button,
                       self.chat_input, self.mode_combo):
            widget.setEnabled(not busy)
        self.page.setReadOnly(busy or self._chat_mode())

    def _set_page(self, text: str) -> None:
        if text != self.page.toPlainText():
            self.page.blockSignals(True)
            self.page.setPlainText(text)
            self.page.blockSignals(False)

    def _forget_tokens(self) -> None:
        self._tokens = []  # the inspector's tokens belong to the page being replaced
        self.inspector.clear()

    # --- presets: built-in ones from the engine, the user's own saved by name ------------------

    def _fill_presets(self, select: str | None = None) -> None:
        self.presets.clear()
        self.presets.addItem("Choose a preset…")
        for name in BUILTIN_PRESETS:
            self.presets.addItem(name, f"builtin:{name}")
        saved = presets.user_presets("text")
        if saved:
            self.presets.insertSeparator(self.presets.count())
            for name in sorted(saved):
                self.presets.addItem(f"★ {name}", f"user:{name}")
        index = self.presets.findData(f"user:{select}") if select else 0
        self.presets.setCurrentIndex(max(0, index))
        self.delete_preset_button.setEnabled(bool(select))

    def _apply_preset(self, index: int) -> None:
        kind, _, name = (self.presets.itemData(index) or "").partition(":")
        self.delete_preset_button.setEnabled(kind == "user")
        values = BUILTIN_PRESETS.get(name) if kind == "builtin" else presets.user_presets("text").get(name)
        if values:
            self.values.update({k: v for k, v in values.items() if k in PRESET_KEYS})

    def save_preset(self, name: str) -> None:
        values = {key: self.values.get(key) for key in PRESET_KEYS}
        try:
            presets.save_user_preset("text", name, values)
        except (ValueError, OSError) as exc:
            self.info.setText(f"Could not save the preset: {exc}")
            return
        self._fill_presets(select=name.strip())

    def _ask_preset_name(self) -> None:
        name, ok = QInputDialog.getText(self, "Save preset", "Name for the current sampling settings:")
        if ok and name.strip():
            self.save_preset(name)

    def _delete_preset(self) -> None:
        kind, _, name = (self.presets.currentData() or "").partition(":")
        if kind == "user":
            presets.delete_user_preset("text", name)
            self._fill_presets()

    def _grey_out_unsupported(self) -> None:
        """A server's model: the settings its server can't honour are greyed out, saying why."""
        info = self.values.backend_models.find(self.values.get("model"), self.values.get("backend") or "")
        self.unsupported.apply(dict(info.unsupported) if info is not None else {})

    def _on_value(self, name: str, value) -> None:
        if name in ("model", "backend"):
            self._grey_out_unsupported()
        if name == "mode":
            self._show_mode(value)
        elif name == "prompt" and not self._busy() and not self._chat_mode():
            self._set_page(str(value))
        elif name == "stop" and parse_stops(self.stops.text()) != list(value or []):
            self.stops.blockSignals(True)
            self.stops.setText(format_stops(list(value or [])))
            self.stops.blockSignals(False)
        elif name == "messages" and list(value or []) != self._chat:
            self._load_chat(list(value or []))

    def _load_chat(self, messages: list[dict]) -> None:
        """A restored chat recipe ends with the message it answered: it goes back in the input, ready to send."""
        if messages and messages[-1].get("role") == "user":
            self.chat_input.setText(str(messages[-1].get("content", "")))
            messages = messages[:-1]
        self._chat = [dict(m) for m in messages]
        self._chat_undo.clear()
        self.values.set("messages", list(self._chat))
        if self._chat_mode():
            self._set_page(self._render_chat())

    def _on_page_edited(self) -> None:
        if not self._busy() and not self._chat_mode():
            self.values.set("prompt", self.page.toPlainText())

    def generate(self) -> None:
        self._submit(fresh_seed=False)

    def _submit(self, fresh_seed: bool) -> None:
        if self._busy():
            return  # Ctrl+Enter while streaming: the buttons are disabled, the shortcut must agree
        if self._chat_mode():
            message = self.chat_input.text().strip()
            if not message:
                return
            before = list(self._chat)
            self._chat.append({"role": "user", "content": message})
            self._base = self._render_chat() + "\nAssistant: "
            self._set_page(self._base)
            job = self.state.generate("text", fresh_seed, prompt=message, messages=list(self._chat))
            if job is None:
                self._chat = before
                self._set_page(self._render_chat())
                return
            self.chat_input.clear()
            self._chat_undo.append((before, message))
        else:
            self._base = self.page.toPlainText()
            self.values.set("prompt", self._base)
            job = self.state.generate("text", fresh_seed)
            if job is None:
                return
            self._undo.append(self._base)
        self._job_id = job.id
        self._set_busy(True)
        self._forget_tokens()

    def regenerate(self) -> None:
        """Take back the last generation and sample it again with a new seed (even a locked one)."""
        if self._chat_mode():
            if self._chat_undo:
                self.undo()  # puts the question back in the input
                self._submit(fresh_seed=True)
        elif self._undo:
            self.undo()
            self._submit(fresh_seed=True)

    def undo(self) -> None:
        if self._busy():
            return
        self._forget_tokens()
        self.page.setExtraSelections([])
        if self._chat_mode():
            if not self._chat_undo:
                return
            self._chat, message = self._chat_undo.pop()
            self.chat_input.setText(message)  # the question comes back, to edit or send again
            self.values.set("messages", list(self._chat))
            self._set_page(self._render_chat())
        elif self._undo:
            self.values.set("prompt", self._undo.pop())

    def _render_chat(self) -> str:
        return "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in self._chat)

    def _on_job(self, info) -> None:
        if info.job.id != self._job_id or info.active:
            return
        self._job_id = None
        self._set_busy(False)
        if info.status != JobEvent.FINISHED:  # cancelled or failed: keep what streamed in
            self._keep_partial()

    def _keep_partial(self) -> None:
        """A cancelled (or failed) generation leaves its text on the page; make it the page for real."""
        page = self.page.toPlainText()
        if self._chat_mode():
            reply = page[len(self._base):].strip() if page.startswith(self._base) else ""
            if reply:
                self._chat.append({"role": "assistant", "content": reply})
            else:  # nothing came back: the question returns to the input
                before, message = self._chat_undo.pop() if self._chat_undo else (self._chat[:-1], "")
                self._chat = before
                self.chat_input.setText(message)
            self.values.set("messages", list(self._chat))
            self._set_page(self._render_chat())
        else:
            self.values.set("prompt", page)

    def _on_preview(self, modality: str, progress) -> None:
        if modality == "text" and self._busy() and isinstance(progress.preview, str):
            self._show_generated(progress.preview)

    def _show_generated(self, generated: str) -> None:
        if self._chat_mode():  # "Assistant: " is followed by the reply, not by the model's leading newline
            shown = generated.lstrip()
            self._reply_offset = len(generated) - len(shown)
            generated = shown
        else:
            self._reply_offset = 0
        self.page.blockSignals(True)
        self.page.setPlainText(self._base + generated)
        self._highlight(len(self._base), len(self._base) + len(generated))
        self.page.moveCursor(QTextCursor.MoveOperation.End)
        self.page.blockSignals(False)

    def _highlight(self, start: int, end: int) -> None:
        selection = QTextEdit.ExtraSelection()
        selection.format = QTextCharFormat()
        selection.format.setBackground(GENERATED_BACKGROUND)
        cursor = self.page.textCursor()
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        selection.cursor = cursor
        self.page.setExtraSelections([selection])

    def _on_output(self, artifact) -> None:
        if artifact.modality != "text" or not self._busy():  # arrives just before the job's "finished"
            return
        self._show_generated(artifact.payload)
        if self._chat_mode():
            self._chat.append({"role": "assistant", "content": artifact.payload.strip()})
            self.values.set("messages", list(self._chat))
        else:
            self.values.set("prompt", self.page.toPlainText())
        self._tokens = inspector_spans(artifact.info.get("inspector") or [], shift=-self._reply_offset)
        speed = artifact.info.get("tokens_per_s")
        first = artifact.info.get("first_token_s")
        parts = [f"seed {artifact.recipe.seed}"]
        if speed:
            parts.append(f"{speed:.0f} tokens/s")
        if first is not None:
            parts.append(f"first token after {first * 1000:.0f} ms")
        if artifact.files:
            parts.append(f"saved to {artifact.files[0]}")
        self.info.setText(" · ".join(parts))

    def _inspect_at_cursor(self) -> None:
        if not self._tokens or self._busy():
            return
        position = self.page.textCursor().position() - len(self._base)
        token = next((t for t in self._tokens if t.get("start", -1) <= position < t.get("end", -1)), None)
        if token is None:
            return
        lines = [f"<b>{_escape(token.get('token', ''))}</b> — top candidates (before → after the sliders):"]
        after = {c["id"]: c["p"] for c in token.get("after", [])}
        for candidate in token.get("before", [])[:10]:
            chosen = " ◀" if candidate["id"] == token.get("id") else ""
            lines.append(f"{_escape(candidate['token'])}: {candidate['p']:.1%} → {after.get(candidate['id'], 0.0):.1%}{chosen}")
        self.inspector.setHtml("<br>".join(lines))


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


def _escape(text: str) -> str:
    return repr(text)[1:-1].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
