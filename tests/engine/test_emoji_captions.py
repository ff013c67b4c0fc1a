"""The image model's round-2 captions: sentences as people type them, words from CLDR and from the pixels; and the
evaluation's sentences kept out of them."""

from __future__ import annotations

import numpy as np
import pytest

from studio.data import emoji as data_emoji
from studio.data.emoji_words import colour_name
from studio.training.image_captions import EmojiWords, caption_choices, subjects, with_article


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
    from studio.training.eval_image import CLASS_PROMPTS, PARAPHRASE_PROMPTS
    from studio.training.image_captions import emoji_words

    data = data_emoji.load_dataset()
    words = emoji_words(data, read_cldr_keywords(), [colour_name(image) for image in data.images])
    captions = {c.lower() for w in words for c, _ in caption_choices(w)}
    sentences = [p.lower() for prompts in PARAPHRASE_PROMPTS.values() for p in prompts]
    assert len(sentences) == 30 and not set(sentences) & captions
    assert {p for prompts in CLASS_PROMPTS.values() for p in prompts} & captions  # the class prompts are names
