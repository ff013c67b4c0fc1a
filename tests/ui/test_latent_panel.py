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
    state.explorer.picks = {"A": {"point": [0.0, 0.0]}, "B": {"point": [1.0, 1.0]}}
    submitted = []
    state.submit_requested.connect(submitted.append)
    widget.explorer.breed()
    widget.explorer.breed()
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
    panel.explorer.pick("A")
    _image, z = pushed.args[1].value
    assert not np.allclose(z, plain.args[1].value[1]), "the push moved the latent"
    picked = panel.state.explorer.picks["A"]
    assert np.allclose(np.asarray(picked["latent"]).reshape(picked["shape"]), z)


def test_a_strip_restored_before_the_panel_exists_shows_its_picks_when_it_is_built(qtbot):
    from studio.core.recipe import Recipe
    from studio.state import State

    state = State()  # no worker, no window: the restore lands in state.explorer
    a, b = {"latent": [0.5] * 8, "shape": [2, 2, 2]}, {"path": "/pictures/cat.png"}
    state.restore(Recipe("animation", prompt="lerp interpolation, 5 frames", seed=0,
                         params={"operation": "latent.strip", "a": a, "b": b, "frames": 5, "mode": "lerp"}))
    widget = LatentPanel(state)
    qtbot.addWidget(widget)
    assert widget.explorer is state.explorer and widget.explorer.picks == {"A": a, "B": b}
    assert widget.tabs.currentIndex() == 0 and "A and B are back" in widget.message.text()
    submitted = []
    state.submit_requested.connect(submitted.append)
    widget.explorer.make_strip()  # what the "Strip A→B" button does
    assert (submitted[-1].args["a"], submitted[-1].args["b"], submitted[-1].args["frames"]) == (a, b, 5)
    state.explorer.say("later news")  # the panel keeps following state
    assert widget.message.text() == "later news"


def test_results_taken_by_state_are_drawn_by_the_panel(qtbot):
    from types import SimpleNamespace

    import numpy as np

    from studio.core.jobs import JobEvent, JobMessage, Result
    from studio.state import State

    state = State()
    widget = LatentPanel(state)
    qtbot.addWidget(widget)
    view = SimpleNamespace(points=np.array([[0.0, 0.0], [1.0, 1.0]]), thumbnails=[emoji_like(0), emoji_like(1)],
                           labels=["a", "b"], paths=["a.png", "b.png"], explained=[0.5, 0.25])
    state.panels["latent"].set("source", "dataset")
    job = widget.explorer.build_map()
    state.handle_message(JobMessage(JobEvent.FINISHED, job, result=Result(value=view)))
    assert len(widget.map.scene().items()) >= 2 and "2 images mapped" in widget.message.text()
    submitted = []
    state.submit_requested.connect(submitted.append)
    widget.show_point(0.5, 0.5)
    assert "current" in widget.map.marks
    decode_job = submitted[-1]
    assert decode_job.kind == "latent.decode"
    state.handle_message(JobMessage(JobEvent.FINISHED, decode_job,
                                    result=Result(value=(emoji_like(2), np.zeros((2, 2, 2), np.float32)))))
    assert widget.preview.pixmap() is not None and not widget.preview.pixmap().isNull()
    widget.explorer.pick("A")
    assert "A" in widget.map.marks
