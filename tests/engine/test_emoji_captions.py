"""The image model's round-2 captions: sentences as people type them, words from CLDR and from the pixels; and the
evaluation's sentences kept out of them."""

from __future__ import annotations

import numpy as np
import pytest

from studio.data import emoji as data_emoji
from studio.data.emoji_words import colour_name
from studio.training.image_captions import (
    DESCRIBING,
    EmojiWords,
    caption_choices,
    composed_caption,
    composed_forms,
    pick_training_caption,
    subjects,
    with_article,
)


def test_articles_follow_the_sound_of_the_subject():
    assert with_article("a {}", "apple") == "an apple"
    assert with_article("a picture of a {}", "owl") == "a picture of an owl"
    assert with_article("a cute {}", "owl") == "a cute owl"  # the article belongs to "cute"
    assert with_article("a {}", "dog") == "a dog"


def test_a_flat_coloured_glyph_is_named_by_its_colour():
    picture = np.full((64, 64, 3), 255, np.uint8)
    picture[16:48, 16:48] = (30, 60, 220)
    assert colour_name(picture) == "blue"
    picture[16:48, 16:48] = (230, 30, 30)
    assert colour_name(picture) == "red"
    assert colour_name(np.full((64, 64, 3), 255, np.uint8)) is None  # nothing drawn


def test_captions_keep_the_first_rounds_forms_and_add_sentences():
    words = EmojiWords("sport utility vehicle", ("suv",), "Travel & Places", "transport-ground",
                       ("recreational", "car"), "blue")
    choices = dict(caption_choices(words))
    assert abs(sum(choices.values()) - 1.0) < 1e-9
    assert "sport utility vehicle" in choices and "transport ground, travel and places" in choices  # round 1
    assert "a blue car" in choices and "a picture of a car" in choices and "an emoji of a suv" in choices
    assert len(choices) == len(caption_choices(words))  # each caption once, its weights merged
    assert choices["transport ground"] == 0.5 * 0.15 / 1.0  # round 1's forms keep half their weight
    flag = dict(subjects(EmojiWords("france", (), "Flags", "country-flag")))
    assert set(flag) == {"flag of france", "france flag", "france"}


@pytest.mark.skipif(not data_emoji.FONT_PATH.exists(), reason="needs fonts-noto-color-emoji")
def test_the_evaluations_typed_sentences_are_never_training_captions():
    from studio.data.emoji_words import read_cldr_keywords
    from studio.training.eval_image import CLASS_PROMPTS, FRESH_SENTENCES, PARAPHRASE_PROMPTS
    from studio.training.image_captions import emoji_words

    data = data_emoji.load_dataset()
    words = emoji_words(data, read_cldr_keywords(), [colour_name(image) for image in data.images])
    captions = {c.lower() for w in words for c, _ in caption_choices(w)}
    sentences = [p.lower() for table in (PARAPHRASE_PROMPTS, FRESH_SENTENCES) for prompts in table.values()
                 for p in prompts]
    assert len(sentences) == 60 and not set(sentences) & captions
    assert {p for prompts in CLASS_PROMPTS.values() for p in prompts} & captions  # the class prompts are names
    # Nor does round 4's composer train on one: a composed caption holds one of its emoji's subjects word for
    # word, so only emoji with a subject inside a sentence can make it, and training tells it to avoid those.
    from studio.training.image_stages import HELD_OUT_SENTENCES

    composable = {sentence for sentence in sentences for w in words
                  if any(f" {subject.lower()} " in f" {sentence} " for subject, _ in subjects(w))
                  and sentence in {c.lower() for c in composed_forms(w)}}
    assert "a big red circle" in composable  # "a" + "big" + "red circle": the composer could make it ...
    assert composable <= HELD_OUT_SENTENCES  # ... and is told not to


def test_composed_captions_put_describing_words_and_requests_around_a_subject():
    words = EmojiWords("red apple", (), "Food & Drink", "food-fruit", ("fruit",), "red")
    rng = np.random.default_rng(0)
    drawn = [composed_caption(rng, words) for _ in range(400)]
    forms = set(composed_forms(words))
    assert set(drawn) <= forms  # the test above relies on composed_forms listing all of them
    assert any(d.startswith("an ") for d in drawn) and not any(" a apple" in f" {d}" for d in drawn)
    assert sum(any(f" {a} " in f" {d} " for a in DESCRIBING) for d in drawn) > 200  # most carry describing words
    assert len(set(drawn)) > 250  # and they vary
    avoid = frozenset(f for f in forms if f.startswith("a "))
    assert not any(composed_caption(rng, words, avoid).startswith("a ") for _ in range(200))
    # before round 4 (no words), the round-3 choices only
    choices = caption_choices(words)
    assert {pick_training_caption(rng, choices, None, 0.0) for _ in range(200)} <= {c for c, _ in choices}
    mixed = [pick_training_caption(rng, choices, words, 0.0) for _ in range(400)]
    share = np.mean([m not in dict(choices) for m in mixed])
    assert 0.2 < share < 0.5
