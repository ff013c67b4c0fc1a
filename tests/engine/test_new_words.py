"""Round 7: everyday words made whole tokens, their embeddings started from what they mean, and batches drawn on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.data import emoji as data_emoji
from studio.training.image_captions import (
    EmojiWords,
    bpe_pieces,
    byte_word,
    everyday_caption,
    grow_tokenizer,
    read_vocab_and_merges,
    write_clip_tokenizer,
)

CAPTIONS = ["cat face", "grinning cat", "dog face", "red heart", "kite", "alarm clock", "ten o'clock"] * 3


@pytest.fixture()
def small_tokenizer(tmp_path):
    return write_clip_tokenizer(CAPTIONS, tmp_path / "tok", max_merges=40)


def test_python_bpe_splits_words_exactly_as_the_tokenizer_does(small_tokenizer, tmp_path):
    small_tokenizer.save_pretrained(tmp_path / "saved")
    _, merges = read_vocab_and_merges(tmp_path / "saved")
    ranks = {pair: i for i, pair in enumerate(merges)}
    for word in ("kitten", "cat", "clock", "grinning", "doggy", "catface", "tent"):
        assert bpe_pieces(byte_word(word), ranks) == small_tokenizer.tokenize(word)


def test_grown_words_become_one_token_and_no_learnt_word_tokenizes_differently(small_tokenizer, tmp_path):
    learnt = {"cat", "face", "grinning", "dog", "red", "heart", "kite", "alarm", "clock", "ten", "o", "'"}
    assert len(small_tokenizer.tokenize("kitten")) > 1  # "kit" + ... before: pieces that mean other things
    grown_tokenizer, grown, added = grow_tokenizer(small_tokenizer, {"kitten", "puppy"}, learnt, tmp_path / "grown")
    assert set(grown) == {"kitten", "puppy"} and added
    assert grown_tokenizer.tokenize("a kitten")[-1] == "kitten</w>"
    assert grown_tokenizer.tokenize("puppy") == ["puppy</w>"]
    for word in learnt:
        assert grown_tokenizer.tokenize(word) == small_tokenizer.tokenize(word)
    old_vocab = small_tokenizer.get_vocab()
    assert all(grown_tokenizer.get_vocab()[t] == i for t, i in old_vocab.items())  # old ids keep their places
    assert grown_tokenizer.convert_tokens_to_ids("kitten</w>") >= len(old_vocab)
    assert grown_tokenizer.eos_token_id == small_tokenizer.eos_token_id


def test_a_word_whose_merge_would_join_pieces_of_a_learnt_word_is_left_in_pieces():
    from studio.training.image_captions import whole_word_merges

    merges = [("k", "i"), ("e", "n</w>"), ("t", "en</w>")]  # "kitten" -> ki + t + ten</w>
    assert bpe_pieces("kitten", dict(zip(merges, range(3), strict=True))) == ["ki", "t", "ten</w>"]
    added, grown = whole_word_merges({"kitten"}, {"kit"}, merges)  # "kit" ends ki + t</w>: no pair in common
    assert grown == ["kitten"] and added == [("ki", "t"), ("kit", "ten</w>")]
    # "kitt" is ki + t + t</w>: (ki, t) would join it, so the chain runs right to left instead
    added, grown = whole_word_merges({"kitten"}, {"kitt"}, merges)
    assert grown == ["kitten"] and added == [("t", "ten</w>"), ("ki", "tten</w>")]
    added, grown = whole_word_merges({"kitten"}, {"kitt", "atten"}, merges)  # "atten" is a + t + ten</w>: both blocked
    assert grown == [] and added == []


def test_everyday_captions_say_one_of_the_emojis_everyday_words_and_never_a_held_out_sentence():
    rng = np.random.default_rng(0)
    cat = EmojiWords("cat face", ("cat",), "Animals & Nature", "animal-mammal", (), "orange", (), ("kitten", "kitty"))
    captions = [everyday_caption(rng, cat, frozenset({"a kitten"})) for _ in range(300)]
    assert all("kitten" in c or "kitty" in c or c == "cat face" for c in captions)  # the name when held out
    assert captions.count("cat face") < 15
    assert "a kitten" not in captions and "a kitty" in captions
    assert any(c != c.strip() or c.startswith(("a ", "an ", "the ")) for c in captions)
    flag = EmojiWords("italy", (), "Flags", "country-flag", (), None, ("italian",))
    assert all("italian flag" in everyday_caption(rng, flag) for _ in range(20))


def test_name_and_phrasing_words_are_never_grown_even_when_a_synonym_says_them():
    from studio.training.image_new_words import words_to_grow

    pizza = EmojiWords("pizza", (), "Food & Drink", "food-prepared", ("slice", "pepperoni"), "orange", (),
                       ("pizza slice", "slice of pizza"))
    cat = EmojiWords("cat face", ("cat",), "Animals & Nature", "animal-mammal", ("pet",), "orange", (), ("kitten",))
    grow, protected = words_to_grow([pizza, cat], fillers=("cousin",))
    assert grow == {"slice", "kitten"}  # "pizza" is a name, "of" a phrasing's: only a keyword or new word grows
    assert {"pizza", "of", "icon", "cat", "face", "pet", "pepperoni", "cousin"} <= protected
    assert not grow & protected


needs_font = pytest.mark.skipif(
    not data_emoji.FONT_PATH.exists() or not data_emoji.EMOJI_TEST_PATH.exists(),
    reason="needs Debian packages fonts-noto-color-emoji and unicode-data",
)


@needs_font
def test_round_seven_grows_both_text_encoders_starting_new_words_where_their_emoji_are(tmp_path):
    from studio.training.image_captions import tokenize
    from studio.training.image_model import Sizes, ldm_loss, noise_scheduler
    from studio.training.image_new_words import NEW_WORDS_SHARE, start_new_words
    from studio.training.image_run import Run

    torch.set_num_threads(1)
    entries = [e for e in data_emoji.list_emoji() if e.name in {"dog face", "cat face", "red heart", "hamburger"}]
    data = data_emoji.render_dataset(entries)
    data.held_out = np.zeros(len(data), dtype=bool)
    run = Run(tmp_path / "run", Sizes.tiny(), data, log=lambda message: None)
    run.build()
    run.state.update(synonyms_from=0, everyday_words_from=0, ldm_step=5)
    old = run.tokenizer
    old_rows = run.text_encoder.get_input_embeddings().weight.detach().clone()
    draws = start_new_words(run, True, None, frozenset(), ())
    assert run.state["new_words_from"] == 5 and run.state["new_words"] > 0
    puppy = run.tokenizer.convert_tokens_to_ids("puppy</w>")
    assert run.tokenizer.tokenize("a puppy") == ["a</w>", "puppy</w>"] and len(old.tokenize("puppy")) > 1
    dog_ids = [i for i in old("dog face", add_special_tokens=False).input_ids]
    for encoder in (run.text_encoder, run.text_ema):
        table = encoder.get_input_embeddings().weight
        assert table.shape[0] == len(run.tokenizer) > len(old)
        assert torch.equal(table[: len(old)], old_rows)  # every learnt row untouched
        direction = torch.nn.functional.cosine_similarity(table[puppy], old_rows[dog_ids].mean(0), dim=0)
        assert direction > 0.999
    assert not any(p.requires_grad for p in run.text_ema.parameters())
    from studio.training.image_new_words import words_to_grow

    _, protected = words_to_grow(run.words(run.data), ())
    assert "face" in protected and all(run.tokenizer.tokenize(w) == old.tokenize(w) for w in protected)

    rng = np.random.default_rng(0)
    idx, texts = draws.swap_in(rng, np.zeros(400, dtype=int) + 2, ["red heart"] * 400, drop=0.0)
    swapped = [t for t in texts if t != "red heart"]
    assert abs(len(swapped) / 400 - NEW_WORDS_SHARE) < 0.08
    assert any("puppy" in t or "kitten" in t or "burger" in t for t in swapped)
    ids = tokenize(run.tokenizer, texts[:8])
    latents = torch.randn(8, 4, 16, 16)
    loss = ldm_loss(run.unet, run.text_encoder, noise_scheduler(), latents, ids, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)

    run.save()  # resumes with the grown tokenizer and tables, and never grows twice
    again = Run(run.dir, run.sizes, data, log=lambda message: None)
    assert again.load() and len(again.tokenizer) == len(run.tokenizer)
    assert again.text_encoder.get_input_embeddings().weight.shape[0] == len(run.tokenizer)
    start_new_words(again, True, None, frozenset(), ())
    assert len(again.tokenizer) == len(run.tokenizer) and again.state["new_words_from"] == 5
