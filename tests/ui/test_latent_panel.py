"""Latent panel with a real worker and a tiny VAE: click decodes; drags are throttled."""

import pytest
from PIL import Image
from PySide6.QtCore import QTimer

from studio.engine.history import History
from studio.engine.jobs import JobEvent
from studio.panels.latent import LatentPanel
from studio.state import State
from studio.widgets.throttle import Throttle
from studio.worker import Worker
from tests.engine.test_latent_tasks import emoji_like
from tests.engine.tiny_models import build_tiny_sd_folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_sd_folder(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture
def panel(qtbot, tmp_path, tiny_model):
    state = State()
    worker = Worker(history=History(tmp_path / "h.sqlite3", tmp_path / "out"), device_override="cpu")
    worker.message.connect(state.handle_message)
    state.submit_requested.connect(worker.submit)
    worker.start()
    widget = LatentPanel(state)
    qtbot.addWidget(widget)
    state.panels["latent"].update({"model": str(tiny_model), "source": "folder", "folder": str(tmp_path / "imgs")})
    (tmp_path / "imgs").mkdir()
    for index in range(12):
        emoji_like(index).save(tmp_path / "imgs" / f"{index}.png")
    yield widget
    worker.stop()


def test_clicking_the_map_decodes_through_the_worker(qtbot, panel):
    with qtbot.waitSignal(panel.state.result_ready, timeout=60000):
        panel.build_map()
    assert len(panel.map.scene().items()) >= 12
    with qtbot.waitSignal(panel.state.result_ready, timeout=60000) as blocker:
        panel.show_point(0.0, 0.0)
    image, _latent = blocker.args[1].value
    assert isinstance(image, Image.Image)
    assert panel.preview.pixmap() is not None and not panel.preview.pixmap().isNull()


def test_hundred_slider_events_in_a_second_cause_at_most_sixty_decodes(qtbot):
    decoded = []
    throttle = Throttle(decoded.append)
    values = iter(range(100))
    ticker = QTimer()
    ticker.setInterval(10)  # 100 events over ~1 s, as a fast drag delivers them

    def send():
        try:
            throttle(next(values))
        except StopIteration:
            ticker.stop()

    ticker.timeout.connect(send)
    ticker.start()
    qtbot.waitUntil(lambda: not ticker.isActive(), timeout=5000)
    qtbot.waitUntil(lambda: decoded and decoded[-1] == 99, timeout=1000)
    assert len(decoded) <= 60
    assert decoded[-1] == 99, "the last slider value is the one shown"


def test_superseded_decodes_are_dropped_not_run(qtbot, panel):
    with qtbot.waitSignal(panel.state.result_ready, timeout=60000):
        panel.build_map()
    events = []
    panel.state.job_changed.connect(lambda info: events.append((info.job.kind, info.status)))
    for step in range(30):  # far faster than a decode: most must be superseded while queued
        panel.show_point(step / 30, 0.0)
    qtbot.waitUntil(lambda: not panel.state.active_jobs(), timeout=60000)
    finished = [e for e in events if e == ("latent.decode", JobEvent.FINISHED)]
    superseded = [e for e in events if e == ("latent.decode", JobEvent.SUPERSEDED)]
    assert len(finished) + len(superseded) == 30 and len(superseded) > 0
