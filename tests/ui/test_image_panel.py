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
    assert panel.stage.currentWidget() is panel.mask
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
    from studio.engine.recipe import Recipe

    state = State()
    panel = ImagePanel(state)
    qtbot.addWidget(panel)
    state.restore(Recipe("image", prompt="cat", seed=5, params={"steps": 33, "guidance": 2.5, "scheduler": "euler_a"}))
    sliders = {w.name: w for w in panel.findChildren(__import__("studio.widgets.controls", fromlist=["ParamSlider"]).ParamSlider)}
    assert sliders["steps"].box.value() == 33 and sliders["guidance"].box.value() == 2.5
    assert panel.prompt.toPlainText() == "cat"
