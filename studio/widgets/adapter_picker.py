"""A button whose menu lists the LoRAs and embeddings in the model folders and puts one into the prompt as A1111
writes it: `<lora:name:0.8>` for a LoRA, the name itself for an embedding."""

from __future__ import annotations

from PySide6.QtWidgets import QMenu, QPlainTextEdit, QToolButton, QWidget

from studio.core.model_library import READY, ModelEntry
from studio.state.model_library import ModelLibrary

LORA_WEIGHT = 0.8  # A1111's extra-networks default multiplier is 1; 0.8 is what most model pages suggest


def lora_tag(name: str, weight: float = LORA_WEIGHT) -> str:
    return f"<lora:{name}:{weight:g}>"


class AdapterPicker(QToolButton):
    def __init__(self, library: ModelLibrary, prompt: QPlainTextEdit, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library, self.prompt = library, prompt
        self.setText("LoRA / embedding")
        self.setToolTip("Insert a LoRA (<lora:name:0.8>) or a textual-inversion embedding from your model folders")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.setMenu(QMenu(self))
        self.menu().aboutToShow.connect(self.fill_menu)

    def fill_menu(self) -> None:
        menu = self.menu()
        menu.clear()
        if not self.library.loaded:
            self.library.refresh(check_online=False)
            menu.addAction("Looking in your model folders…").setEnabled(False)
            return
        for kind, title in (("lora", "LoRAs"), ("embedding", "Embeddings")):
            entries = sorted((e for e in self.library.of_kind(kind) if e.status == READY), key=lambda e: e.name.lower())
            menu.addSection(title)
            if not entries:
                menu.addAction(f"No {title.lower()} in your model folders").setEnabled(False)
            for entry in entries:
                label = entry.name + (f"  ({entry.family_text})" if entry.family else "")
                action = menu.addAction(label)
                action.setToolTip(entry.location)
                action.triggered.connect(lambda _=False, e=entry: self.insert(e))

    def insert(self, entry: ModelEntry) -> None:
        text = lora_tag(entry.name) if entry.kind == "lora" else entry.name
        cursor = self.prompt.textCursor()
        before = self.prompt.toPlainText()[: cursor.position()]
        if before and not before.endswith((" ", ",", "\n")):
            text = " " + text
        cursor.insertText(text)
        self.prompt.setTextCursor(cursor)
        self.prompt.setFocus()
