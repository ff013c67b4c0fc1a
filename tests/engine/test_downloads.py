"""The model manager's downloads, against a stand-in Hub on 127.0.0.1 (tests/hub_server.py): a whole repo, an
interrupted transfer resumed, pause and resume, cancel, checksums, and 'offline' when nothing answers."""

from __future__ import annotations

import threading

import pytest

from studio.core.catalog import resolve
from studio.core.downloads import Download
from tests.engine.conftest import cpu_device
from tests.engine.tiny_models import build_tiny_sd_folder
from tests.hub_server import COMMIT, FakeHub

REPO = "tiny/sd"
UNET = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def repo_files(tmp_path_factory, one_torch_thread):
    folder = build_tiny_sd_folder(tmp_path_factory.mktemp("repo") / "tiny-sd")
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def online(monkeypatch, tmp_path):
    """huggingface_hub allowed out (the suite switches it off), its cache in the test's folder."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    return tmp_path / "hub-cache"


@pytest.fixture
def hub(repo_files, online, monkeypatch):
    with FakeHub({REPO: repo_files}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def _run(download: Download, until=None) -> threading.Event:
    """Start; the event is set when `until(download)` first holds (checked at every progress report)."""
    reached = threading.Event()

    def changed(d):
        if until is not None and until(d):
            reached.set()

    download.start(changed)
    return reached


def test_a_repo_downloads_is_verified_and_loads_offline(hub, online, repo_files, monkeypatch):
    download = Download(REPO, cache_dir=online)
    _run(download)
    assert download.wait(60) and download.state == "done", download.message
    assert download.done == download.total == sum(len(v) for k, v in repo_files.items() if "/" in k or k.endswith(".json"))
    assert "verified" in download.message
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # from here on, nothing goes out
    from studio.engine.image.pipelines import load_image_pipeline

    bundle = load_image_pipeline(resolve(REPO), cpu_device(), hub_cache=online)
    assert bundle.family == "sd1"


def test_an_interrupted_transfer_resumes_where_it_stopped(hub, online):
    hub.drop_once[UNET] = 100_000  # the connection goes after 100 kB of the UNet
    download = Download(REPO, cache_dir=online)
    _run(download)
    assert download.wait(60) and download.state == "done", download.message
    ranges = [r for method, path, r in hub.requests if method == "GET" and path.endswith(UNET)]
    assert ranges == ["", "bytes=100000-"]  # the second request continues the partial file


def test_pause_keeps_the_partial_file_and_resume_continues_it(hub, online, repo_files):
    hub.hold_at[UNET] = 300_000
    download = Download(REPO, cache_dir=online)
    reached = _run(download, until=lambda d: d.state == "downloading" and d.done >= 256 * 1024)
    assert reached.wait(30)
    download.pause()
    hub.release.set()
    assert download.wait(30) and download.state == "paused"
    partial = next((online / "models--tiny--sd" / "blobs").glob("*.partial"))
    kept = partial.stat().st_size
    assert 0 < kept < len(repo_files[UNET]) and "resume" in download.message
    hub.hold_at.clear()
    _run(download)
    assert download.wait(60) and download.state == "done", download.message
    ranges = [r for method, path, r in hub.requests if method == "GET" and path.endswith(UNET)]
    assert ranges[-1] == f"bytes={kept}-"


def test_cancel_removes_the_partial_files(hub, online):
    hub.hold_at[UNET] = 300_000
    download = Download(REPO, cache_dir=online)
    reached = _run(download, until=lambda d: d.done >= 128 * 1024)
    assert reached.wait(30)
    download.cancel()
    hub.release.set()
    assert download.wait(30) and download.state == "cancelled"
    assert not list((online / "models--tiny--sd" / "blobs").glob("*.partial"))


def test_a_checksum_mismatch_is_caught_and_the_file_removed(hub, online):
    hub.corrupt.add(UNET)
    download = Download(REPO, cache_dir=online)
    _run(download)
    assert download.wait(60) and download.state == "damaged"
    assert UNET in download.message
    assert not (online / "models--tiny--sd" / "snapshots" / COMMIT / UNET).exists()


def test_offline_is_said_plainly_with_the_size(repo_files, online, monkeypatch):
    with FakeHub({REPO: repo_files}) as server:
        url = server.url
    monkeypatch.setenv("HF_ENDPOINT", url)  # the server is down: nothing listens there now
    download = Download(REPO, cache_dir=online, size_hint=5_200_000_000)
    _run(download)
    assert download.wait(30) and download.state == "offline"
    assert download.message == "Offline: needs a connection to download, 5.2 GB."
