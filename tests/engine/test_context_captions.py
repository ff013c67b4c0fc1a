"""Round 8: composed captions that go on to name another emoji after the subject, the picture still the subject's."""

from __future__ import annotations

import numpy as np
import pytest

from studio.training.image_captions import (
    EmojiWords,
    composed_caption,
    context_subjects,
    pairs_held_out,
    with_context,
)

PENGUIN = EmojiWords("penguin", (), "Animals & Nature", "animal-bird", keywords=("bird",))
ICE = EmojiWords("ice", (), "Food & Drink", "drink", keywords=("cube", "iceberg"))
SNOWMAN = EmojiWords("snowman without snow", ("snowman",), "Travel & Places", "sky & weather", keywords=("snow", "cold"))


def test_context_subjects_are_every_emojis_short_names_once():
    found = context_subjects([PENGUIN, ICE, SNOWMAN])
    assert {"penguin", "bird", "ice", "cube", "snowman", "snow", "cold"} <= set(found)
    assert "snowman without snow" not in found  # three words: sentences say "a snowman", not a full name
    assert len(found) == len(set(found)) and list(found) == sorted(found)


def test_a_context_caption_keeps_the_subject_first_and_names_the_other_after_it():
    rng = np.random.default_rng(0)
    captions = [with_context(rng, "a penguin", ("snow",)) for _ in range(200)]
    assert all(c.startswith("a penguin ") and "snow" in c for c in captions)
    assert len(set(captions)) > 10  # forms and articles vary


def test_nothing_a_held_out_sentence_pairs_is_ever_trained_together():
    avoid = frozenset({"a penguin on the ice"})
    assert pairs_held_out("the little penguin", "ice", avoid)
    assert not pairs_held_out("the little penguin", "snow", avoid)
    assert not pairs_held_out("a red heart", "ice", avoid)
    rng = np.random.default_rng(1)
    captions = [composed_caption(rng, PENGUIN, avoid, context=("ice", "snow")) for _ in range(600)]
    assert not any({"penguin", "ice"} <= set(c.split()) for c in captions)
    assert any({"bird", "ice"} <= set(c.split()) for c in captions)  # the emoji's other subjects still may
    assert sum("snow" in c.split() for c in captions) > 50  # the share is there, only the held-out pair is not
    assert sum("snow" not in c.split() for c in captions) > 200  # and most captions stay as before


def test_without_context_a_composed_caption_draws_as_round_seven_did():
    """Recipes of earlier rounds' distillations and resumed runs draw the same captions: no extra random draw."""
    first, second = np.random.default_rng(5), np.random.default_rng(5)
    fillers = ("kitchen", "yesterday")
    assert [composed_caption(first, PENGUIN, fillers=fillers) for _ in range(50)] == \
        [composed_caption(second, PENGUIN, fillers=fillers, context=()) for _ in range(50)]


def test_context_needs_the_everyday_words_round(tmp_path):
    from studio.data import emoji as data_emoji
    from studio.training.image_model import Sizes
    from studio.training.image_run import Run
    from studio.training.image_stages import context_phrases

    run = Run(tmp_path, Sizes(), data_emoji.load_dataset(), log=lambda *_: None)
    with pytest.raises(ValueError, match="everyday words"):
        context_phrases(run, True, [PENGUIN, ICE])
    assert context_phrases(run, False, [PENGUIN, ICE]) == ()
    run.state.update(everyday_words_from=10, ldm_step=25)
    found = context_phrases(run, True, [PENGUIN, ICE])
    assert run.state["context_from"] == 25 and "penguin" in found
    run.state["ldm_step"] = 90
    assert context_phrases(run, False, [PENGUIN, ICE]) == found and run.state["context_from"] == 25  # stays on
