"""The Latent Explorer with a GAN: its own box appears, pictures by prompt and seed, the principal directions move
the picture, Z-vs-W strips are saved, and style mixing fills a grid; all through the real worker."""

from __future__ import annotations

import numpy as np
import pytest

from studio.data import emoji as data_emoji
from tests.tiny_gan import build_tiny_gan_folder

pytestmark = pytest.mark.skipif(not data_emoji.FONT_PATH.exists(), reason="needs fonts-noto-color-emoji")


@pytest.fixture(scope="module")
def gan_folder(tmp_path_factory):
    base = tmp_path_factory.mktemp("gan")
    return build_tiny_gan_folder(base / "emoji-gan", base / "run")


def _finished(qtbot, state, job):
    with qtbot.waitSignal(state.result_ready, timeout=60000, check_params_cb=lambda j, r: j.id == job.id) as got:
        pass
    return got.args[1]


def test_the_gan_box_shows_only_for_a_gan(qtbot, live_state, gan_folder):
    from studio.panels.latent import LatentPanel

    panel = LatentPanel(live_state)
    qtbot.addWidget(panel)
    assert panel.gan_box.isHidden()  # the built-in diffusion model: no GAN controls
    live_state.panels["latent"].set("model", str(gan_folder))
    assert not panel.gan_box.isHidden()


def test_gan_pictures_directions_strips_and_mixing_through_the_worker(qtbot, live_state, gan_folder):
    explorer, values = live_state.explorer, live_state.panels["latent"]
    values.update({"model": str(gan_folder), "truncation": 1.0, "gan_prompt_a": "red heart", "gan_seed_a": 3,
                   "gan_prompt_b": "pizza", "gan_seed_b": 4, "frames": 5, "mix_count": 2, "crossover": 3})
    with qtbot.waitSignal(explorer.shown_changed, timeout=60000):
        explorer.gan_picture("a")
    plain = np.asarray(explorer.shown_image)
    assert plain.shape == (64, 64, 3)
    with qtbot.waitSignal(explorer.shown_changed, timeout=60000):
        values.set("directions_amounts", [3.0] + [0.0] * 7)
        explorer.decode()
    assert not np.array_equal(np.asarray(explorer.shown_image), plain)  # the first direction moved the picture

    saved = []
    explorer.saved_ready.connect(saved.extend)
    with qtbot.waitSignal(explorer.saved_ready, timeout=60000):
        explorer.gan_compare()
    (strip,) = saved
    assert len(strip.payload) == 5 and strip.files  # five Z|W frame pairs, saved as an animation
    assert strip.payload[0].width == 2 * 64 + 4
    assert len(strip.recipe.params["z_step_sizes"]) == 4
    assert "Left Z, right W" in explorer.message

    with qtbot.waitSignal(explorer.grid_ready, timeout=60000) as grid:
        explorer.gan_mix()
    cells, size = grid.args
    assert size == 3 and len(cells) == 9  # B's two seeds on top, A's two down the side, four mixes


def test_the_image_panel_shows_truncation_only_for_a_gan(qtbot, gan_folder):
    from studio.panels.image import ImagePanel
    from studio.state import State

    state = State()
    panel = ImagePanel(state)
    qtbot.addWidget(panel)
    assert panel.truncation.isHidden()  # the built-in diffusion model has no ψ
    state.image.set("model", str(gan_folder))
    assert not panel.truncation.isHidden()
    state.image.set("model", "builtin:emoji-ldm")
    assert panel.truncation.isHidden()
