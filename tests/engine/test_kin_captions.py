"""Round 9: the held-out emoji's words, taught as their kind on training pictures of the same subgroup."""

from __future__ import annotations

import numpy as np

from studio.data.emoji import EmojiDataset
from studio.training.image_captions import EmojiWords
from studio.training.image_kin import KinDraws, colour_agrees, kin_pairs

# name, subgroup, held out, colour read off the picture
EMOJI = (
    ("automobile", "transport-ground", False, "red"),
    ("bus", "transport-ground", False, "grey"),
    ("tractor", "transport-ground", True, "green"),
    ("ship", "transport-water", True, "blue"),  # no training emoji of its subgroup: left out
    ("blue heart", "heart", False, "blue"),
    ("red heart", "heart", False, "red"),
    ("purple heart", "heart", True, "purple"),  # no purple training heart: left out
    ("green heart", "heart", True, "green"),  # no green training heart either
    ("white heart", "heart", True, "white"),
    ("white flower", "plant-flower", False, "white"),
    ("waving hand", "hand-fingers-open", False, "yellow"),
    ("waving hand: dark skin tone", "hand-fingers-open", False, "brown"),
    ("raised hand", "hand-fingers-open", True, "yellow"),
    ("raised hand: dark skin tone", "hand-fingers-open", True, "brown"),
)
SENTENCE = "a tractor on the farm"


def dataset() -> tuple[EmojiDataset, list[EmojiWords]]:
    n = len(EMOJI)
    images = np.stack([np.full((64, 64, 3), k, np.uint8) for k in range(n)])  # picture k is all k: which one it was
    data = EmojiDataset(images, ["?"] * n, [e[0] for e in EMOJI], [()] * n, ["G"] * n, [e[1] for e in EMOJI],
                        np.array([e[2] for e in EMOJI]))
    words = [EmojiWords(e[0], (), "G", e[1], keywords=("farm",) if e[0] == "tractor" else (), colour=e[3])
             for e in EMOJI]
    return data, words


def test_each_held_out_emoji_is_paired_with_training_pictures_of_its_subgroup_only():
    data, words = dataset()
    kin, siblings = kin_pairs(data, words)
    train = data.split(held_out=False)
    pairs = {w.name: sorted(train.names[j] for j in s) for w, s in zip(kin, siblings, strict=True)}
    assert pairs == {"tractor": ["automobile", "bus"], "raised hand": ["waving hand"]}  # ship, purple/green hearts out
    assert all(w.colour is None for w in kin)  # a colour read off a held-out picture is never said


def test_a_colour_in_the_name_keeps_its_meaning():
    assert colour_agrees("tractor", "red") and colour_agrees("tractor", None)
    assert colour_agrees("white heart", "white") and not colour_agrees("white heart", "red")
    assert not colour_agrees("purple heart", None)
    data, words = dataset()
    words[8] = EmojiWords("white heart", (), "G", "heart", colour="white")
    words[4] = EmojiWords("blue heart", (), "G", "heart", colour="white")  # a training heart read as white
    kin, siblings = kin_pairs(data, words)
    train = data.split(held_out=False)
    assert {w.name: [train.names[j] for j in s] for w, s in zip(kin, siblings, strict=True)}["white heart"] == \
        ["blue heart"]


def test_kin_draws_swap_a_share_of_the_batch_and_never_show_a_held_out_picture():
    data, words = dataset()
    draws = KinDraws(data, words, frozenset({SENTENCE}))
    train = data.split(held_out=False)
    rng = np.random.default_rng(0)
    idx, texts = draws.swap_in(rng, np.full(4000, -1), ["kept"] * 4000, drop=0.1)
    swapped = idx >= 0
    assert 0.03 < swapped.mean() < 0.07  # KIN_SHARE of the batch
    assert all(texts[k] == "kept" for k in np.flatnonzero(~swapped))
    assert {train.names[i] for i in idx[swapped]} == {"automobile", "bus", "waving hand"}
    said = [texts[k] for k in np.flatnonzero(swapped)]
    assert 0.05 < np.mean([t == "" for t in said]) < 0.2  # dropped for CFG like any caption
    assert any("tractor" in t for t in said) and any("raised hand" in t for t in said)
    assert SENTENCE not in said
    for k in np.flatnonzero(swapped):  # the words follow the picture's kind
        if "tractor" in texts[k]:
            assert train.names[idx[k]] in ("automobile", "bus")


def test_kin_is_a_rule_that_stays_on(tmp_path):
    from studio.data import emoji as data_emoji
    from studio.training.image_model import Sizes
    from studio.training.image_run import Run
    from studio.training.image_stages import kin_draws

    data, words = dataset()
    run = Run(tmp_path, Sizes(), data_emoji.load_dataset(), log=lambda *_: None)
    run.data = data
    assert kin_draws(run, False, words, (), ()) is None and "kin_from" not in run.state
    run.state["ldm_step"] = 40
    assert kin_draws(run, True, words, (), ()) is not None and run.state["kin_from"] == 40
    run.state["ldm_step"] = 90
    assert kin_draws(run, False, words, (), ()) is not None and run.state["kin_from"] == 40


def test_kin_on_data_without_held_out_kin_changes_nothing(tmp_path):
    from studio.data import emoji as data_emoji
    from studio.training.image_model import Sizes
    from studio.training.image_run import Run
    from studio.training.image_stages import kin_draws

    data, words = dataset()
    data.held_out[:] = False
    run = Run(tmp_path, Sizes(), data_emoji.load_dataset(), log=lambda *_: None)
    run.data = data
    run.state["ldm_step"] = 5
    draws = kin_draws(run, True, words, (), ())
    assert draws.words == []
    idx, texts = draws.swap_in(np.random.default_rng(0), np.arange(8), ["kept"] * 8, drop=0.1)
    assert list(idx) == list(range(8)) and texts == ["kept"] * 8


def test_round_10_widens_the_kin_share_and_the_wider_share_stays_on(tmp_path):
    from studio.data import emoji as data_emoji
    from studio.training.image_kin import KIN_SHARE, WIDE_KIN_SHARE
    from studio.training.image_model import Sizes
    from studio.training.image_run import Run
    from studio.training.image_stages import kin_draws

    data, words = dataset()
    run = Run(tmp_path, Sizes(), data_emoji.load_dataset(), log=lambda *_: None)
    run.data = data
    run.state["ldm_step"] = 40
    assert kin_draws(run, True, words, (), ()).share == KIN_SHARE
    run.state["ldm_step"] = 90
    widened = kin_draws(run, False, words, (), (), wide_kin=True)
    assert widened.share == WIDE_KIN_SHARE and run.state["kin_from"] == 40 and run.state["wide_kin_from"] == 90
    run.state["ldm_step"] = 120
    assert kin_draws(run, False, words, (), ()).share == WIDE_KIN_SHARE  # a later session that leaves it out
    idx, _ = widened.swap_in(np.random.default_rng(1), np.full(4000, -1), ["kept"] * 4000, drop=0.1)
    assert 0.13 < (idx >= 0).mean() < 0.17
