"""Round 9 of the image model: the words of the held-out emoji, taught as their kind.

The evaluation holds out 10 % of the emoji (by name; data_emoji.is_held_out) so the Fréchet distance and the
classifier's ceiling are measured on pictures the model never saw. Until round 9 that also kept their words out of
every caption: "tractor", "hourglass", "croissant", "palm tree" and "three o'clock" meant nothing to the model, and
a typed sentence naming one drew whatever its other words suggested (round 8 drew food for "a tractor on the farm",
0 of 24; set C's "an hourglass" 0 of 24). A person who has never seen a tractor still knows it is a farm vehicle.

Round 9 gives the model that much: KIN_SHARE of every batch is a held-out emoji's caption (its name, aliases,
keywords and synonyms, in the same phrasings and compositions as any caption) on the picture of a *training* emoji
of the same Unicode subgroup ("a tractor" on a car, a bus or a fire engine). The model learns the word's kind, never
its look: no held-out picture, and no colour read off one, is used. The held-out pictures stay unseen, so the
Fréchet distance still measures what it did.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from studio.data.emoji import SKIN_TONE
from studio.data.emoji_words import HUE_NAMES
from studio.training.image_captions import EmojiWords, caption_choices, pick_training_caption, without_held_out

COLOUR_WORDS = frozenset({name for _, name in HUE_NAMES} | {"black", "grey", "white", "brown"})
KIN_SHARE = 0.05  # of every batch in round 9: half the held-out emoji's 10 %, so their words never crowd the rest
# Round 10: round 9 gave each held-out word about 36 draws in 3,922 steps and taught none of those checked by name
# ("tractor" 0 of 8), so the share triples: a held-out word then gets about 0.027 draws a step (15 % of 32 over 178
# words), a training emoji about 0.016 (the other 85 % over 1,689 emoji).
WIDE_KIN_SHARE = 0.15


def kin_share(state: dict) -> float:
    """The share of every batch a run's kin captions take: round 10's once it began (its step is in the state)."""
    return WIDE_KIN_SHARE if "wide_kin_from" in state else KIN_SHARE


def kin_pairs(data, all_words: list[EmojiWords]) -> tuple[list[EmojiWords], list[np.ndarray]]:
    """The held-out emoji's words (colour dropped: it is read off the held-out picture) and, for each, the
    training-split indices of its subgroup's emoji. Skin-tone variants are left out on both sides: "medium skin
    tone" said of another person's picture would teach the tones wrong, and each emoji then counts once. Emoji
    whose subgroup has no training emoji are left out."""
    toneless = np.array([not SKIN_TONE.search(name) for name in data.names])
    train_index = np.cumsum(~data.held_out) - 1  # position of each training emoji within the training split
    by_subgroup = collections.defaultdict(list)
    for i in np.flatnonzero(~data.held_out & toneless):
        by_subgroup[data.subgroups[i]].append(int(train_index[i]))
    train_words = [all_words[i] for i in np.flatnonzero(~data.held_out)]
    words, siblings = [], []
    for i in np.flatnonzero(data.held_out & toneless):
        kin = [j for j in by_subgroup[data.subgroups[i]] if colour_agrees(all_words[i].name, train_words[j].colour)]
        if kin:
            words.append(dataclasses.replace(all_words[i], colour=None))
            siblings.append(np.array(kin))
    return words, siblings


def colour_agrees(name: str, colour: str | None) -> bool:
    """Whether a training picture of `colour` may stand for an emoji called `name`: any, unless the name says a
    colour ("purple heart", "white circle"), and then only that colour (read off the training picture), so the
    colour words keep their meaning."""
    said = COLOUR_WORDS & set(name.lower().split())
    return not said or colour in said


class KinDraws:
    """Round 9's share of every batch (round 10's, wider): a held-out emoji's caption on a training emoji of its
    subgroup."""

    def __init__(self, data, all_words: list[EmojiWords], avoid: frozenset[str], fillers: tuple[str, ...] = (),
                 context: tuple[str, ...] = (), share: float = KIN_SHARE):
        self.words, self.siblings = kin_pairs(data, all_words)
        self.captions = [without_held_out(caption_choices(w), avoid) for w in self.words]
        self.avoid, self.fillers, self.context, self.share = avoid, fillers, context, share

    def swap_in(self, rng: np.random.Generator, idx: np.ndarray, texts: list[str], drop: float):
        """`share` of the batch replaced by kin draws (dropped to "" as often as any caption)."""
        idx, texts = idx.copy(), list(texts)
        if not self.words:  # no held-out emoji has a training emoji of its subgroup (tiny data sets)
            return idx, texts
        for k in np.flatnonzero(rng.random(len(idx)) < self.share):
            held = int(rng.integers(len(self.words)))
            idx[k] = int(rng.choice(self.siblings[held]))
            texts[k] = pick_training_caption(rng, self.captions[held], self.words[held], drop, self.avoid,
                                             self.fillers, self.context)
        return idx, texts
