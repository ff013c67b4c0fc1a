"""Settings › Servers and what only the stand-in can show: Test connection's report, tokens, TLS verification, and
that nothing leaves the machine beyond what a job needs."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from studio.backends.comfyui import ComfyUIBackend
from studio.core import secrets
from studio.core.jobs import JobEvent
from studio.core.servers import ServerConfig, load_servers
from studio.widgets.servers_dialog import ServersDialog
from tests.comfyui.conftest import image_recipe, run
from tests.comfyui.harness import target

double_only = pytest.mark.skipif(target() != "double", reason="uses the stand-in's token and request log")


def test_test_connection_reports_version_device_memory_and_models(servers):
    server = servers("s1")
    report = ComfyUIBackend.probe(ServerConfig("s1", "comfyui", server.url), "")
    assert report.startswith("ComfyUI ") and "Device: " in report and "GiB free of" in report
    assert "checkpoints" in report and "1 LoRA," in report


def test_a_dead_address_is_one_line_saying_so():
    with pytest.raises(ConnectionError, match="cannot connect"):
        ComfyUIBackend.probe(ServerConfig("gone", "comfyui", "http://127.0.0.1:9"), "")


@double_only
def test_the_token_is_sent_as_a_bearer_header(qtbot, servers, connect):
    server = servers("s1", token="s3cret")
    config = ServerConfig("locked", "comfyui", server.url)
    with pytest.raises(ConnectionError, match="refused the token"):
        ComfyUIBackend.probe(config, "")
    assert "ComfyUI" in ComfyUIBackend.probe(config, "s3cret")
    backend = connect("locked", server, token="s3cret")
    job = run(qtbot, backend, connect.watch, image_recipe(backend))
    assert connect.watch.last(job).event == JobEvent.FINISHED


@double_only
def test_nothing_is_sent_beyond_what_the_job_needs(qtbot, servers, connect, tmp_path, history):
    server = servers("s1")
    backend = connect("gpu-box", server)
    secret_folder = tmp_path / "my private pictures"
    secret_folder.mkdir()
    from PIL import Image

    Image.new("RGB", (64, 64), (1, 2, 3)).save(secret_folder / "holiday.png")
    job = run(qtbot, backend, connect.watch, image_recipe(backend, mode="img2img",
                                                          init_image=str(secret_folder / "holiday.png")))
    assert connect.watch.last(job).event == JobEvent.FINISHED
    log = (server.base / "server.log").read_text()  # the stand-in has no request log route: read its uploads
    uploads = sorted(p.name for p in (server.base / "input").iterdir())
    assert uploads and all(name.startswith("latent-studio-") for name in uploads)
    posted = json.loads(next(p for p in _prompts(server)))
    text = json.dumps(posted)
    assert "holiday" not in text and "private" not in text and str(history.outputs_dir) not in text
    assert "studio_recipe" not in text and "Traceback" not in log


def _prompts(server):
    """The stand-in's /history: what it was asked to run (its prompt as posted)."""
    import urllib.request

    with urllib.request.urlopen(server.url + "/history", timeout=10) as reply:
        history = json.loads(reply.read())
    return [json.dumps({"prompt": item["prompt"][2], "extra_data": item["prompt"][3]}) for item in history.values()]


@double_only
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_an_untrusted_tls_certificate_is_refused(servers, tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    server = servers("tls", tls=(cert, key))
    with pytest.raises(ConnectionError, match="certificate could not be verified"):
        ComfyUIBackend.probe(ServerConfig("tls", "comfyui", server.url.replace("http://", "https://")), "")


def test_servers_dialog_adds_edits_tests_and_saves(qtbot, servers, monkeypatch):
    server = servers("s1")
    kept = {}
    monkeypatch.setattr(secrets, "set_token", lambda name, token: kept.__setitem__(name, token))
    monkeypatch.setattr(secrets, "get_token", lambda name: kept.get(name, ""))
    probes = {"comfyui": ComfyUIBackend.probe, "openai": None}
    dialog = ServersDialog([], probes.get)
    qtbot.addWidget(dialog)
    dialog.add_server()
    dialog.name.setText("gpu-box")
    dialog.name.textEdited.emit("gpu-box")
    dialog.url.setText(server.url)
    dialog.url.textEdited.emit(server.url)
    dialog.token.setText("tok")
    dialog.token.textEdited.emit("tok")
    dialog.test.click()
    qtbot.waitUntil(lambda: dialog.result.text().startswith(("ComfyUI", "Not connected")), timeout=30_000)
    assert dialog.result.text().startswith("ComfyUI"), dialog.result.text()
    dialog.add_server()
    dialog.kind.setCurrentIndex(dialog.kind.findData("openai"))
    dialog.test.click()
    assert "not installed" in dialog.result.text()
    dialog.url.setText("ftp://nowhere")
    dialog.url.textEdited.emit("ftp://nowhere")
    dialog.accept()
    assert "must start with http" in dialog.problem.text() and load_servers() == []
    dialog.remove_server()
    dialog.accept()
    saved = load_servers()
    assert [(s.name, s.kind, s.url, s.enabled) for s in saved] == [("gpu-box", "comfyui", server.url, True)]
    assert kept["gpu-box"] == "tok" and "tok" not in json.dumps([s.__dict__ for s in saved])


def test_a_job_a_server_cannot_run_fails_at_once_saying_where_it_can(qtbot, servers, connect):
    from studio.core.jobs import Job

    backend = connect("gpu-box", servers("s1"))
    plot = backend.submit(Job("image.xy_plot", image_recipe(backend)))
    assert connect.watch.last(plot).event == JobEvent.FAILED and "this computer" in connect.watch.last(plot).error
    lacking = backend.submit(Job("image.generate", image_recipe(backend, model="not-there.safetensors")))
    assert connect.watch.last(lacking).event == JobEvent.FAILED
    assert "gpu-box has no checkpoint 'not-there.safetensors'" in connect.watch.last(lacking).error


def test_the_app_finds_each_kinds_test_connection():
    from studio.app import find_probe

    assert find_probe("comfyui") == ComfyUIBackend.probe
    assert find_probe("no-such-kind") is None
