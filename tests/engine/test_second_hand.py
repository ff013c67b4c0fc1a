"""Round 11's second hand: EmojiOne's pictures matched to the Noto data set, and half of their draws swapped in."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.data import emoji as data_emoji
from studio.data import emoji_hands

needs_font = pytest.mark.skipif(
    not data_emoji.FONT_PATH.exists() or not data_emoji.EMOJI_TEST_PATH.exists(),
    reason="needs Debian packages fonts-noto-color-emoji and unicode-data",
)
HANDFUL = {"red heart", "grinning face", "france", "dog face", "thumbs up", "one o'clock"}


@pytest.fixture(scope="module")
def handful():
    entries = [e for e in data_emoji.list_emoji() if e.name in HANDFUL]
    data = data_emoji.render_dataset(entries)
    data.held_out = np.array([name == "grinning face" for name in data.names])
    return data


def write_png(path, colour=(200, 0, 0, 255)):
    """A 64 x 64 PNG like EmojiOne's: a picture on a transparent ground."""
    from PIL import Image

    picture = np.zeros((64, 64, 4), np.uint8)
    picture[2:62, 2:62] = colour
    Image.fromarray(picture, "RGBA").save(path)


@pytest.fixture()
def emojione_dir(tmp_path, handful):
    """EmojiOne-named files for red heart (whose character carries FE0F, which the file name leaves out), grinning
    face (held out) and france, and one for an emoji the data set does not hold."""
    folder = tmp_path / "png"
    folder.mkdir()
    for name in ("red heart", "grinning face", "france"):
        write_png(folder / f"{emoji_hands.code_point_key(handful.chars[handful.names.index(name)]).lower()}.png")
    write_png(folder / "1f9ff.png")
    return folder


def test_the_file_name_key_drops_the_variation_selector():
    assert emoji_hands.code_point_key("\u2764\ufe0f") == "2764"
    assert emoji_hands.code_point_key("\U0001f1eb\U0001f1f7") == "1F1EB-1F1F7"


@needs_font
def test_the_second_hand_matches_by_code_point_on_white_at_notos_extent(handful, emojione_dir):
    indices, pictures = emoji_hands.second_hand(handful, emojione_dir)
    assert sorted(handful.names[i] for i in indices) == ["france", "grinning face", "red heart"]
    assert pictures.shape == (3, 64, 64, 3) and pictures.dtype == np.uint8
    assert (pictures[:, 0, 0] == 255).all()  # the transparent ground is white, as Noto's
    assert tuple(pictures[0, 32, 32]) == (200, 0, 0)
    drawn = np.flatnonzero((pictures[0] < 128).any(-1).any(0))  # the picture, not its resampling fringe
    assert 56 <= drawn[-1] - drawn[0] + 1 <= 59  # 60 of 64 px shrunk by FILL: Noto's 58


@needs_font
def test_the_second_hands_cache_is_used_only_for_the_same_emoji(handful, emojione_dir, tmp_path):
    cache = tmp_path / "hands.npz"
    indices, pictures = emoji_hands.load_second_hand(handful, cache, emojione_dir)
    again = emoji_hands.load_second_hand(handful, cache, tmp_path / "gone")  # the pictures' folder is not read
    assert np.array_equal(again[0], indices) and np.array_equal(again[1], pictures)
    other = handful.subset(range(1, len(handful)))  # shifted: the cached indices point at other emoji
    with pytest.raises(FileNotFoundError, match="ruby-gemojione"):
        emoji_hands.load_second_hand(other, cache, tmp_path / "gone")


def test_round_11_swaps_about_half_the_draws_of_emoji_with_a_second_picture_and_only_those():
    from studio.training.image_hands import SecondHandDraws

    has_second = np.array([True, False, True])
    second_mean = torch.tensor([[10.0], [20.0]])  # rows: training emoji 0 and 2
    draws = SecondHandDraws(has_second, second_mean, second_mean / 10, share=0.5)
    idx = np.tile([0, 1, 2], 3000)
    own = torch.tensor([[0.0], [1.0], [2.0]])[idx]
    mean, std, swapped = draws.swap(np.random.default_rng(0), idx, own, own / 10)
    changed = (mean != own).squeeze(1).numpy()
    assert swapped == changed.sum() and not changed[idx == 1].any()
    assert 0.45 < changed[idx == 0].mean() < 0.55 and 0.45 < changed[idx == 2].mean() < 0.55
    assert (mean[changed & (idx == 0)] == 10).all() and (mean[changed & (idx == 2)] == 20).all()
    assert (std[changed & (idx == 2)] == 2).all()
    assert torch.equal(own, torch.tensor([[0.0], [1.0], [2.0]])[idx])  # the caller's batch is left as it was


@needs_font
def test_round_11_starts_at_its_step_uses_only_training_pictures_and_stays_on(tmp_path, handful, emojione_dir,
                                                                              monkeypatch):
    from studio.training import image_hands
    from studio.training.image_model import Sizes
    from studio.training.image_run import Run

    torch.manual_seed(0)
    monkeypatch.setattr(image_hands.emoji_hands, "load_second_hand",
                        lambda data: emoji_hands.second_hand(data, emojione_dir))
    run = Run(tmp_path / "run", Sizes.tiny(), handful, log=lambda message: None)
    run.build()
    run.state["ldm_step"] = 30
    assert image_hands.second_hand_draws(run) is None  # before round 11: Noto alone
    draws = image_hands.second_hand_draws(run, 0.5)
    assert run.state["second_hand_from"] == 30 and draws.share == 0.5
    names = [run.train.names[i] for i in np.flatnonzero(draws.position >= 0)]
    assert names == sorted(names, key=run.train.names.index) and set(names) == {"red heart", "france"}
    assert draws.mean.shape == (2, 4, 16, 16)
    heart = draws.mean[draws.position[run.train.names.index("red heart")]]
    assert not torch.allclose(heart, run.encode_latents(run.train)[0][run.train.names.index("red heart")])
    run.state["ldm_step"] = 60
    assert image_hands.second_hand_draws(run, 0.75).share == 0.75  # a catch-up share from here
    run.state["ldm_step"] = 90
    assert image_hands.second_hand_draws(run).share == 0.75  # a later session that leaves the flag out
    assert run.state["second_hand_from"] == 30
    assert image_hands.second_hand_shares(run.state) == [[30, 0.5], [60, 0.75]]
    assert image_hands.second_hand_shares({"second_hand_from": 7}) == [[7, image_hands.SECOND_HAND_SHARE]]


def test_a_remembered_draw_draws_each_prompt_and_seed_once():
    from studio.training.eval_image import remembered

    calls = []

    def draw(prompts, seeds):
        calls.append(list(zip(prompts, seeds, strict=True)))
        return np.array([[len(p) * 10 + s] for p, s in zip(prompts, seeds, strict=True)])

    once = remembered(draw)
    first = once(["cat", "heart"], [1, 2])
    again = once(["heart", "dog", "cat"], [2, 1, 1])
    assert first.tolist() == [[31], [52]] and again.tolist() == [[52], [31], [31]]
    assert calls == [[("cat", 1), ("heart", 2)], [("dog", 1)]]
