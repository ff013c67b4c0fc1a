"""The window at half a 1080p screen (960 px) with the Jobs dock: every panel fits, nothing is clipped, and
no message (a long error, a long path) widens the window; the Latent Explorer's map gets the room."""

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QAbstractScrollArea, QApplication, QLabel, QWidget

from studio.app import create_window, tab_list
from studio.core.jobs import Job, JobEvent
from studio.state import JobInfo
from studio.widgets.labels import MessageLabel, breakable
from studio.widgets.progress import JobQueueView
from tests import fakes

HALF_SCREEN = 960
LONG_ERROR = ("RuntimeError: could not load /home/artist/" + "very_long_folder_name_" * 40 + "model.safetensors: "
              + "the header names a tensor that is not there " * 30)


@pytest.fixture
def window(qtbot, tmp_path):
    QApplication.setOrganizationName("LatentStudioTests")
    QApplication.setApplicationName(f"test-{tmp_path.name}")
    QSettings().clear()
    fakes.register_fakes()
    fakes.reset_gate()
    win = create_window(QApplication.instance(), warm_up=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    assert win.queue_dock.isVisible(), "the Jobs dock is shown"
    yield win
    fakes.GATE.release(100)
    win.worker.stop()


def _clipped(root: QWidget) -> list[str]:
    """Visible widgets narrower than they can be drawn (their minimum width exceeds the width they got)."""
    found = []
    for widget in root.findChildren(QWidget):
        if not widget.isVisible() or widget.parentWidget() is None or isinstance(widget.parentWidget(), QAbstractScrollArea):
            continue
        if isinstance(widget, QLabel) and widget.wordWrap():
            continue
        need = max(widget.minimumSizeHint().width(), widget.minimumWidth())
        if need > widget.width() + 1:
            text = widget.text() if isinstance(widget, QLabel) else ""
            found.append(f"{type(widget).__name__} {widget.objectName()!r} {text[:30]!r}: needs {need}, has {widget.width()}")
    return found


@pytest.mark.parametrize("tab", [name for name, _label in tab_list()])  # every tab, new ones too
def test_every_panel_works_at_960_px_with_the_jobs_dock(qtbot, window, tab):
    index = window.tab_names.index(tab)
    window.tabs.setCurrentIndex(index)
    qtbot.wait(20)
    assert window.minimumSizeHint().width() <= HALF_SCREEN, f"{tab}: the window can't be 960 px wide"
    window.resize(HALF_SCREEN, 700)
    qtbot.waitUntil(lambda: window.width() == HALF_SCREEN)
    qtbot.wait(50)
    assert _clipped(window.tabs.currentWidget()) == []


def _emit(state, info: JobInfo) -> None:
    state.jobs[info.job.id] = info
    state.job_changed.emit(info)


def test_a_long_error_wraps_and_never_widens_the_window(qtbot, window):
    window.resize(HALF_SCREEN, 700)
    qtbot.waitUntil(lambda: window.width() == HALF_SCREEN)
    panel = window.panel("image")
    job = Job("image.generate")
    _emit(window.state, JobInfo(job, JobEvent.QUEUED))
    _emit(window.state, JobInfo(job, JobEvent.FAILED, error=LONG_ERROR))
    qtbot.wait(50)
    status = panel.bar.status
    assert status.text().startswith("Failed: RuntimeError")
    assert status.toolTip().endswith(LONG_ERROR.strip()[-40:].strip()) or LONG_ERROR[-40:] in status.toolTip()
    assert status.minimumSizeHint().width() < 300
    assert window.minimumSizeHint().width() <= HALF_SCREEN
    assert window.width() == HALF_SCREEN, "the window grew with the error"
    row = window.queue.rows[job.id] if isinstance(window.queue, JobQueueView) else None
    if row is not None:
        assert row.detail.minimumSizeHint().width() < 300


def test_message_labels_break_long_runs():
    label = MessageLabel("x" * 2000)
    assert label.minimumSizeHint().width() < 300
    assert label.toolTip() == "x" * 2000
    assert len(breakable("word " * 1000)) <= 400
    assert MessageLabel("Ready.").text() == "Ready."


def test_one_drag_of_decodes_leaves_one_row_in_the_jobs_dock(qtbot, window):
    queue = window.queue
    before = len(queue.rows)
    jobs = [Job("latent.decode", supersede_key="latent.decode") for _ in range(33)]
    for index, job in enumerate(jobs):
        _emit(window.state, JobInfo(job, JobEvent.QUEUED))
        if index:  # the newer request replaced the queued one, or the older one finished
            older = jobs[index - 1]
            _emit(window.state, JobInfo(older, JobEvent.SUPERSEDED if index % 2 else JobEvent.FINISHED))
    _emit(window.state, JobInfo(jobs[-1], JobEvent.FINISHED))
    assert len(queue.rows) - before == 1
    assert jobs[-1].id in queue.rows


def test_a_failed_decode_stays_in_the_jobs_dock(qtbot, window):
    first, second = Job("latent.decode", supersede_key="latent.decode"), Job("latent.decode", supersede_key="latent.decode")
    _emit(window.state, JobInfo(first, JobEvent.QUEUED))
    _emit(window.state, JobInfo(first, JobEvent.FAILED, error="out of memory"))
    _emit(window.state, JobInfo(second, JobEvent.QUEUED))
    assert first.id in window.queue.rows and second.id in window.queue.rows


@pytest.mark.parametrize("width", [1024, 1360])
def test_the_latent_map_gets_the_room(qtbot, window, width):
    window.tabs.setCurrentIndex(window.tab_names.index("latent"))
    window.resize(width, 800)
    qtbot.waitUntil(lambda: window.width() == width)
    qtbot.wait(50)
    panel = window.panel("latent")
    # the map gets at least half of what is left beside the control column and the Jobs dock
    assert panel.map.width() >= 0.5 * (width - 250 - panel.findChild(QAbstractScrollArea).width()) - 20
    assert panel.map.width() >= 250


def test_latent_marks_are_visible_at_the_default_zoom(qtbot):
    import numpy as np
    from PIL import Image

    from studio.widgets.latent_map import LatentMapView

    view = LatentMapView()
    qtbot.addWidget(view)
    view.resize(300, 300)
    view.show()
    points = np.random.default_rng(0).normal(size=(50, 2)) * 3
    view.set_map(points, [Image.new("RGB", (64, 64), "red")] * 50, ["x"] * 50)
    for name in ("current", "A", "B"):
        view.mark(name, 0.5, 0.5)
    ring = view.marks["A"][0]
    for name in ("current", "A", "B"):  # 28 px rings were drawn ~7 px wide once the whole map was fitted in
        ring = view.marks[name][0]
        size = ring.deviceTransform(view.viewportTransform()).mapRect(ring.boundingRect()).width()
        assert size >= 24, f"the {name} mark is {size:.0f} px wide on screen"


def test_latent_result_captions_are_not_cut_at_20_characters(qtbot, window):
    from PIL import Image

    panel = window.panel("latent")
    caption = "a red heart with a golden crown, watercolour"
    item = panel._result_item(Image.new("RGB", (64, 64)), caption)
    assert item.text() == caption and item.toolTip() == caption
    assert panel.results.wordWrap()
