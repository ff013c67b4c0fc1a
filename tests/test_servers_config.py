"""Saved servers and their tokens: read back, bad entries skipped, tokens never in the preferences, 0600 on disk."""

from __future__ import annotations

import json
import stat

import pytest

from studio import paths
from studio.core import secrets, servers
from studio.core.servers import ServerConfig


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_STUDIO_HOME", str(tmp_path))
    monkeypatch.setattr(secrets, "_keyring", lambda: None)  # the file store, as on a headless machine
    return tmp_path


def test_servers_round_trip_and_a_bad_entry_is_skipped(home):
    servers.save_servers([ServerConfig("gpu-box", "comfyui", "http://127.0.0.1:8188")])
    saved = json.loads(paths.preferences_path().read_text())
    saved["servers"] += [{"name": "x", "kind": "telnet", "url": "x"}, {"nonsense": 1}, "not even a dict"]
    paths.preferences_path().write_text(json.dumps(saved))
    assert servers.load_servers() == [ServerConfig("gpu-box", "comfyui", "http://127.0.0.1:8188")]


def test_an_unreadable_preferences_file_gives_no_servers(home):
    paths.preferences_path().write_text("{not json")
    assert servers.load_servers() == []


def test_tokens_live_apart_from_the_preferences_in_a_file_only_the_user_reads(home):
    servers.save_servers([ServerConfig("gpu-box", "comfyui", "https://gpu-box:8443")])
    secrets.set_token("gpu-box", "s3cret")
    assert secrets.get_token("gpu-box") == "s3cret"
    assert "s3cret" not in paths.preferences_path().read_text()
    token_file = home / "tokens.json"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    secrets.set_token("gpu-box", "")
    assert secrets.get_token("gpu-box") == ""


def test_saved_servers_are_connected_beside_this_computer(qtbot, home, monkeypatch):
    from PySide6.QtCore import QObject, Signal

    from studio.app import add_servers
    from studio.backends.router import Backends

    class FakeServer(QObject):
        message = Signal(object)

        def __init__(self, config, history) -> None:
            super().__init__()
            self.config, self.started = config, False

        def start(self) -> None:
            self.started = True

        def stop(self) -> None:
            self.started = False

        def available_models(self):
            return []

    class Local(FakeServer):
        def __init__(self) -> None:
            super().__init__(None, None)

    monkeypatch.setitem(servers.KINDS, "fake", f"{__name__}:FakeServer")
    monkeypatch.setitem(globals(), "FakeServer", FakeServer)
    servers.save_servers([ServerConfig("box", "fake", "http://127.0.0.1:1"),
                          ServerConfig("off", "fake", "http://127.0.0.1:2", enabled=False)])
    backends = Backends(Local())
    assert add_servers(backends, history=None) == []
    assert list(backends.remote) == ["box"] and backends.remote["box"].started
    assert backends.remote["box"].config.url == "http://127.0.0.1:1"
