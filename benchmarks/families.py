"""The model families side by side (issue 22): Markov, RNN and transformer built-ins, same prompts, same sampling
settings and seeds, through the app's own loops (the ones the engine's jobs call).

Text: tokens/s of each family (a token is a byte for the Markov model, a BPE piece for the others, so chars/s too).
Music: tokens/s of each family and the share of generated notes in the asked key, under the same grammar (the
in-key rate the music-rnn card quotes for the RNN alone, here for all three, measured the same way).
Held-out figures are quoted from the model cards (their JSON), not re-measured.
Run: python benchmarks/families.py [--threads 2] [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import write_results  # noqa: E402

TEXT_MODELS = ("builtin:text-markov", "builtin:text-rnn", "builtin:text-gpt")
MUSIC_MODELS = ("builtin:music-markov", "builtin:music-rnn", "builtin:music-gpt")
TEXT_PROMPTS = ("The meaning of life is", "A programmer is a person who", "Never trust a")
MUSIC_PROMPTS = ("jig in A minor", "slow chorale in D minor", "waltz in F major", "hornpipe in B flat")


def text_families(seeds: int, tokens: int) -> dict:
    from studio.core import catalog
    from studio.engine.text import generate as text

    settings = text.TextSettings.from_params({"temperature": 0.8, "top_k": 40, "top_p": 0.95, "max_new_tokens": tokens,
                                              "stop": []})
    out = {}
    for ref in TEXT_MODELS:
        model = text.load_text_model(catalog.resolve(ref), "cpu", "float32")
        text.generate(model, "Warm", settings, seed=0, report=None, cancelled=lambda: False)  # warm-up
        rates, chars = [], []
        for prompt in TEXT_PROMPTS:
            for seed in range(seeds):
                began = time.perf_counter()
                result = text.generate(model, prompt, settings, seed=seed, report=None, cancelled=lambda: False)
                seconds = time.perf_counter() - began
                rates.append(len(result.token_ids) / seconds)
                chars.append(len(result.text) / seconds)
        out[ref] = {"tokens_per_s": round(statistics.median(rates), 1), "chars_per_s": round(statistics.median(chars), 1)}
    return out


def music_families(seeds: int, bars: int) -> dict:
    from studio.core import catalog
    from studio.core.recipe import Recipe
    from studio.engine.music.generate import generate
    from studio.engine.music.models import load_music_model
    from studio.engine.music.piece import in_key_fraction

    out = {}
    for ref in MUSIC_MODELS:
        model = load_music_model(catalog.resolve(ref), "cpu")
        rates, in_key = [], []
        for prompt in MUSIC_PROMPTS:
            for seed in range(seeds):
                recipe = Recipe("music", prompt=prompt, model=ref, seed=seed, params={"bars": bars})
                result = generate(model, recipe)
                rates.append(len(result.tokens) / result.seconds)
                in_key.append(in_key_fraction(result.piece.notes, result.piece.key))
        out[ref] = {"tokens_per_s": round(statistics.median(rates), 1),
                    "in_key": round(statistics.mean(in_key), 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--bars", type=int, default=8)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    write_results("families", {
        "threads": args.threads,
        "text": text_families(args.seeds, args.tokens),
        "music": music_families(args.seeds, args.bars),
        "settings": {"text": "temperature 0.8, top-k 40, top-p 0.95, 200 new tokens, 3 prompts x seeds",
                     "music": f"{args.bars} bars, 4 prompts naming a key, the app's grammar, seeds {args.seeds}"},
        "held_out": "quoted in models/text-rnn/MODEL_CARD.md and models/music-rnn/MODEL_CARD.md",
    })


if __name__ == "__main__":
    main()
