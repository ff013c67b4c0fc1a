"""The image model's captions and its CLIP tokenizer, whose BPE vocabulary is learnt from those captions.

Each emoji is described several ways (name, alias, Unicode subgroup and group); training draws one per step.
The tokenizer is a standard `CLIPTokenizer` folder, so the exported pipeline loads with plain diffusers.
"""

from __future__ import annotations

import collections
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")
MAX_TOKENS = 77  # StableDiffusionPipeline pads prompts to tokenizer.model_max_length


# How people ask for a picture ("a cute dog", "an emoji of a pizza"); "{}" is the subject.
# Round 2 of the model learns these beside the plain names, so typed sentences land where names do.
PHRASES = (
    "{}", "a {}", "the {}", "{} emoji", "an emoji of a {}", "a picture of a {}", "a drawing of a {}",
    "an icon of a {}", "a {} icon", "a cute {}", "a little {}", "a cartoon {}", "an image of a {}", "a small {}",
    "a {}, emoji style", "a {} on a white background",
)
PHRASED_SHARE = 0.5  # of the caption weight: the rest stays on the plain forms the first round learnt
COMMON_KEYWORD = 40  # a CLDR keyword shared by more emoji ("face", "hand") names none of them on its own


@dataclass(frozen=True)
class EmojiWords:
    """Everything a caption can say about one emoji."""

    name: str
    aliases: tuple[str, ...]
    group: str
    subgroup: str
    keywords: tuple[str, ...] = ()  # CLDR keywords, the too-common ones already removed
    colour: str | None = None  # read off the glyph's pixels
    demonyms: tuple[str, ...] = ()  # a flag's country as an adjective ("italian"), round 5 on
    synonyms: tuple[str, ...] = ()  # everyday words neither name nor keywords use ("puppy"), round 6 on


def plain_choices(words: EmojiWords) -> list[tuple[str, float]]:
    """The first round's captions: name, alias, Unicode subgroup and group."""
    sub = words.subgroup.replace("-", " ")  # "face-smiling" -> "face smiling"
    grp = words.group.replace("&", "and").lower()  # "Food & Drink" -> "food and drink"
    choices = [(words.name, 0.4), (f"{words.name}, {sub}", 0.2), (sub, 0.15), (f"{sub}, {grp}", 0.1)]
    for alias in words.aliases:
        choices.append((alias, 0.15 / len(words.aliases)))
    return choices


def subjects(words: EmojiWords) -> list[tuple[str, float]]:
    """What a sentence can call the emoji: its name, aliases, keywords, and "<colour> <keyword>"."""
    said_as_adjective = [(f"{d} flag", 0.3 / len(words.demonyms)) for d in words.demonyms]
    if words.group == "Flags" and words.subgroup == "country-flag":
        country = words.name
        return [(f"flag of {country}", 0.4), (f"{country} flag", 0.3), (country, 0.3)] + said_as_adjective
    out = [(words.name, 0.35)] + said_as_adjective
    out += [(alias, 0.15 / len(words.aliases)) for alias in words.aliases]
    nouns = [k for k in words.keywords if k != words.name]
    out += [(k, 0.3 / len(nouns)) for k in nouns]
    out += [(s, 0.3 / len(words.synonyms)) for s in words.synonyms]
    if words.colour and words.colour not in words.name.split():
        base = [k for k in (*nouns, *words.synonyms, words.name) if " " not in k] or [words.name]
        out += [(f"{words.colour} {noun}", 0.2 / len(base)) for noun in base]
    return out


def with_article(phrase: str, subject: str) -> str:
    """phrase.format(subject), with "a" before the subject turned into "an" before a vowel."""
    if subject[:1] in "aeiou":
        phrase = re.sub(r"\ba \{\}", "an {}", phrase)
    return phrase.format(subject)


def caption_choices(words: EmojiWords, phrased: bool = True) -> list[tuple[str, float]]:
    """Every way we describe one emoji, with how often each is drawn."""
    plain = plain_choices(words)
    if not phrased:
        return plain
    phrased_choices: dict[str, float] = {}
    subject_list = subjects(words)
    for subject, weight in subject_list:
        for phrase in PHRASES:
            text = with_article(phrase, subject)
            phrased_choices[text] = phrased_choices.get(text, 0.0) + weight / len(PHRASES)
    total_plain = sum(w for _, w in plain)
    total_phrased = sum(phrased_choices.values())
    merged: dict[str, float] = {}  # a caption both forms make ("dog face" is a name and a bare subject) is one choice
    for caption, weight in [(c, (1 - PHRASED_SHARE) * w / total_plain) for c, w in plain] + [
        (c, PHRASED_SHARE * w / total_phrased) for c, w in phrased_choices.items()
    ]:
        merged[caption] = merged.get(caption, 0.0) + weight
    return list(merged.items())


# Round 4: captions that compose the way typed sentences do. Describing words that fit any emoji go before the
# subject, and requests go around the whole phrase. Every emoji gets them alike, so none of these words can pull a
# picture toward one emoji. Round 3 drew faces for "a big red circle", because "big" had only ever been seen in
# "grinning face with big eyes".
DESCRIBING = (
    "big", "large", "huge", "giant", "small", "tiny", "little", "cute", "shiny", "glossy", "simple", "pretty",
    "beautiful", "nice", "lovely", "bright", "colourful", "colorful", "cartoon", "flat", "detailed", "classic",
    "new", "old", "plain", "funny", "cool", "fancy", "sweet", "perfect",
)
REQUESTS = (
    "{} please", "please draw {}", "draw {}", "draw me {}", "i want {}", "i would like {}", "show me {}",
    "can i have {}", "give me {}", "make {}", "generate {}", "{} for my friend", "{} for me", "{} today",
    "{}, in emoji style", "just {}", "{} again", "maybe {}", "how about {}", "{}!",
)
ARTICLES = ("a", "the", "one", "")  # "a" becomes "an" before a vowel
# The words composing adds to any emoji's caption: they name nothing (a synonym holding one is dropped)
COMPOSING_WORDS = frozenset({*DESCRIBING, *(word for r in REQUESTS for word in re.findall(r"[a-z]+", r))})
COMPOSED_SHARE = 0.35  # of the captions drawn once round 4 starts; the rest are the round-3 choices


def article_phrase(article: str, describing: tuple[str, ...], subject: str) -> str:
    """ "a big shiny red heart": an article (an before a vowel), describing words, the subject."""
    return with_article(f"{article} {{}}" if article else "{}", " ".join((*describing, subject)))


def composed_caption(rng: np.random.Generator, words: EmojiWords, avoid: frozenset[str] = frozenset(),
                     fillers: tuple[str, ...] = (), context: tuple[str, ...] = ()) -> str:
    """One caption composed of an article, up to two describing words, one of the emoji's subjects and, half the
    time, a request around it; never one in `avoid` (the evaluation's held-out sentences: "a" + "big" + "red
    circle" is one of them). With `fillers` (round 5 on), FILLER_SHARE of them also carry words that name nothing;
    with `context` (round 8 on), CONTEXT_SHARE of them end with a phrase about another emoji's subject."""
    for _ in range(20):
        caption = _compose(rng, words)
        if context and rng.random() < CONTEXT_SHARE:
            caption = with_context(rng, caption, context, avoid) or caption
        elif fillers and rng.random() < FILLER_SHARE:
            caption = with_filler_words(rng, caption, fillers)
        if caption.lower() not in avoid:
            return caption
    return words.name


def _compose(rng: np.random.Generator, words: EmojiWords) -> str:
    subject = pick_caption(rng, subjects(words), drop=0.0)
    count = int(rng.choice(3, p=(0.3, 0.5, 0.2)))
    describing = tuple(DESCRIBING[i] for i in rng.choice(len(DESCRIBING), count, replace=False))
    phrase = article_phrase(ARTICLES[int(rng.integers(len(ARTICLES)))], describing, subject)
    if rng.random() < 0.5:
        phrase = REQUESTS[int(rng.integers(len(REQUESTS)))].format(phrase)
    return phrase


# Round 5: words that name no emoji, around a composed caption. Round 4's model turned "a blue heart for my mum" and
# "an apple for my friend's birthday card" into other emoji: the BPE pieces of a word it never learnt ("mum") carry
# whatever the emoji names sharing them taught. Common English words that name nothing (from a word-frequency list,
# every word any emoji's captions use left out) teach it that such words leave the subject alone.
FILLER_FORMS = (
    "{phrase} for my {word}", "{phrase} for the {word}", "{phrase} for {word}", "{phrase} {word}", "{phrase}, {word}",
    "{word} {phrase}", "{phrase} with {word}", "{phrase} for my {word} {other}", "{phrase} for a {word} {other}",
    "{word} {other} {phrase}", "{phrase} on my {word}", "{phrase} in the {word}",
)
FILLER_SHARE = 0.5  # of composed captions, once a run trains with fillers
FILLER_VOCABULARY = 6_000  # fillers come from the most frequent English words: the ones people type


def with_filler_words(rng: np.random.Generator, caption: str, fillers: tuple[str, ...]) -> str:
    """The caption inside one of FILLER_FORMS, with one or two of `fillers` (words that name no emoji)."""
    word, other = (fillers[int(i)] for i in rng.integers(len(fillers), size=2))
    return FILLER_FORMS[int(rng.integers(len(FILLER_FORMS)))].format(phrase=caption, word=word, other=other)


# Round 8: a typed sentence says its subject first, then where it is, what it has, who it is for, and the words it
# uses there often name other emoji ("a pine tree in the snow", "a fox with a bushy tail", "the british flag at the
# olympics"). Round 7's captions had only words that name nothing after the subject, so a word naming an emoji pulled
# the picture wherever it stood. These captions end with another emoji's subject; the picture stays the first one's.
CONTEXT_FORMS = (
    "{phrase} with {other}", "{phrase} in {other}", "{phrase} on {other}", "{phrase} at {other}",
    "{phrase} for {other}", "{phrase} next to {other}", "{phrase} near {other}", "{phrase} by {other}",
    "{phrase} under {other}", "{phrase} and {other} behind it", "{phrase} with {other} on it",
)
CONTEXT_SHARE = 0.4  # of composed captions, once a run trains with context (the rest may carry fillers as before)
CONTEXT_WORDS = 2  # a context subject has at most this many words: typed sentences say "the snow", not a full name


def context_subjects(all_words: list[EmojiWords]) -> tuple[str, ...]:
    """Every short subject any emoji can be called by (each once, in a fixed order): what a context phrase names."""
    found = {s.lower() for w in all_words for s, _ in subjects(w) if len(s.split()) <= CONTEXT_WORDS}
    return tuple(sorted(found))


def with_context(rng: np.random.Generator, caption: str, context: tuple[str, ...],
                 avoid: frozenset[str] = frozenset()) -> str | None:
    """The caption inside one of CONTEXT_FORMS, another subject after it with an article ("a red heart in the
    snow"); None when the draws keep pairing two things a sentence in `avoid` pairs (see pairs_held_out)."""
    for _ in range(5):
        other = context[int(rng.integers(len(context)))]
        if pairs_held_out(caption, other, avoid):
            continue
        other = article_phrase(ARTICLES[int(rng.integers(len(ARTICLES)))], (), other)
        return CONTEXT_FORMS[int(rng.integers(len(CONTEXT_FORMS)))].format(phrase=caption, other=other)
    return None


_NAMING_NOTHING = COMPOSING_WORDS | {"a", "an", "the", "one"}


def content_words(text: str) -> frozenset[str]:
    """A text's words without articles and the composer's describing and request words."""
    return frozenset(re.findall(r"[a-z0-9']+", text.lower())) - _NAMING_NOTHING


@functools.lru_cache(maxsize=4)
def _held_out_words(avoid: frozenset[str]) -> tuple[frozenset[str], ...]:
    return tuple(content_words(sentence) for sentence in avoid)


def pairs_held_out(caption: str, other: str, avoid: frozenset[str]) -> bool:
    """Whether a held-out sentence holds all of `other`'s words and a word of `caption` too: "penguin" with "ice"
    never trains when "a penguin on the ice" is held out, whatever the articles, so the evaluation stays unseen."""
    said, named = content_words(caption), content_words(other)
    return any(named <= words and said & words for words in _held_out_words(avoid))


def caption_vocabulary(all_words: list[EmojiWords], sentences=()) -> set[str]:
    """Every word a caption of these emoji can hold, and every word of `sentences` (the evaluation's)."""
    texts = [c for w in all_words for c, _ in caption_choices(w)]
    texts += [s for w in all_words for s, _ in subjects(w)] + list(sentences)
    texts += [*DESCRIBING, *REQUESTS, *PHRASES, *ARTICLES]
    return {word for text in texts for word in re.findall(r"[a-z]+", text.lower())}


def filler_words(all_words: list[EmojiWords], held_out_sentences=(), size: int = FILLER_VOCABULARY) -> tuple[str, ...]:
    """Frequent English words (wordfreq's list) that no caption of any emoji uses, nor any held-out sentence; a
    word is left out with its plural or singular too ("hearts" with "heart")."""
    import wordfreq

    known = caption_vocabulary(all_words, held_out_sentences)

    def names_something(word: str) -> bool:
        forms = {word, word + "s", word + "es", word.removesuffix("s"), word.removesuffix("es")}
        return bool(forms & known)

    return tuple(w for w in wordfreq.top_n_list("en", size)
                 if w.isascii() and w.isalpha() and len(w) >= 3 and not names_something(w))


def composed_forms(words: EmojiWords):
    """Every caption composed_caption can make for one emoji (for the test that keeps typed sentences held out)."""
    import itertools

    lists = [()] + [(d,) for d in DESCRIBING] + list(itertools.permutations(DESCRIBING, 2))
    for subject, _ in subjects(words):
        for article in ARTICLES:
            for describing in lists:
                phrase = article_phrase(article, describing, subject)
                yield phrase
                for request in REQUESTS:
                    yield request.format(phrase)


def pick_training_caption(rng: np.random.Generator, choices: list[tuple[str, float]], words: EmojiWords | None,
                          drop: float, avoid: frozenset[str] = frozenset(), fillers: tuple[str, ...] = (),
                          context: tuple[str, ...] = ()) -> str:
    """pick_caption, or (with `words`, round 4 on) a composed caption COMPOSED_SHARE of the time."""
    if words is None or rng.random() >= COMPOSED_SHARE:
        return pick_caption(rng, choices, drop)
    return "" if rng.random() < drop else composed_caption(rng, words, avoid, fillers, context)


def emoji_words(data, keyword_table: dict[str, tuple[str, ...]], colours: list[str | None],
                demonyms: bool = False, synonyms: bool = False) -> list[EmojiWords]:
    """EmojiWords for each emoji of a data set, dropping keywords too common to name anything; with `demonyms`
    (round 5 on), flags also get their country's adjective; with `synonyms` (round 6 on), everyday words for
    the thing (studio/data/synonyms.py)."""
    from studio.data.demonyms import demonyms_for
    from studio.data.emoji_words import keywords_for

    counts = collections.Counter(k for c in data.chars for k in keywords_for(c, keyword_table))
    out = []
    for i, char in enumerate(data.chars):
        keywords = tuple(
            k for k in keywords_for(char, keyword_table) if counts[k] <= COMMON_KEYWORD and any(ch.isalpha() for ch in k)
        )
        out.append(
            EmojiWords(data.names[i], data.aliases[i], data.groups[i], data.subgroups[i], keywords, colours[i],
                       demonyms_for(char) if demonyms else ())
        )
    return with_synonyms(out) if synonyms else out


def with_synonyms(all_words: list[EmojiWords]) -> list[EmojiWords]:
    """Each emoji's words with its everyday synonyms: checked against a word-frequency list, never another emoji's
    name or alias, never a word that composes any caption (a describing word, a request)."""
    import dataclasses

    from studio.data.emoji import SKIN_TONE
    from studio.data.synonyms import everyday_synonyms

    names = [SKIN_TONE.sub("", w.name).strip() for w in all_words]
    other_names = {n.lower() for w in all_words for n in (w.name, *w.aliases)}
    own = [{w.name, *w.aliases, *w.keywords} for w in all_words]
    found = everyday_synonyms(names, other_names, own)
    return [dataclasses.replace(w, synonyms=tuple(s for s in found[i] if not set(s.split()) & COMPOSING_WORDS))
            for i, w in enumerate(all_words)]


def everyday_caption(rng: np.random.Generator, words: EmojiWords, avoid: frozenset[str] = frozenset(),
                     fillers: tuple[str, ...] = (), context: tuple[str, ...] = ()) -> str:
    """Round 7: a caption whose subject is one of the emoji's everyday words (a synonym, a flag's adjective), said
    the ways PHRASES and the composer say a name; never one in `avoid`."""
    said = [*words.synonyms, *(f"{d} flag" for d in words.demonyms)] or [words.name]
    subject = said[int(rng.integers(len(said)))]
    if words.colour and " " not in subject and rng.random() < 0.2:
        subject = f"{words.colour} {subject}"
    if rng.random() < 0.5:
        return composed_caption(rng, EmojiWords(subject, (), "", ""), avoid, fillers, context)
    caption = with_article(PHRASES[int(rng.integers(len(PHRASES)))], subject)
    return caption if caption.lower() not in avoid else words.name


def everyday_word_set(all_words: list[EmojiWords]) -> set[str]:
    """The single words of every emoji's synonyms and flags' adjectives (round 7 makes them whole tokens)."""
    return {word for w in all_words for said in (*w.synonyms, *w.demonyms) for word in re.findall(r"[a-z]+", said.lower())}


def without_held_out(choices: list[tuple[str, float]], held_out: frozenset[str]) -> list[tuple[str, float]]:
    """A caption table without the evaluation's sentences: a new word can make a held-out sentence a caption."""
    kept = [(c, w) for c, w in choices if c.lower() not in held_out]
    return kept or choices


def pick_caption(rng: np.random.Generator, choices: list[tuple[str, float]], drop: float) -> str:
    """One caption, or "" with probability `drop` (the unconditional prompt classifier-free guidance uses)."""
    if rng.random() < drop:
        return ""
    weights = np.array([w for _, w in choices])
    return choices[int(rng.choice(len(choices), p=weights / weights.sum()))][0]


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) byte -> printable character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars, strict=False)}


# The pre-tokenizer CLIP uses (letters, single digits, runs of punctuation), on lower-cased text.
_CLIP_WORDS = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_+", re.IGNORECASE)


def caption_words(captions) -> collections.Counter:
    byte_chars = _bytes_to_unicode()
    counts: collections.Counter = collections.Counter()
    for caption in captions:
        for word in _CLIP_WORDS.findall(caption.lower()):
            counts["".join(byte_chars[b] for b in word.encode("utf-8"))] += 1
    return counts


def learn_bpe_merges(word_counts: collections.Counter, max_merges: int) -> list[tuple[str, str]]:
    """Plain BPE training (most frequent pair first, ties by text), with CLIP's '</w>' end-of-word marker."""
    words = {tuple(w[:-1]) + (w[-1] + "</w>",): c for w, c in word_counts.items()}
    merges = []
    for _ in range(max_merges):
        pairs: collections.Counter = collections.Counter()
        for symbols, count in words.items():
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        if pairs[best] < 2:
            break
        merges.append(best)
        merged = {}
        for symbols, count in words.items():
            out = tuple(join_pair(symbols, best))
            merged[out] = merged.get(out, 0) + count
        words = merged
    return merges


def join_pair(symbols, pair: tuple[str, str]) -> list[str]:
    """The symbols with every occurrence of `pair`, left to right, joined into one."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def write_clip_tokenizer(captions, folder: Path, max_merges: int):
    """Learn a BPE vocabulary from the captions and save it as a standard CLIPTokenizer folder."""
    from transformers import CLIPTokenizer

    merges = learn_bpe_merges(caption_words(captions), max_merges)
    base = list(_bytes_to_unicode().values())
    tokens = base + [c + "</w>" for c in base] + ["".join(m) for m in merges] + list(SPECIAL_TOKENS)
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    folder.mkdir(parents=True, exist_ok=True)
    save_vocab_and_merges(folder, vocab, merges)
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=MAX_TOKENS)
    tokenizer.save_pretrained(folder)
    return tokenizer


def load_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(folder, model_max_length=MAX_TOKENS)


def tokenize(tokenizer, captions: list[str]) -> torch.Tensor:
    """Exactly what StableDiffusionPipeline.encode_prompt does, so training and sampling see the same ids."""
    return tokenizer(
        captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


def write_vocab_and_merges(folder: Path) -> None:
    """vocab.json + merges.txt beside tokenizer.json, so older transformers (slow CLIPTokenizer) load it too."""
    save_vocab_and_merges(folder, *read_vocab_and_merges(folder))


def read_vocab_and_merges(folder: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The BPE vocabulary and merges (in rank order) of a saved tokenizer.json."""
    model = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]
    return dict(model["vocab"]), [tuple(m.split(" ") if isinstance(m, str) else m) for m in model["merges"]]


def save_vocab_and_merges(folder: Path, vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
    """A CLIPTokenizer's vocab.json and merges.txt."""
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_text = "#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n"
    (folder / "merges.txt").write_text(merges_text, encoding="utf-8")


# Round 7: whole-word tokens for the everyday words. The first round learnt its BPE vocabulary from the emoji's
# names, so a word round 6 added breaks into pieces that already mean something else: "kitten" is "kit" + "ten</w>",
# and "ten" is a clock. Appending merges that join such a word's pieces makes it one new token, whose embedding
# can start from what the word means (image_run.Run.grow_text_vocabulary) instead of from its pieces.
def byte_word(word: str) -> str:
    """A pre-tokenized word in the byte characters the vocabulary and merges are written in."""
    byte_chars = _bytes_to_unicode()
    return "".join(byte_chars[b] for b in word.lower().encode("utf-8"))


def bpe_pieces(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """CLIP's BPE of one byte-character word: merge the best-ranked adjacent pair everywhere, until none is ranked."""
    symbols = list(word[:-1]) + [word[-1] + "</w>"]
    while len(symbols) > 1:
        pairs = set(zip(symbols, symbols[1:], strict=False))
        best = min(pairs, key=lambda pair: ranks.get(pair, float("inf")))
        if best not in ranks:
            break
        symbols = join_pair(symbols, best)
    return symbols


def whole_word_merges(words, protected, merges: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[str]]:
    """Merges to append so each of `words` becomes one token, and the words that did. A word is skipped when one of
    its merges would also join two pieces of a `protected` word (the words the model has learnt), so no learnt
    caption tokenizes differently: appended merges rank after every old one, so they only act on a word's final
    pieces."""
    ranks = {pair: i for i, pair in enumerate(merges)}
    learnt_pairs = set()
    for word in protected:
        pieces = bpe_pieces(byte_word(word), ranks)
        learnt_pairs.update(zip(pieces, pieces[1:], strict=False))
    added: list[tuple[str, str]] = []
    grown = []
    for word in sorted(set(words) - set(protected)):
        chain = merge_chain(bpe_pieces(byte_word(word), ranks), learnt_pairs)
        if not chain:
            continue
        for pair in chain:
            ranks.setdefault(pair, len(ranks))
            if pair not in added and ranks[pair] >= len(merges):
                added.append(pair)
        grown.append(word)
    # A later word's merge can split an earlier word before its own chain runs: keep only words that end whole.
    return added, [word for word in grown if len(bpe_pieces(byte_word(word), ranks)) == 1]


def merge_chain(pieces: list[str], learnt_pairs: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """Merges that join `pieces` into one token, left to right or else right to left, none of them a pair found in
    a learnt word's pieces; [] when neither order avoids them (or the word is already one token)."""
    left = [("".join(pieces[:k]), pieces[k]) for k in range(1, len(pieces))]
    right = [(pieces[k - 1], "".join(pieces[k:])) for k in range(len(pieces) - 1, 0, -1)]
    return next((chain for chain in (left, right) if chain and not learnt_pairs & set(chain)), [])


def grow_tokenizer(tokenizer, words, protected, folder: Path):
    """The tokenizer with each of `words` made one token (new ids after every old one), saved to `folder` as a
    standard CLIPTokenizer folder; returns it, the words that became one token, and the appended merges."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    vocab, merges = read_vocab_and_merges(folder)
    added, grown = whole_word_merges(words, protected, merges)
    for pair in added:
        vocab.setdefault("".join(pair), len(vocab))
    (folder / "tokenizer.json").unlink()
    save_vocab_and_merges(folder, vocab, merges + added)
    grown_tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"),
                                    model_max_length=MAX_TOKENS)
    grown_tokenizer.save_pretrained(folder)
    return grown_tokenizer, grown, added
