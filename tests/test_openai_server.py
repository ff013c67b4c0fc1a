"""The OpenAI-compatible text backend against a REAL llama.cpp server (llama-cpp-python[server]) that each test
starts on 127.0.0.1 with the built-in GGUF, wired into a State and a Text panel exactly as the app wires them.

No sleeps: the server is ready when it prints Uvicorn's "running on" line; jobs are waited for by their signals.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading

import pytest

pytest.importorskip("llama_cpp.server")

from PySide6.QtCore import Qt  # noqa: E402

from studio import paths  # noqa: E402
from studio.app import connect_backend  # noqa: E402
from studio.backends.openai_text import OpenAITextBackend  # noqa: E402
from studio.backends.router import Backends  # noqa: E402
from studio.backends.thread import ThreadEngine  # noqa: E402
from studio.core.jobs import JobEvent, UserError  # noqa: E402
from studio.core.servers import ServerConfig  # noqa: E402
from studio.library.history import History  # noqa: E402
from studio.panels.text import TextPanel  # noqa: E402
from studio.state import State  # noqa: E402
from studio.widgets.model_picker import ModelPicker  # noqa: E402

GGUF = paths.builtin_model_dir("text-gpt") / "text-gpt.gguf"
MODEL = str(GGUF)  # llama-cpp-python names its model by the path it was given
SERVER = "local-llama"
PROMPT = "A hacker is"  # the built-in writes 64 tokens on from here without ending its entry (greedy)
STARTUP_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LlamaServer:
    """`python -m llama_cpp.server` on a free port, ready once it says so on stderr."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", MODEL, "--host", "127.0.0.1", "--port",
             str(self.port), "--n_ctx", "256", "--n_threads", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._wait_until_ready()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.put(line)
        self.lines.put("")  # the stream ended: the process is gone

    def _wait_until_ready(self) -> None:
        seen = []
        while True:
            line = self.lines.get(timeout=STARTUP_TIMEOUT_S)
            seen.append(line)
            if "Uvicorn running on" in line:
                return
            if line == "":
                raise RuntimeError("the llama.cpp server ended before it was ready:\n" + "".join(seen[-20:]))

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def server():
    running = LlamaServer()
    yield running
    running.stop()


@pytest.fixture
def app(qtbot, tmp_path, server):
    """State, Text panel and backends (this computer on a thread + the server), wired as the app wires them."""
    history = History(tmp_path / "h.sqlite3", tmp_path / "out")
    state = State()
    backends = Backends(ThreadEngine(history=history, device_override="cpu"))
    connect_backend(state, backends)
    remote = OpenAITextBackend(ServerConfig(SERVER, "openai", server.url), history, token="")
    with qtbot.waitSignal(backends.models_changed, timeout=30_000,
                          check_params_cb=lambda *a: bool(remote.available_models())):
        backends.start()
        backends.add(SERVER, remote)
    panel = TextPanel(state, history)
    qtbot.addWidget(panel)
    state.text.update({"backend": SERVER, "model": MODEL, "prompt": PROMPT, "max_new_tokens": 64,
                       "repetition_penalty": 1.0, "seed": 5})
    yield state, panel, remote, history
    backends.stop()


def finish(qtbot, state, action, timeout=60_000):
    jobs = []
    state.submit_requested.connect(jobs.append)
    action()
    state.submit_requested.disconnect(jobs.append)
    with qtbot.waitSignal(state.job_changed, timeout=timeout,
                          check_params_cb=lambda info: info.job.id == jobs[0].id and not info.active) as blocker:
        pass
    return blocker.args[0]


def generate(qtbot, state, panel, **values):
    """One generation from PROMPT (Generate continues the page: the page is reset first)."""
    state.text.update({"prompt": PROMPT, **values})
    outputs = []
    state.output_added.connect(outputs.append)
    info = finish(qtbot, state, panel.generate)
    state.output_added.disconnect(outputs.append)
    assert info.status == JobEvent.FINISHED, info.error
    return outputs[-1]


def test_the_panels_picker_lists_the_servers_model_and_says_what_it_accepts(app):
    state, panel, remote, _ = app
    listed = [m for m in state.backend_models.for_medium("text") if m.where == SERVER]
    assert [m.ref for m in listed] == [MODEL]
    picker = panel.findChild(ModelPicker).combo
    assert picker.currentText() == f"{MODEL} — on {SERVER}"
    unsupported = dict(listed[0].unsupported)
    assert "typical_p" in unsupported and "dry_multiplier" in unsupported  # llama-cpp-python has neither
    assert "min_p" not in unsupported and "top_k" not in unsupported and "seed" not in unsupported
    assert not panel.controls["dry_multiplier"].isEnabled() and "openapi.json" in panel.controls["typical_p"].toolTip()
    assert panel.controls["min_p"].isEnabled()
    summary = OpenAITextBackend.probe(ServerConfig(SERVER, "openai", remote.config.url), "")
    assert summary.startswith("llama-cpp-python") and "min_p" in summary and "not " in summary


def test_it_streams_and_applies_min_p_top_k_and_the_seed(qtbot, app, tmp_path):
    state, panel, _, _ = app
    previews = []
    state.preview_changed.connect(lambda medium, progress: previews.append(progress.preview))
    top_k_1 = generate(qtbot, state, panel, temperature=1.5, top_k=1, min_p=0.0, top_p=1.0)
    assert len(previews) > 10 and all(b.startswith(a) for a, b in zip(previews, previews[1:], strict=False))
    assert top_k_1.payload == previews[-1] and top_k_1.files and top_k_1.entry_id is not None  # saved here
    assert top_k_1.recipe.param("backend") == SERVER and top_k_1.recipe.seed == 5
    min_p_1 = generate(qtbot, state, panel, temperature=1.5, top_k=0, min_p=1.0)
    # Both filters leave only the likeliest token: the same text as our own greedy run on the same GGUF.
    state.text.update({"backend": "", "model": "builtin:text-gpt"})
    ours = generate(qtbot, state, panel, greedy=True, runtime="llama.cpp", temperature=0.8)
    assert top_k_1.payload == min_p_1.payload == ours.payload and len(ours.payload) > 40
    state.text.update({"backend": SERVER, "model": MODEL, "greedy": False})
    hot = generate(qtbot, state, panel, temperature=1.5, top_k=0, min_p=0.0, seed=5)
    again = generate(qtbot, state, panel, temperature=1.5, top_k=0, min_p=0.0, seed=5)
    other = generate(qtbot, state, panel, temperature=1.5, top_k=0, min_p=0.0, seed=6)
    assert hot.payload == again.payload != other.payload and hot.payload != top_k_1.payload


def test_logprobs_reach_the_token_inspector(qtbot, app):
    state, panel, _, _ = app
    artifact = generate(qtbot, state, panel, inspect=True, temperature=1.0, top_k=0, min_p=0.0)
    tokens = artifact.info["inspector"]
    assert len(tokens) >= 10 and all(len(t["before"]) == 10 for t in tokens)
    assert "".join(artifact.payload[t["start"]:t["end"]] for t in tokens) == artifact.payload
    chosen = tokens[3]
    odds = [c["p"] for c in chosen["before"]]
    assert odds == sorted(odds, reverse=True) and 0 < sum(odds) <= 1.0001 and odds[0] > 0
    cursor = panel.page.textCursor()
    cursor.setPosition(len(PROMPT) + chosen["start"])
    panel.page.setTextCursor(cursor)
    shown = panel.inspector.toPlainText()
    assert chosen["before"][0]["token"].strip() in shown and "%" in shown


def test_cancel_stops_within_one_token_and_the_server_goes_on(qtbot, app):
    state, panel, remote, _ = app
    progress_after_cancel = []
    cancelled = threading.Event()

    def on_message(message):  # runs on the backend's thread, between two streamed tokens
        if message.event == JobEvent.PROGRESS:
            if cancelled.is_set():
                progress_after_cancel.append(message)
            else:
                remote.cancel(message.job_id)
                cancelled.set()

    remote.message.connect(on_message, Qt.ConnectionType.DirectConnection)
    info = finish(qtbot, state, panel.generate)
    remote.message.disconnect(on_message)
    assert info.status == JobEvent.CANCELLED and cancelled.is_set()
    assert len(progress_after_cancel) <= 1
    assert panel.page.toPlainText().startswith(PROMPT) and len(panel.page.toPlainText()) > len(PROMPT)
    assert generate(qtbot, state, panel).payload  # the server still answers


def test_a_server_killed_mid_stream_is_reported_and_the_partial_text_kept(qtbot, app, server):
    state, panel, remote, history = app
    killed = threading.Event()

    def on_message(message):  # on the backend's thread, after the first streamed token
        if message.event == JobEvent.PROGRESS and not killed.is_set():
            server.kill()
            killed.set()

    remote.message.connect(on_message, Qt.ConnectionType.DirectConnection)
    state.text.update({"max_new_tokens": 240, "temperature": 1.0, "top_k": 0})
    outputs = []
    state.output_added.connect(outputs.append)
    info = finish(qtbot, state, panel.generate)
    assert killed.is_set() and info.status == JobEvent.FAILED
    assert f"The server {SERVER} went away after" in info.error and "The text so far is kept" in info.error
    partial = outputs[-1].payload
    assert partial and panel.page.toPlainText() == PROMPT + partial  # on the page, and the page is the prompt now
    assert state.text.get("prompt") == PROMPT + partial
    saved = history.get(outputs[-1].entry_id)
    assert saved is not None and saved.files[0].read_text(encoding="utf-8").rstrip().endswith(partial.rstrip())
    info = finish(qtbot, state, panel.generate)  # the next job says clearly that the server is gone
    assert info.status == JobEvent.FAILED and "can't be reached" in info.error


def test_probe_says_in_one_line_why_a_server_cannot_be_used():
    port = free_port()  # nothing listens there
    with pytest.raises(UserError, match="can't be reached"):
        OpenAITextBackend.probe(ServerConfig("nowhere", "openai", f"http://127.0.0.1:{port}"), "")
