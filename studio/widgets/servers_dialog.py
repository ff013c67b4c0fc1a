"""Settings › Servers…: the servers the app drives beside this computer (ComfyUI, OpenAI-compatible text), each
with its kind, address, token and an on/off switch, and a "Test connection" that asks the server what it has.

The probe is the backend's own (`probe(config, token) -> report`), handed in by the app, so this widget never
imports a backend; it runs on a thread of its own (network I/O never runs on the GUI thread). Tokens go to the OS
keyring, or a file only the user can read (core/secrets.py), never into the preferences.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
)

from studio.core import secrets
from studio.core.servers import KINDS, ServerConfig, save_servers
from studio.widgets.labels import MessageLabel

KIND_LABELS = {"comfyui": "ComfyUI (images, audio)", "openai": "OpenAI-compatible (text)"}
Probe = Callable[[ServerConfig, str], str]


class ServersDialog(QDialog):
    probed = Signal(int, str, bool)  # (attempt, report or error, ok): from the probe's thread

    def __init__(self, servers: list[ServerConfig], find_probe: Callable[[str], Probe | None], parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Servers")
        self.find_probe = find_probe
        self.servers = list(servers)
        self.tokens = {server.name: secrets.get_token(server.name) for server in self.servers}
        self._attempt = 0
        self.forgotten: set[str] = set()  # names removed or renamed: their tokens are deleted on Save
        self.list = QListWidget()
        self.list.setMinimumWidth(220)
        self.name, self.url, self.token = QLineEdit(), QLineEdit(), QLineEdit()
        self.url.setPlaceholderText("http://127.0.0.1:8188 or https://gpu-box.example:8443")
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("optional: a bearer token, if the server asks for one")
        self.kind = QComboBox()
        for kind in KINDS:
            self.kind.addItem(KIND_LABELS.get(kind, kind), kind)
        self.enabled = QCheckBox("Connect to this server")
        self.test = QPushButton("Test connection")
        self.test.setToolTip("Ask the server its version, device, free memory and models (nothing else is sent)")
        self.result = MessageLabel("", most=400)
        self.result.setObjectName("hint")
        self._build()
        self.list.currentRowChanged.connect(self._show)
        for field in (self.name, self.url, self.token):
            field.textEdited.connect(self._store)
        self.kind.currentIndexChanged.connect(self._store)
        self.enabled.toggled.connect(self._store)
        self.test.clicked.connect(self.test_connection)
        self.probed.connect(self._on_probed)
        self._refill(0)

    def _build(self) -> None:
        add, remove = QPushButton("Add"), QPushButton("Remove")
        add.clicked.connect(self.add_server)
        remove.clicked.connect(self.remove_server)
        left = QVBoxLayout()
        left.addWidget(self.list, 1)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(remove)
        left.addLayout(row)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Kind", self.kind)
        form.addRow("Address", self.url)
        form.addRow("Token", self.token)
        form.addRow("", self.enabled)
        where = QLabel(f"Tokens are kept in {secrets.where_tokens_live()}.")
        where.setObjectName("hint")
        where.setWordWrap(True)
        form.addRow("", where)
        form.addRow("", self.test)
        form.addRow("", self.result)
        body = QHBoxLayout()
        body.addLayout(left, 2)
        body.addLayout(form, 3)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.problem = MessageLabel("", most=300)
        layout = QVBoxLayout(self)
        layout.addLayout(body, 1)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)
        self.resize(760, 420)

    # --- the list ----------------------------------------------------------------------------

    def _label(self, server: ServerConfig) -> str:
        state = "" if server.enabled else " (off)"
        return f"{server.name} — {KIND_LABELS.get(server.kind, server.kind).split(' (')[0]}{state}"

    def _refill(self, row: int) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for server in self.servers:
            self.list.addItem(self._label(server))
        self.list.blockSignals(False)
        self.list.setCurrentRow(min(row, len(self.servers) - 1))
        self._show(self.list.currentRow())

    def _show(self, row: int) -> None:
        has = 0 <= row < len(self.servers)
        for widget in (self.name, self.url, self.token, self.kind, self.enabled, self.test):
            widget.setEnabled(has)
        server = self.servers[row] if has else ServerConfig("", "comfyui", "", True)
        for widget, value in ((self.name, server.name), (self.url, server.url),
                              (self.token, self.tokens.get(server.name, ""))):
            widget.blockSignals(True)
            widget.setText(value)
            widget.blockSignals(False)
        self.kind.blockSignals(True)
        self.kind.setCurrentIndex(max(0, self.kind.findData(server.kind)))
        self.kind.blockSignals(False)
        self.enabled.blockSignals(True)
        self.enabled.setChecked(server.enabled)
        self.enabled.blockSignals(False)
        self.result.setText("")

    def _store(self) -> None:
        row = self.list.currentRow()
        if not 0 <= row < len(self.servers):
            return
        old = self.servers[row]
        self.tokens.pop(old.name, None)
        server = replace(old, name=self.name.text().strip(), url=self.url.text().strip(),
                         kind=self.kind.currentData(), enabled=self.enabled.isChecked())
        self.servers[row] = server
        self.tokens[server.name] = self.token.text().strip()
        if old.name != server.name:
            self.forgotten.add(old.name)
        self.list.item(row).setText(self._label(server))

    def add_server(self) -> None:
        taken = {server.name for server in self.servers}
        name = next(f"server-{i}" for i in range(1, 1000) if f"server-{i}" not in taken)
        self.servers.append(ServerConfig(name, "comfyui", "http://127.0.0.1:8188", True))
        self.tokens[name] = ""
        self._refill(len(self.servers) - 1)
        self.name.setFocus()

    def remove_server(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self.servers):
            name = self.servers.pop(row).name
            self.tokens.pop(name, None)
            self.forgotten.add(name)
            self._refill(row)

    # --- Test connection -----------------------------------------------------------------------

    def test_connection(self) -> None:
        row = self.list.currentRow()
        if not 0 <= row < len(self.servers):
            return
        server, token = self.servers[row], self.tokens.get(self.servers[row].name, "")
        probe = self.find_probe(server.kind)
        if probe is None:
            self.result.setText(f"The {KIND_LABELS.get(server.kind, server.kind)} backend is not installed in this "
                                "version of Latent Studio.")
            return
        self._attempt += 1
        attempt = self._attempt
        self.result.setText(f"Asking {server.url}…")
        self.test.setEnabled(False)

        def ask() -> None:
            try:
                self.probed.emit(attempt, probe(server, token), True)
            except Exception as exc:  # noqa: BLE001 - whatever failed is the line shown
                self.probed.emit(attempt, str(exc) or type(exc).__name__, False)

        threading.Thread(target=ask, name="server-probe", daemon=True).start()

    def _on_probed(self, attempt: int, text: str, ok: bool) -> None:
        if attempt != self._attempt:
            return  # an older test's answer
        self.test.setEnabled(True)
        self.result.setText(text if ok else f"Not connected: {text}")

    # --- saving ------------------------------------------------------------------------------

    def problems(self) -> list[str]:
        names = [server.name for server in self.servers]
        found = [f"Two servers are called '{n}'." for n in sorted({n for n in names if names.count(n) > 1})]
        found += ["A server needs a name." for n in names if not n][:1]
        found += [f"{s.name}: the address must start with http:// or https://." for s in self.servers
                  if not s.url.lower().startswith(("http://", "https://"))]
        return found

    def accept(self) -> None:
        problems = self.problems()
        if problems:
            self.problem.setText(" ".join(problems))
            return
        save_servers(self.servers)
        for name in self.forgotten - {server.name for server in self.servers}:
            secrets.set_token(name, "")
        for server in self.servers:
            secrets.set_token(server.name, self.tokens.get(server.name, ""))
        super().accept()
