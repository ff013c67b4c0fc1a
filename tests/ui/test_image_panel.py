"""Image panel widgets alone: mask painting writes a mask file into state; restore fills the panel."""

from PIL import Image
from PySide6.QtCore import QPoint, Qt

from studio.panels.image import ImagePanel
from studio.state import State


def test_painting_a_mask_sets_mask_image_and_inpaint_mode(qtbot, tmp_path):
    state = State()
    panel = ImagePanel(state)
    qtbot.addWidget(panel)
    panel.resize(1000, 700)
    panel.show()
    source = tmp_path / "input.png"
    Image.new("RGB", (64, 64), "blue").save(source)
    state.image.set("init_image", str(source))
    assert panel.stage.currentWidget() is panel.inputs and panel.inputs.currentWidget() is panel.mask
    canvas = panel.mask.canvas
    centre = canvas.rect().center()
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=centre)
    qtbot.mouseMove(canvas, centre + QPoint(20, 0))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=centre + QPoint(20, 0))
    mask_path = state.image.get("mask_image")
    assert mask_path and state.image.get("mode") == "inpaint"
    with Image.open(mask_path) as mask:
        assert mask.size == (64, 64)
        white = sum(1 for p in mask.convert("L").getdata() if p > 127)
    assert 0 < white < 64 * 64
    canvas.invert()
    with Image.open(state.image.get("mask_image")) as inverted:
        assert sum(1 for p in inverted.convert("L").getdata() if p > 127) == 64 * 64 - white


def test_sliders_follow_a_restored_recipe(qtbot):
    from studio.core.recipe import Recipe

    state = State()
    panel = ImagePanel(state)
    qtbot.addWidget(panel)
    state.restore(Recipe("image", prompt="cat", seed=5, params={"steps": 33, "guidance": 2.5, "scheduler": "euler_a"}))
    sliders = {w.name: w for w in panel.findChildren(__import__("studio.widgets.controls", fromlist=["ParamSlider"]).ParamSlider)}
    assert sliders["steps"].box.value() == 33 and sliders["guidance"].box.value() == 2.5
    assert panel.prompt.toPlainText() == "cat"


def test_typing_a_prompt_and_ctrl_enter_makes_a_gallery_entry(qtbot, tmp_path):
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from studio.app import create_window
    from tests.engine.tiny_models import build_tiny_sd_folder

    QApplication.setOrganizationName("LatentStudioTests")
    QApplication.setApplicationName(f"image-{tmp_path.name}")
    QSettings().clear()
    model = build_tiny_sd_folder(tmp_path / "tiny-sd")
    window = create_window(QApplication.instance(), warm_up=False)
    qtbot.addWidget(window)
    window.show()
    try:
        panel = window.panel("image")
        window.state.image.update({"model": str(model), "steps": 2, "width": 32, "height": 32})
        panel.prompt.setFocus()
        qtbot.keyClicks(panel.prompt, "a tiny test")
        previews = []
        window.state.preview_changed.connect(lambda modality, progress: previews.append(progress.step))
        with qtbot.waitSignal(window.state.output_added, timeout=120000) as blocker:
            qtbot.keyClick(panel.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        artifact = blocker.args[0]
        assert artifact.recipe.prompt == "a tiny test" and artifact.recipe.model_hash
        assert previews == [1, 2], "one preview per step"
        assert panel.view.pixmap() is not None
        gallery = window.panel("gallery")
        assert gallery.grid.count() == 1

        with qtbot.waitSignal(window.state.output_added, timeout=120000) as blocker:
            panel.xy["x"][1].setText("1, 2")
            panel.xy["y"][0].setCurrentText("seed")
            panel.xy["y"][1].setText("1, 2, 3")
            panel.render_xy_plot()
        grid = blocker.args[0].payload
        assert grid.width >= 2 * 32 and grid.height >= 3 * 32
    finally:
        window.worker.stop()


def test_recent_prompts_come_from_the_history_newest_first_without_explorer_outputs(qtbot, tmp_path):
    from studio.core.jobs import Artifact
    from studio.core.recipe import Recipe
    from studio.library.history import History

    history = History(tmp_path / "h.sqlite3", tmp_path / "out")
    picture = Image.new("RGB", (8, 8), "red")
    for prompt, negative, params in [("red heart", "blurry", {}), ("cat face", "", {}), ("red heart", "blurry", {}),
                                     ("child 1 of 4", "", {"operation": "latent.breed"})]:
        history.save_artifact(Artifact("image", Recipe("image", prompt=prompt, negative_prompt=negative, params=params),
                                       picture))
    history.save_artifact(Artifact("text", Recipe("text", prompt="a text prompt"), "some text"))
    state = State()
    panel = ImagePanel(state)
    qtbot.addWidget(panel)
    choices = panel.recent_prompts(history)
    assert choices == [{"prompt": "red heart", "negative_prompt": "blurry"}, {"prompt": "cat face", "negative_prompt": ""}]
    assert history.recent_prompts("image", limit=1) == [("red heart", "blurry")]

    panel.recent.provider = lambda: choices
    panel.recent.fill()
    actions = panel.recent.menu().actions()
    assert [a.text() for a in actions][1] == "cat face"
    actions[0].trigger()
    assert (state.image.get("prompt"), state.image.get("negative_prompt")) == ("red heart", "blurry")
    assert panel.prompt.toPlainText() == "red heart"


def test_the_control_column_opens_at_its_minimum_and_nothing_in_it_is_clipped(qtbot):
    from studio.widgets.controls import ColumnSplitter

    panel = ImagePanel(State())
    qtbot.addWidget(panel)
    panel.resize(1200, 800)
    panel.show()
    qtbot.waitExposed(panel)
    splitter = panel.findChild(ColumnSplitter)
    column, canvas = splitter.widget(0), splitter.widget(1)
    assert column.width() == column.minimumSizeHint().width()
    assert canvas.width() > column.width()  # the picture gets the rest
    assert column.widget().width() <= column.viewport().width()  # no row runs under the right edge
    splitter.setSizes([1, 5000])  # dragging the handle far left stops at the minimum
    assert splitter.sizes()[0] == column.minimumSizeHint().width()


def test_a_restore_resets_what_the_recipe_leaves_out_and_keeps_a_model_that_is_not_here(qtbot, tmp_path):
    from studio.core.recipe import parse_a1111_parameters

    state = State()
    panel = ImagePanel(state)
    qtbot.addWidget(panel)
    source = tmp_path / "old.png"
    Image.new("RGB", (64, 64), "blue").save(source)
    state.image.update({"variation_strength": 0.6, "batch_count": 4, "mode": "inpaint", "init_image": str(source)})
    told = []
    state.error_raised.connect(lambda modality, text: told.append(text))
    a1111 = parse_a1111_parameters("a lighthouse\nNegative prompt: people\n"
                                   "Steps: 12, Sampler: Euler a, CFG scale: 6, Seed: 7, Size: 64x64, "
                                   "Model: dreamshaper_8, Clip skip: 2")
    state.restore(a1111.recipe)
    assert state.image.get("model") == "builtin:emoji-ldm" and "dreamshaper_8" in told[0]
    assert state.image.get("clip_skip") == 2 and state.image.get("steps") == 12
    assert (state.image.get("variation_strength"), state.image.get("batch_count"), state.image.get("mode"),
            state.image.get("init_image")) == (0.0, 1, "txt2img", ""), "left-overs would change the picture"


def test_a_new_input_image_drops_the_old_mask_and_a_restored_mask_is_shown(qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from studio.core.recipe import Recipe

    state = State()
    panel = ImagePanel(state)
    qtbot.addWidget(panel)
    first, second, mask = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "mask.png"
    Image.new("RGB", (64, 64), "blue").save(first)
    Image.new("RGB", (64, 64), "red").save(second)
    Image.new("L", (64, 64), 255).save(mask)
    state.restore(Recipe("image", prompt="x", seed=1, params={"mode": "inpaint", "init_image": str(first),
                                                             "mask_image": str(mask)}))
    assert panel.mask.canvas.coverage() == 1.0  # the canvas shows the mask the recipe used
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(second), ""))
    panel._open_init_image()
    assert state.image.get("init_image") == str(second) and state.image.get("mask_image") == ""
    assert panel.mask.canvas.coverage() == 0.0


def test_what_the_engine_fell_back_to_or_ignored_is_shown_under_the_picture(qtbot):
    from studio.core.jobs import Artifact
    from studio.core.recipe import Recipe

    state = State()
    panel = ImagePanel(state)
    qtbot.addWidget(panel)
    info = {"fallbacks": ["VAE decoded in float32 (the float16 decode gave NaNs)"],
            "notes": ["Variation seeds apply to text-to-image and full-strength inpainting; ignored here."]}
    state.output_added.emit(Artifact("image", Recipe("image", prompt="x", seed=1, params={"steps": 4}),
                                     Image.new("RGB", (32, 32)), info=info))
    assert "float32" in panel.caption.text() and "ignored here" in panel.caption.text()


def test_an_xy_plot_caption_names_its_axes_not_one_value_of_them(qtbot):
    from studio.core.jobs import Artifact
    from studio.core.recipe import Recipe

    state = State()
    panel = ImagePanel(state)
    qtbot.addWidget(panel)
    plot = {"x_param": "steps", "x_values": [5, 10], "y_param": "guidance", "y_values": [3, 7]}
    state.output_added.emit(Artifact("image", Recipe("image", prompt="x", seed=4, params={"steps": 10, "xy_plot": plot}),
                                     Image.new("RGB", (32, 32))))
    assert "steps × guidance" in panel.caption.text() and "10 steps" not in panel.caption.text()


def test_drawing_in_translate_mode_saves_the_sketch_as_the_input_and_live_draws_from_it(qtbot, monkeypatch):
    from studio.core.jobs import Job

    state = State()
    panel = ImagePanel(state)
    qtbot.addWidget(panel)
    panel.resize(1000, 700)
    panel.show()
    state.image.set("mode", "translate")
    assert panel.stage.currentWidget() is panel.inputs and panel.inputs.currentWidget() is panel.sketch
    assert panel.stage.tabText(1) == "Sketch"
    assert all(widget.isHidden() for widget in panel.denoising)  # one pass: no steps, guidance or sampler
    blank = state.image.get("init_image")
    with Image.open(blank) as paper:
        assert paper.convert("L").getextrema() == (255, 255)  # empty paper: white
    canvas = panel.sketch.canvas
    centre = canvas.rect().center()
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=centre)
    qtbot.mouseMove(canvas, centre + QPoint(40, 0))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=centre + QPoint(40, 0))
    drawn = state.image.get("init_image")
    assert drawn != blank and panel.inputs.currentWidget() is panel.sketch  # a new file; the Sketch tab stays
    with Image.open(drawn) as sketch:
        dark = sum(1 for p in sketch.convert("L").getdata() if p < 128)
    assert 0 < dark < sketch.width * sketch.height // 10  # a line, not a filled page
    submitted: list[Job] = []
    monkeypatch.setattr(state, "submit", lambda job: submitted.append(job) or job)
    state.image.set("prompt", "")  # Translate needs no words: the drawing is the input
    state.live.set_enabled(True)
    (job,) = submitted
    assert job.recipe.param("mode") == "translate" and job.recipe.param("init_image") == drawn and not job.save


def test_a_live_picture_is_shown_but_not_added_to_the_results(qtbot):
    from studio.core.jobs import Artifact, Job, JobEvent, JobMessage, Result
    from studio.core.recipe import Recipe
    from studio.state.live import LIVE_KEY

    state = State()
    panel = ImagePanel(state)
    qtbot.addWidget(panel)
    recipe = Recipe("image", prompt="a red heart", seed=7, params={"steps": 4})
    job = Job("image.generate", recipe, save=False, supersede_key=LIVE_KEY)
    state.handle_message(JobMessage(JobEvent.QUEUED, job))
    picture = Image.new("RGB", (32, 32), "red")
    state.handle_message(JobMessage(JobEvent.FINISHED, job, result=Result([Artifact("image", recipe, picture)])))
    assert "Live" in panel.caption.text() and "not saved" in panel.caption.text()
    assert panel.results.isHidden()  # the strip holds what was made and saved, not every live frame


def test_the_sampler_list_is_the_engines_and_shows_what_the_picked_model_can_use(qtbot, monkeypatch):
    from studio.engine.image.schedulers import SCHEDULERS as ENGINE_TABLE
    from studio.widgets import model_fit

    fits = {"sd-file": ("sd1", {}), "flux-file": ("flux_dev", {}), "lcm-folder": ("", {"scheduler": "lcm"})}
    monkeypatch.setattr(model_fit, "model_fit", lambda ref, library=None: fits.get(ref, ("", {})))
    state = State()
    panel = ImagePanel(state)
    qtbot.addWidget(panel)
    combo = next(c for c in panel.findChildren(type(panel.model.combo)) if c.findData("dpmpp_2m") >= 0)
    assert [combo.itemData(i) for i in range(combo.count())] == list(ENGINE_TABLE)  # the CLI's names, all of them

    def offered() -> set:
        return {combo.itemData(i) for i in range(combo.count()) if not combo.view().isRowHidden(i)}

    state.image.update({"model": "sd-file", "scheduler": "euler"})
    assert {"pndm", "heun", "euler_a"} <= offered() and not {"lcm", "flow_euler"} & offered()
    state.image.update({"model": "flux-file", "scheduler": "flow_euler"})
    assert offered() == {"flow_euler"}
    state.image.update({"model": "lcm-folder", "scheduler": "lcm"})
    assert "lcm" in offered() and "flow_euler" not in offered()


def test_a_live_picture_announced_while_its_job_runs_stays_out_of_the_results(qtbot):
    """One-pass models (the GAN, the sketch translator) announce each picture as it is made (JobEvent.OUTPUT)."""
    from studio.core.jobs import Artifact, Job, JobEvent, JobMessage, Result
    from studio.core.recipe import Recipe
    from studio.state.live import LIVE_KEY

    state = State()
    panel = ImagePanel(state)
    qtbot.addWidget(panel)
    recipe = Recipe("image", prompt="", seed=3, params={"mode": "translate"})
    job = Job("image.generate", recipe, save=False, supersede_key=LIVE_KEY)
    state.handle_message(JobMessage(JobEvent.QUEUED, job))
    made = Result([Artifact("image", recipe, Image.new("RGB", (32, 32), "red"))])
    shown = []
    state.live.picture_arrived.connect(shown.append)
    state.handle_message(JobMessage(JobEvent.OUTPUT, job, result=made))
    state.handle_message(JobMessage(JobEvent.FINISHED, job, result=made))
    assert len(shown) == 1 and panel.results.isHidden() and "not saved" in panel.caption.text()
