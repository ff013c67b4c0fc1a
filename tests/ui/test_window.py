"""The main window offscreen: five panels, Ctrl+Enter submits, Esc cancels, settings persist."""

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication

from studio.app import MainWindow, create_window
from studio.core.jobs import JobEvent
from studio.core.recipe import Recipe
from tests import fakes


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
    yield win
    fakes.GATE.release(100)
    win.worker.stop()


def test_window_has_the_six_panels(window):
    labels = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert labels == ["Image", "Text", "Music", "Latent Explorer", "Train", "Gallery"]
    assert window.device_label.text()
    assert window.menuBar().actions()[0].text() == "&File"


def test_ctrl_enter_submits_the_current_panel(qtbot, window, monkeypatch):
    from studio import state as state_module

    monkeypatch.setitem(state_module.JOB_KINDS, "image", "fake.image")
    window.tabs.setCurrentIndex(0)
    window.state.image.set("prompt", "a red square")
    submitted = []
    window.state.submit_requested.connect(submitted.append)
    with qtbot.waitSignal(window.state.output_added, timeout=10000) as blocker:
        qtbot.keyClick(window.panel("image").prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert len(submitted) == 1, "one key press, one job"
    artifact = blocker.args[0]
    assert artifact.recipe.prompt == "a red square"
    assert artifact.files[0].exists()
    gallery = window.panel("gallery")
    assert gallery.grid.count() == 1


def test_escape_cancels_the_running_job(qtbot, window, monkeypatch):
    from studio import state as state_module

    monkeypatch.setitem(state_module.JOB_KINDS, "text", "fake.gated")
    window.tabs.setCurrentIndex(1)
    job = window.state.generate("text")
    fakes.GATE.release(1)
    qtbot.waitUntil(lambda: window.state.jobs[job.id].status == JobEvent.PROGRESS, timeout=10000)
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    fakes.GATE.release(1)
    qtbot.waitUntil(lambda: window.state.jobs[job.id].status == JobEvent.CANCELLED, timeout=10000)
    assert window.state.jobs[job.id].progress.step == 1


def test_failed_job_shows_its_message_and_the_app_goes_on(qtbot, window, monkeypatch):
    from studio import state as state_module

    monkeypatch.setitem(state_module.JOB_KINDS, "image", "fake.failing")
    with qtbot.waitSignal(window.state.error_raised, timeout=10000):
        window.panel("image").generate()
    assert "RuntimeError: boom" in window.panel("image").bar.status.text()
    assert window.worker.local.isRunning()


def test_gallery_double_click_restores_the_recipe(qtbot, window):
    recipe = Recipe("text", prompt="Once upon a time", seed=1234, params={"temperature": 0.42, "top_k": 7})
    from studio.core.jobs import Artifact

    window.history.save_artifact(Artifact("text", recipe, " there was a fox."))
    gallery = window.panel("gallery")
    gallery.refresh()
    assert gallery.grid.count() == 1
    gallery.grid.itemDoubleClicked.emit(gallery.grid.item(0))
    assert window.tabs.currentWidget() is window.panel("text")
    assert window.state.text.get("temperature") == 0.42
    assert window.state.text.get("seed") == 1234
    assert window.panel("text").page.toPlainText() == "Once upon a time there was a fox."  # the work, not just its prompt


def test_settings_persist_across_windows(qtbot, window):
    window.state.text.set("temperature", 1.37)
    window.tabs.setCurrentIndex(2)
    window.save_settings()
    again = MainWindow(window.state.__class__(), window.history, window.worker)
    qtbot.addWidget(again)
    again.restore_settings()
    assert again.state.text.get("temperature") == 1.37
    assert again.tabs.currentIndex() == 2


def test_dropping_an_a1111_png_restores_the_image_panel(qtbot, window, tmp_path):
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", "a lighthouse at dusk\nNegative prompt: people\n"
                                "Steps: 31, Sampler: Euler a, CFG scale: 6.5, Seed: 99, Size: 512x768, Hires steps: 4")
    path = tmp_path / "a1111.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    panel = window.panel("image")
    assert panel.load_settings_from(path)
    values = window.state.image
    assert (values.get("prompt"), values.get("negative_prompt")) == ("a lighthouse at dusk", "people")
    assert (values.get("steps"), values.get("guidance"), values.get("scheduler")) == (31, 6.5, "euler_a")
    assert (values.get("width"), values.get("height"), values.get("seed")) == (512, 768, 99)
    assert "Hires steps: 4" in panel.unknown.text()
    assert panel.prompt.toPlainText() == "a lighthouse at dusk"


def test_welcome_shows_once(qtbot, window, monkeypatch):
    from studio.widgets import welcome

    shown = []
    monkeypatch.setattr(welcome.WelcomeDialog, "exec", lambda self: (shown.append(self), self.done(0)))
    window.welcome_if_first_run()
    assert not shown[0].dont_show.isChecked(), "the user ticks 'don't show again'; it is not ticked for them"
    window.welcome_if_first_run()
    assert len(shown) == 2, "dismissed without the tick, it comes back"
    monkeypatch.setattr(welcome.WelcomeDialog, "exec",
                        lambda self: (shown.append(self), self.dont_show.setChecked(True), self.done(0)))
    window.welcome_if_first_run()
    window.welcome_if_first_run()
    assert len(shown) == 3, "dismissed (with 'don't show again' ticked) it does not come back"


def test_uncaught_exception_is_logged_and_shown(qtbot, window, monkeypatch, tmp_path):
    import logging
    import sys

    from studio import crash, paths

    handler = crash.setup_logging()
    dialogs = []
    monkeypatch.setattr(crash.CrashDialog, "exec", lambda self: dialogs.append(self.details.toPlainText()))
    crash.install_excepthook()
    try:
        raise ValueError("a bug in a slot")
    except ValueError:
        sys.excepthook(*sys.exc_info())
    finally:
        sys.excepthook = sys.__excepthook__
        handler.flush()
        logging.getLogger().removeHandler(handler)
    assert dialogs and "ValueError: a bug in a slot" in dialogs[0]
    assert "a bug in a slot" in (paths.logs_dir() / crash.LOG_FILE).read_text()
    assert window.history.count() == 0 and window.history.db_path.exists()


def test_family_tree_shows_parents_under_the_child(qtbot, window):
    from PIL import Image

    from studio.core.jobs import Artifact
    from studio.panels.gallery import FamilyTreeDialog

    a = window.history.save_artifact(Artifact("image", Recipe("image", prompt="mother"), Image.new("RGB", (8, 8))))
    b = window.history.save_artifact(Artifact("image", Recipe("image", prompt="father"), Image.new("RGB", (8, 8))))
    child = window.history.save_artifact(
        Artifact("image", Recipe("image", prompt="child", parents=(a.id, b.id)), Image.new("RGB", (8, 8))))
    dialog = FamilyTreeDialog(window.history, child.id)
    qtbot.addWidget(dialog)
    root = dialog.tree.topLevelItem(0)
    assert "child" in root.text(0)
    assert [root.child(i).text(0).split(" ", 1)[1] for i in range(root.childCount())] == ["mother", "father"]


def test_a_latent_explorer_output_restores_nothing_into_the_image_panel(qtbot, window):
    from studio.core.recipe import Recipe

    window.state.image.update({"prompt": "my lighthouse", "mode": "txt2img"})
    child = Recipe("image", prompt="child 2 of 4", seed=0, params={"operation": "latent.breed", "mutation": 0.3})
    with qtbot.waitSignal(window.state.error_raised) as told:
        window.state.restore(child)
    assert "latent map" in told.args[1]
    assert window.state.image.get("prompt") == "my lighthouse" and window.state.image.get("mode") == "txt2img"
    assert window.tabs.currentWidget() is window.panel("latent")


def test_a_melody_strip_restores_into_the_melodies_tab_even_before_the_explorer_was_opened(qtbot, window):
    from studio.core.recipe import Recipe

    assert "latent" not in window.panels
    strip = Recipe("music", seed=0, model="builtin:melody-vae",
                   params={"operation": "latent.melody_interpolate", "a": {"seed": 3}, "b": {"seed": 4}, "steps": 5})
    window.state.restore(strip)
    latent = window.panel("latent")
    assert window.tabs.currentWidget() is latent and latent.tabs.currentIndex() == 1
    values = window.state.panels["latent"]
    assert values.get("melody_seed_a") == 3 and values.get("melody_steps") == 5


def test_chosen_output_folder_is_shared_with_the_command_line(window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from studio import paths

    chosen = tmp_path / "my renders"
    chosen.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(chosen))
    window.choose_output_folder()
    assert window.history.outputs_dir == chosen
    assert paths.saved_output_folder() == chosen  # what `python -m studio generate` reads
    assert paths.chosen_outputs_dir() == chosen


def test_a_saved_strip_restores_its_exact_ends_and_remakes_the_same_strip(qtbot, window):
    from studio.core.recipe import Recipe

    a = {"latent": [0.5] * 8, "shape": [2, 2, 2]}
    b = {"path": "/pictures/cat.png"}
    strip = Recipe("animation", prompt="lerp interpolation, 5 frames", seed=0,
                   params={"operation": "latent.strip", "a": a, "b": b, "frames": 5, "mode": "lerp", "fps": 4})
    assert "latent" not in window.panels
    window.state.restore(strip)  # before the Explorer was ever opened
    latent = window.panel("latent")
    assert window.tabs.currentWidget() is latent and latent.tabs.currentIndex() == 0
    assert latent.explorer.picks == {"A": a, "B": b}
    values = window.state.panels["latent"]
    assert (values.get("frames"), values.get("mode"), values.get("fps")) == (5, "lerp", 4)
    submitted = []
    window.state.submit_requested.connect(submitted.append)
    latent.explorer.make_strip()
    assert submitted[-1].kind == "latent.strip"
    assert (submitted[-1].args["a"], submitted[-1].args["b"], submitted[-1].args["frames"]) == (a, b, 5)


def test_a_saved_walk_restores_its_key_points_and_a_map_point_strip_still_explains(qtbot, window):
    from studio.core.recipe import Recipe

    points = [{"latent": [float(i)] * 4, "shape": [1, 2, 2]} for i in range(3)]
    walk = Recipe("animation", prompt="latent walk, 36 frames", seed=0,
                  params={"operation": "latent.walk", "points": points, "frames_per_leg": 12, "mode": "slerp"})
    window.state.restore(walk)
    latent = window.panel("latent")
    assert latent.explorer.walk_points == points and window.state.panels["latent"].get("frames") == 12
    on_a_map = Recipe("animation", prompt="slerp interpolation, 8 frames", seed=0,
                      params={"operation": "latent.strip", "a": {"point": [0, 1]}, "b": {"point": [1, 0]}})
    with qtbot.waitSignal(window.state.error_raised) as told:
        window.state.restore(on_a_map)  # map coordinates mean nothing without that map
    assert "latent map" in told.args[1] and latent.explorer.walk_points == points


def test_the_window_adopts_an_orphan_a_kill_left_and_removes_partials_at_start(qtbot, tmp_path):
    """A kill between an output's file and its row leaves an orphan; one mid-write leaves a .partial- file. The next
    start of the window (not only of the CLI) adopts the one into the Gallery and removes the other."""
    from PIL import Image

    from studio import paths
    from studio.core.files import PARTIAL_PREFIX
    from studio.library.export import png_bytes

    day = paths.outputs_dir() / "2026-12-06"
    day.mkdir(parents=True)
    orphan = day / "image-7.png"
    orphan.write_bytes(png_bytes(Image.new("RGB", (8, 8)), Recipe("image", prompt="kept after a kill", seed=7)))
    (day / f"{PARTIAL_PREFIX}half.png").write_bytes(b"half")
    QApplication.setOrganizationName("LatentStudioTests")
    QApplication.setApplicationName(f"test-{tmp_path.name}")
    win = create_window(QApplication.instance(), warm_up=False)
    qtbot.addWidget(win)
    try:
        entries = win.history.search(limit=10)
        assert [e.recipe.prompt for e in entries] == ["kept after a kill"]
        assert not list(day.glob(f"{PARTIAL_PREFIX}*"))
    finally:
        win.worker.stop()
