"""Round 7 of the image model: the everyday words of round 6 as whole tokens, and a share of every batch on them.

Round 6 taught synonyms ("kitten", "burger") but its tokenizer, learnt from round 1's captions, broke most of them
into pieces that already meant something else ("kit" + "ten", and "ten" is a clock), and each word came up in only
tens of captions. Round 7 appends merges that make each such word one token (image_captions.grow_tokenizer), starts
its embedding at the mean of the embeddings of the names of the emoji it stands for, and draws NEW_WORDS_SHARE of
every batch from the emoji that have such words, captioned with one (image_captions.everyday_caption).
"""

from __future__ import annotations

import collections
import dataclasses
import re

import numpy as np

from studio.data.emoji import SKIN_TONE
from studio.training.image_captions import (
    EmojiWords,
    byte_word,
    caption_vocabulary,
    everyday_caption,
    everyday_word_set,
    grow_tokenizer,
)
from studio.training.image_run import Run

NEW_WORDS_SHARE = 0.25  # of every batch, from round 7 on


def words_to_grow(all_words: list[EmojiWords], fillers: tuple[str, ...]) -> tuple[set[str], set[str]]:
    """The everyday words to make whole, and the learnt words whose tokenization must not change.

    An everyday word is grown unless a name, an alias, a group or a phrasing uses it ("pizza" of "pizza slice",
    "icon" of "an icon of a …" stay as they are): those are the model's core words. An everyday word that is also
    some emoji's CLDR keyword ("puppy", "plane") is grown, and its row starts from those emoji too. Every other
    caption word and every filler is protected."""
    core = caption_vocabulary([dataclasses.replace(w, keywords=(), synonyms=(), demonyms=()) for w in all_words])
    grow = everyday_word_set(all_words) - core - set(fillers)
    learnt = caption_vocabulary([dataclasses.replace(w, synonyms=(), demonyms=()) for w in all_words])
    return grow, (learnt | set(fillers)) - grow


def embedding_sources(old_tokenizer, tokenizer, all_words: list[EmojiWords], grown: list[str],
                      added: list[tuple[str, str]]) -> dict[int, list[int]]:
    """Where each new token's embedding starts: a grown word at the mean of the name words of the emoji it stands
    for ("kitten": "cat", "cat face"); a merge's in-between token at the mean of its old pieces (what it meant)."""
    old_ids = old_tokenizer.get_vocab()
    pieces = {"".join(pair): pair for pair in added}

    def old_pieces(token: str) -> list[int]:
        if token in old_ids:
            return [old_ids[token]]
        a, b = pieces[token]
        return old_pieces(a) + old_pieces(b)

    new_vocab = tokenizer.get_vocab()
    sources = {new_vocab[token]: old_pieces(token) for token in pieces if token not in old_ids}
    names_saying = collections.defaultdict(set)  # word -> the names of the emoji it stands for
    for w in all_words:
        # Skin-tone variants share their emoji's words: "light skin tone" would outweigh "clapping hands".
        name = SKIN_TONE.sub("", w.name).strip(" :,")
        for word in everyday_words_of(w):
            names_saying[word].add(name)
    for word in grown:
        names = sorted(names_saying[word])
        ids = [i for name in names for i in old_tokenizer(name, add_special_tokens=False).input_ids
               if old_tokenizer.convert_ids_to_tokens(i).removesuffix("</w>").isalpha()]
        token_id = new_vocab[byte_word(word) + "</w>"]
        if ids and token_id >= len(old_ids):  # a learnt row is never overwritten
            sources[token_id] = ids
    return sources


def everyday_words_of(words: EmojiWords) -> set[str]:
    """The words of an emoji's synonyms, flags' adjectives and keywords: what its grown words can stand for."""
    said = (*words.synonyms, *words.demonyms, *words.keywords)
    return {word for text in said for word in re.findall(r"[a-z]+", text.lower())}


def grow_vocabulary(run: Run, fillers: tuple[str, ...]) -> None:
    """Grow the run's tokenizer and text encoders once, at the start of round 7 (the step is kept in the state)."""
    all_words = run.words(run.data)
    old = run.tokenizer
    tokenizer, grown, added = grow_tokenizer(old, *words_to_grow(all_words, fillers), run.dir / "tokenizer_grown")
    run.grow_text_vocabulary(tokenizer, embedding_sources(old, tokenizer, all_words, grown, added))
    run.state["new_words_from"] = run.state["ldm_step"]
    run.state["new_words"] = len(grown)
    run.drop_optimizer_state()  # the token table changed shape: its Adam moments no longer fit
    run.log(f"round 7: {len(grown)} everyday words made whole tokens ({len(old)} -> {len(tokenizer)} tokens), "
            f"e.g. {', '.join(grown[:6])}")


class NewWordDraws:
    """Round 7's share of every batch: emoji that have everyday words, captioned with one of them."""

    def __init__(self, train_words: list[EmojiWords], weights: np.ndarray | None, avoid: frozenset[str],
                 fillers: tuple[str, ...], context: tuple[str, ...] = ()):
        self.words = train_words
        self.context = context  # round 8 on: context phrases (image_captions.with_context)
        self.indices = np.array([i for i, w in enumerate(train_words) if w.synonyms or w.demonyms])
        chosen = np.ones(len(self.indices)) if weights is None else weights[self.indices]
        self.p = chosen / chosen.sum()
        self.avoid = avoid
        self.fillers = fillers

    def swap_in(self, rng: np.random.Generator, idx: np.ndarray, texts: list[str], drop: float):
        """NEW_WORDS_SHARE of the batch replaced by everyday-word draws (dropped to "" as often as any caption)."""
        idx, texts = idx.copy(), list(texts)
        for k in np.flatnonzero(rng.random(len(idx)) < NEW_WORDS_SHARE):
            i = int(self.indices[rng.choice(len(self.indices), p=self.p)])
            idx[k] = i
            texts[k] = "" if rng.random() < drop else everyday_caption(rng, self.words[i], self.avoid, self.fillers,
                                                                               self.context)
        return idx, texts


def start_new_words(run: Run, enabled: bool, weights: np.ndarray | None, avoid: frozenset[str],
                    fillers: tuple[str, ...], context: tuple[str, ...] = ()) -> NewWordDraws | None:
    """Round 7 on (needs round 6's synonyms): grow the vocabulary once, then draw the share on everyday words."""
    if enabled and "new_words_from" not in run.state:
        if not run.synonyms:
            raise ValueError("round 7's new words are round 6's synonyms: train with synonyms too")
        grow_vocabulary(run, fillers)
    if "new_words_from" not in run.state:
        return None
    return NewWordDraws(run.words(run.train), weights, avoid, fillers, context)
