"""Latent panel with a real worker and a tiny VAE: click decodes; drags are throttled."""

import pytest
from PIL import Image
from PySide6.QtCore import QElapsedTimer, QTimer

from studio.core.jobs import JobEvent
from studio.panels.latent import LatentPanel
from studio.widgets.throttle import FRAME_MS, Throttle
from tests.engine.test_latent_tasks import emoji_like
from tests.engine.tiny_models import build_tiny_sd_folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_sd_folder(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture
def panel(qtbot, tmp_path, tiny_model, live_state):
    state = live_state
    widget = LatentPanel(state)
    qtbot.addWidget(widget)
    state.panels["latent"].update({"model": str(tiny_model), "source": "folder", "folder": str(tmp_path / "imgs")})
    (tmp_path / "imgs").mkdir()
    for index in range(12):
        emoji_like(index).save(tmp_path / "imgs" / f"{index}.png")
    yield widget


def test_clicking_the_map_decodes_through_the_worker(qtbot, panel):
    with qtbot.waitSignal(panel.state.result_ready, timeout=60000):
        panel.build_map()
    assert len(panel.map.scene().items()) >= 12
    with qtbot.waitSignal(panel.state.result_ready, timeout=60000) as blocker:
        panel.show_point(0.0, 0.0)
    image, _latent = blocker.args[1].value
    assert isinstance(image, Image.Image)
    assert panel.preview.pixmap() is not None and not panel.preview.pixmap().isNull()


def test_hundred_slider_events_are_throttled_to_one_decode_per_frame(qtbot):
    decoded, stamps = [], []
    clock = QElapsedTimer()
    clock.start()

    def decode(value):
        decoded.append(value)
        stamps.append(clock.nsecsElapsed() / 1e6)

    throttle = Throttle(decode)
    values = iter(range(100))
    ticker = QTimer()
    ticker.setInterval(10)  # 100 events over ~1 s, as a fast drag delivers them

    sent = []

    def send():
        try:
            value = next(values)
        except StopIteration:
            ticker.stop()
            return
        sent.append(clock.nsecsElapsed() / 1e6)
        throttle(value)

    ticker.timeout.connect(send)
    ticker.start()
    qtbot.waitUntil(lambda: not ticker.isActive(), timeout=5000)
    qtbot.waitUntil(lambda: decoded and decoded[-1] == 99, timeout=1000)
    gaps = [later - earlier for earlier, later in zip(stamps, stamps[1:], strict=False)]
    assert min(gaps) >= FRAME_MS - 1, "two decodes closer than one frame"
    assert len(decoded) <= (stamps[-1] - stamps[0]) / FRAME_MS + 1
    if sent[-1] - sent[0] <= 1000:  # the events came within one second (a loaded machine may stretch them)
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


def test_breeding_the_same_parents_twice_draws_new_children(qtbot):
    from studio.state import State

    state = State()  # no worker: only what the panel submits is looked at
    widget = LatentPanel(state)
    qtbot.addWidget(widget)
    widget.picks = {"A": {"point": [0.0, 0.0]}, "B": {"point": [1.0, 1.0]}}
    submitted = []
    state.submit_requested.connect(submitted.append)
    widget.breed()
    widget.breed()
    assert [job.kind for job in submitted] == ["latent.breed", "latent.breed"]
    assert submitted[0].args["seed"] != submitted[1].args["seed"]


def test_set_a_takes_the_picture_on_show_attribute_push_included(qtbot, panel):
    import numpy as np

    with qtbot.waitSignal(panel.state.result_ready, timeout=60000):
        panel.build_map()
    panel.values.update({"attribute": "3", "attribute_amount": 0.0})
    with qtbot.waitSignal(panel.state.result_ready, timeout=60000) as plain:
        panel.show_point(0.0, 0.0)
    with qtbot.waitSignal(panel.state.result_ready, timeout=60000) as pushed:
        panel.values.set("attribute_amount", 1.5)  # the slider: the same point, pushed along "3"
        panel._request_decode(None)
    panel.pick("A")
    _image, z = pushed.args[1].value
    assert not np.allclose(z, plain.args[1].value[1]), "the push moved the latent"
    assert np.allclose(np.asarray(panel.picks["A"]["latent"]).reshape(panel.picks["A"]["shape"]), z)
