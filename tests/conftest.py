import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_user_data(tmp_path, monkeypatch):
    """Every test gets its own user-data and cache folders: no test touches the real history."""
    monkeypatch.setenv("LATENT_STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LATENT_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Windows built by tests run their jobs on a thread of the test process, where the scripted fakes
    # (tests/fakes.py) and their in-process gates live; tests/test_engine_process.py drives the engine process.
    monkeypatch.setenv("LATENT_STUDIO_ENGINE", "thread")
    yield
