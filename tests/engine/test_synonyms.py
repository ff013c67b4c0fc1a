"""Round 6's everyday synonyms: words people type for an emoji that its name and keywords do not hold."""

from __future__ import annotations

from studio.data import emoji as data_emoji
from studio.data.emoji_words import colour_name, read_cldr_keywords
from studio.data.synonyms import SYNONYMS, candidate_synonyms, clock_times, everyday_synonyms, keycap_words
from studio.training.image_captions import DESCRIBING, EmojiWords, emoji_words, subjects, with_synonyms


def test_clocks_and_keycaps_are_said_as_people_write_them():
    assert {"3 o'clock", "3:00", "clock at three"} <= set(clock_times("three o'clock"))
    assert {"half past three", "3:30"} <= set(clock_times("three-thirty"))
    assert {"half past twelve", "12:30"} <= set(clock_times("twelve-thirty"))
    assert clock_times("alarm clock") == () and clock_times("dozen o'clock") == ()
    assert {"number 7", "number seven"} <= set(keycap_words("keycap 7"))
    assert keycap_words("keycap 10") == ("number 10", "digit 10", "number ten")


def test_a_synonym_is_dropped_when_rare_another_emojis_name_or_already_known():
    zipf = {"puppy": 4.0, "pup": 3.0, "hound": 1.0, "doggy": 3.3, "doggie": 2.0, "pooch": 2.5}.get
    names, others = ["dog face"], {"dog face", "dog", "pooch"}  # pretend "pooch" names another emoji
    kept = everyday_synonyms(names, others, [{"dog face", "dog", "puppy face", "doggy"}], zipf=lambda w: zipf(w, 5.0))
    assert kept == [("puppy", "pup")]  # "doggy" and "puppy face" it already says; "hound" is rare; "pooch" is taken
    assert everyday_synonyms(["dog"], set(), [set()], zipf=lambda w: zipf(w, 5.0)) == [("puppy", "pup", "doggy", "pooch")]


def test_round_six_subjects_hold_the_synonyms_and_no_word_that_composes_every_caption():
    dog = EmojiWords("dog face", ("dog",), "Animals & Nature", "animal-mammal", ("pet",), "orange")
    plain = {s for s, _ in subjects(dog)}
    found = with_synonyms([dog])[0]
    assert "puppy" in found.synonyms and "puppy" not in plain
    assert {"puppy", "orange puppy"} <= {s for s, _ in subjects(found)}
    # every key names an emoji of the data (a typo would silently give nothing) and no synonym is a describing word
    data = data_emoji.load_dataset()
    names = {data_emoji.SKIN_TONE.sub("", n).strip() for n in data.names}
    assert set(SYNONYMS) <= names
    words = emoji_words(data, read_cldr_keywords(), [colour_name(image) for image in data.images], synonyms=True)
    said = {s for w in words for s in w.synonyms}
    assert {"puppy", "kitten", "half past three", "plane", "cheeseburger"} <= said
    assert not {word for s in said for word in s.split()} & set(DESCRIBING)
    all_names = {n.lower() for w in words for n in (w.name, *w.aliases)}
    assert not {s for w in words for s in w.synonyms if s != w.name} & all_names
    assert all(set(w.synonyms) <= set(candidate_synonyms(data_emoji.SKIN_TONE.sub("", w.name).strip())) for w in words)
