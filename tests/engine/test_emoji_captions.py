"""The image model's round-2 captions: sentences as people type them, words from CLDR and from the pixels; and the
evaluation's sentences kept out of them."""

from __future__ import annotations

import numpy as np
import pytest

from studio.data import emoji as data_emoji
from studio.data.emoji_words import colour_name
from studio.training.image_captions import (
    ARTICLES,
    DESCRIBING,
    REQUESTS,
    EmojiWords,
    article_phrase,
    caption_choices,
    caption_vocabulary,
    composed_caption,
    composed_forms,
    filler_words,
    pick_training_caption,
    subjects,
    with_article,
    without_held_out,
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
    from studio.training.eval_image import CLASS_PROMPTS
    from studio.training.eval_sentences import SENTENCE_SETS
    from studio.training.image_captions import emoji_words

    data = data_emoji.load_dataset()
    words = emoji_words(data, read_cldr_keywords(), [colour_name(image) for image in data.images])
    captions = {c.lower() for w in words for c, _ in caption_choices(w)}
    sentences = [p.lower() for table in SENTENCE_SETS.values() for prompts in table.values() for p in prompts]
    assert len(set(sentences)) == 240 and not set(sentences) & captions
    assert {p for prompts in CLASS_PROMPTS.values() for p in prompts} & captions  # the class prompts are names
    # Nor does round 4's composer train on one: a composed caption holds one of its emoji's subjects word for
    # word, so only emoji with a subject inside a sentence can make it, and training tells it to avoid those.
    from studio.training.image_stages import HELD_OUT_SENTENCES

    composable = {sentence for sentence in sentences for w in words for subject, _ in subjects(w)
                  if f" {subject.lower()} " in f" {sentence} " and can_compose(sentence, subject)}
    assert "a big red circle" in composable  # "a" + "big" + "red circle": the composer could make it ...
    assert composable <= HELD_OUT_SENTENCES  # ... and is told not to
    # Round 5's filler words hold no word of any sentence, so a caption carrying one is never a sentence either.
    everyday = emoji_words(data, read_cldr_keywords(), [colour_name(image) for image in data.images], demonyms=True)
    fillers = set(filler_words(everyday, HELD_OUT_SENTENCES))
    assert not fillers & {word for sentence in sentences for word in sentence.replace("'", " ").split()}
    assert any(w.demonyms for w in everyday) and not any(w.demonyms for w in words)
    # Round 6's synonyms can turn a sentence into a caption ("a" + a new subject): training drops those captions and
    # the composer avoids them, so no caption drawn in training is a held-out sentence.
    synonyms = emoji_words(data, read_cldr_keywords(), [colour_name(image) for image in data.images], demonyms=True,
                           synonyms=True)
    table = [without_held_out(caption_choices(w), HELD_OUT_SENTENCES) for w in synonyms]
    assert {c.lower() for w in synonyms for c, _ in caption_choices(w)} & set(sentences)  # some would be captions ...
    assert not {c.lower() for choices in table for c, _ in choices} & set(sentences)  # ... and are dropped


def can_compose(sentence: str, subject: str) -> bool:
    """Whether the composer can write `sentence` (lower-cased) around `subject`: the sentence is parsed into a request,
    an article and describing words, then rebuilt with the composer's own article_phrase to confirm. Listing every
    composed form (composed_forms) of the ~900 emoji whose subjects occur in a sentence takes minutes."""
    for request in ("{}", *REQUESTS):
        head, _, tail = request.partition("{}")
        if len(sentence) < len(head) + len(tail) or not (sentence.startswith(head) and sentence.endswith(tail)):
            continue
        inner = sentence[len(head) : len(sentence) - len(tail)]
        if not inner.endswith(subject.lower()):
            continue
        before = inner[: len(inner) - len(subject)].split()
        for article in ARTICLES:
            said = {article, "an"} if article == "a" else {article}
            if article and not (before and before[0] in said):
                continue
            describing = tuple(before[1:] if article else before)
            if len(describing) <= 2 and len(set(describing)) == len(describing) \
                    and set(describing) <= set(DESCRIBING) \
                    and article_phrase(article, describing, subject).lower() == inner:
                return True
    return False


def test_composed_captions_put_describing_words_and_requests_around_a_subject():
    words = EmojiWords("red apple", (), "Food & Drink", "food-fruit", ("fruit",), "red")
    rng = np.random.default_rng(0)
    drawn = [composed_caption(rng, words) for _ in range(400)]
    forms = set(composed_forms(words))
    assert set(drawn) <= forms  # the test above relies on composed_forms listing all of them
    assert any(d.startswith("an ") for d in drawn) and not any(" a apple" in f" {d}" for d in drawn)
    assert sum(any(f" {a} " in f" {d} " for a in DESCRIBING) for d in drawn) > 200  # most carry describing words
    assert len(set(drawn)) > 250  # and they vary
    # can_compose (which the held-out test uses) knows exactly these forms
    said = [subject for subject, _ in subjects(words)]
    assert all(any(can_compose(f.lower(), x) for x in said) for f in forms)
    near = ("a big big red apple", "the a red apple", "a red apple please please", "big a red apple", "an red apple")
    assert not any(can_compose(f, x) for f in near for x in said) and not set(near) & forms
    avoid = frozenset(f for f in forms if f.startswith("a "))
    assert not any(composed_caption(rng, words, avoid).startswith("a ") for _ in range(200))
    # before round 4 (no words), the round-3 choices only
    choices = caption_choices(words)
    assert {pick_training_caption(rng, choices, None, 0.0) for _ in range(200)} <= {c for c, _ in choices}
    mixed = [pick_training_caption(rng, choices, words, 0.0) for _ in range(400)]
    share = np.mean([m not in dict(choices) for m in mixed])
    assert 0.2 < share < 0.5


def test_round_five_fillers_are_frequent_words_that_no_caption_uses_and_flags_say_their_adjective():
    apple = EmojiWords("red apple", (), "Food & Drink", "food-fruit", ("fruit",), "red")
    italy = EmojiWords("italy", (), "Flags", "country-flag", demonyms=("italian",))
    held_out = ("an apple for my mum",)
    fillers = filler_words([apple, italy], held_out)
    assert len(fillers) > 3_000 and len(set(fillers)) == len(fillers)
    assert {"people", "weather", "cousin"} <= set(fillers)  # frequent words that name neither emoji
    named = {"apple", "apples", "fruit", "fruits", "red", "italian", "italy", "flag", "big", "please", "mum"}
    assert not named & set(fillers)  # a caption's words (with plurals), describing words, held-out sentence words
    assert {"italian flag", "the italian flag"} <= {c for c, _ in caption_choices(italy)}
    assert not {"italian flag"} & {c for c, _ in caption_choices(EmojiWords("italy", (), "Flags", "country-flag"))}

    rng = np.random.default_rng(0)
    avoid = frozenset({"the italian flag"})
    drawn = [composed_caption(rng, italy, avoid, fillers) for _ in range(2000)]
    assert "the italian flag" not in drawn and any("italian flag" in d for d in drawn)
    with_fillers = [d for d in drawn if set(d.replace(",", " ").split()) - caption_vocabulary([italy])]
    assert 0.35 < len(with_fillers) / len(drawn) < 0.65  # FILLER_SHARE of them carry a word that names nothing
    plain = [composed_caption(rng, italy, avoid) for _ in range(300)]
    assert set(plain) <= set(composed_forms(italy))  # without fillers, round 4's composer as it was
