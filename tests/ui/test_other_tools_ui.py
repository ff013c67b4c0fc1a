"""Other tools' files in the window (issue 15, items 14, 16-18, 20): the seed box holds 64-bit seeds, and a dropped
NovelAI/ComfyUI PNG fills the Image panel, says what it was and what was mapped, and never empties the prompt."""

import json

from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import Qt

from studio.core.recipe import SEED_LIMIT
from studio.panels.image import ImagePanel
from studio.state import RANDOM_SEED, State
from tests.ui.test_window import window  # noqa: F401, F811 - the window fixture

BIG_SEED = 6952411511246973023


def png_with(tmp_path, name, chunks):
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    path = tmp_path / name
    Image.new("RGB", (8, 8), "white").save(path, pnginfo=info)
    return path


def test_the_seed_box_holds_a_64_bit_seed_as_the_state_does(qtbot):
    from studio.widgets.controls import SeedBox

    state = State()
    box = SeedBox(state.image)
    qtbot.addWidget(box)
    state.image.set("seed", BIG_SEED)
    assert box.spin.value() == BIG_SEED and box.spin.text() == str(BIG_SEED) and box.lock.isChecked()
    state.image.set("seed", SEED_LIMIT)
    assert box.spin.value() == SEED_LIMIT
    box.spin.stepBy(-1)
    assert state.image.get("seed") == SEED_LIMIT - 1
    box.spin.stepBy(5)  # stops at the top
    assert state.image.get("seed") == SEED_LIMIT
    box.spin.lineEdit().selectAll()
    qtbot.keyClicks(box.spin, str(BIG_SEED + 1))
    assert state.image.get("seed") == BIG_SEED + 1
    box.spin.lineEdit().selectAll()
    qtbot.keyClicks(box.spin, "12x")  # letters are refused
    assert box.spin.text() == "12" and state.image.get("seed") == 12
    box.lock.setChecked(False)
    assert state.image.get("seed") == RANDOM_SEED
    box.lock.setChecked(True)
    assert state.image.get("seed") == 12
    assert state.image.recipe().seed == 12


def test_a_dropped_novelai_png_fills_the_panel_says_so_and_keeps_the_prompt_when_it_has_none(qtbot, tmp_path):
    state = State()
    panel = ImagePanel(state)
    qtbot.addWidget(panel)
    comment = {"prompt": "1girl, cherry blossoms", "steps": 28, "height": 1216, "width": 832, "scale": 5.5,
               "seed": BIG_SEED, "n_samples": 1, "noise_schedule": "native", "sampler": "k_euler_ancestral",
               "strength": 0.7, "noise": 0.2, "uc": "lowres, bad anatomy", "request_type": "Img2ImgRequest"}
    path = png_with(tmp_path, "nai.png", {"Title": "AI generated image", "Description": comment["prompt"],
                                          "Software": "NovelAI", "Source": "Stable Diffusion XL C1E1DE52",
                                          "Comment": json.dumps(comment)})
    assert panel.load_settings_from(path)
    values = state.image
    assert values.get("prompt") == "1girl, cherry blossoms" and values.get("negative_prompt") == "lowres, bad anatomy"
    assert values.get("guidance") == 5.5 and values.get("scheduler") == "euler_a" and values.get("seed") == BIG_SEED
    assert "NovelAI" in panel.unknown.text() and not panel.unknown.isHidden()

    values.set("prompt", "my own prompt")
    bare = {k: v for k, v in comment.items() if k != "prompt"}
    assert panel.load_settings_from(png_with(tmp_path, "bare.png", {"Software": "NovelAI", "Comment": json.dumps(bare)}))
    assert values.get("prompt") == "my own prompt", "a file without a prompt never empties the prompt box"
    assert "prompt box is left as it was" in panel.unknown.text()


def test_a_dropped_file_with_an_unknown_sampler_says_what_was_chosen(qtbot, tmp_path):
    state = State()
    panel = ImagePanel(state)
    qtbot.addWidget(panel)
    told = []
    state.error_raised.connect(lambda modality, text: told.append(text))
    text = "a boat\nSteps: 20, Sampler: DPM++ 2M SDE, Schedule type: Exponential, CFG scale: 7, Seed: 5, Size: 64x64"
    assert panel.load_settings_from(png_with(tmp_path, "a1111.png", {"parameters": text}))
    assert state.image.get("scheduler") == "dpmpp_2m"
    shown = panel.unknown.text()
    assert "DPM++ 2M SDE" in shown and "Exponential" in shown
    assert not panel.load_settings_from(png_with(tmp_path, "json.png", {"parameters": '{"foo": 1}'}))
    assert told and "does not know" in told[-1]


def test_the_seed_spin_refuses_what_is_not_a_seed(qtbot):
    from PySide6.QtGui import QValidator

    from studio.widgets.controls import SeedSpin

    spin = SeedSpin()
    qtbot.addWidget(spin)
    assert spin.validate(str(SEED_LIMIT), 0)[0] == QValidator.State.Acceptable
    assert spin.validate(str(SEED_LIMIT + 1), 0)[0] == QValidator.State.Invalid
    assert spin.validate("-1", 0)[0] == QValidator.State.Invalid
    assert spin.validate("", 0)[0] == QValidator.State.Intermediate
    spin.setValue(7)
    qtbot.keyClick(spin, Qt.Key.Key_Up)
    assert spin.value() == 8


def test_file_open_of_another_tools_image_maps_says_and_keeps_the_prompt(qtbot, window, tmp_path):  # noqa: F811
    """File › Open (and `python -m studio FILE`) read an image as a drop does."""
    window.state.image.set("prompt", "my own prompt")
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": BIG_SEED, "steps": 9, "cfg": 3, "sampler_name": "euler",
                                                        "scheduler": "sgm_uniform", "denoise": 1,
                                                        "positive": ["6", 0], "negative": ["6", 0]}},
             "6": {"class_type": "CLIPTextEncode", "inputs": {"text": ""}}}
    assert window.load_recipe_file(png_with(tmp_path, "comfy.png", {"prompt": json.dumps(graph)}))
    values = window.state.image
    assert values.get("prompt") == "my own prompt" and values.get("seed") == BIG_SEED and values.get("steps") == 9
    shown = window.panel("image").unknown.text()
    assert "ComfyUI" in shown and "sgm_uniform" in shown and "prompt box is left as it was" in shown
    assert not window.load_recipe_file(png_with(tmp_path, "odd.png", {"parameters": '{"foo": 1}'}))
