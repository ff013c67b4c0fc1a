"""The n-gram text model: order-5 Kneser-Ney over bytes, the baseline text-gpt is measured against.

    python -m studio.training.text markov   # -> models/text-markov/ and <runs>/text-markov/baseline.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from studio import paths
from studio.data import text as text_data
from studio.training import run as run_files
from studio.training.text_model import MARKOV_NAME
from studio.training.text_tokens import require_full_corpus


def build_markov(args: argparse.Namespace) -> None:
    from studio.core import ngram as markov

    require_full_corpus()
    entries = text_data.load_entries()
    train_texts, held_texts = text_data.split_entries(entries)
    started = time.monotonic()
    model = markov.train_byte_model(train_texts, order=args.order)
    trained = time.monotonic() - started
    bpb = model.bits_per_symbol(markov.texts_to_symbols(held_texts))
    out = Path(args.out) if args.out else paths.builtin_model_dir(MARKOV_NAME)
    info = {
        "held_out_bpb": bpb,
        "order": args.order,
        "smoothing": model.smoothing_name,
        "train_seconds": trained,
        "train_bytes": sum(len(t.encode()) for t in train_texts),
    }
    pruned = model
    if args.prune:
        pruned = model.pruned(args.prune)
        info["pruned_min_count"] = args.prune
        info["held_out_bpb_shipped"] = pruned.bits_per_symbol(markov.texts_to_symbols(held_texts))
    # Other orders, for the card: where the order-5 baseline sits.
    info["by_order"] = {
        order: markov.train_byte_model(train_texts, order=order).bits_per_symbol(markov.texts_to_symbols(held_texts))
        for order in (3, 4, 6)
        if order != args.order
    }
    info["samples"] = markov_samples(pruned)
    pruned.save(
        out,
        extra_card=markov_card(info, text_data.corpus_summary(entries)),
        extra_config={"tokens": markov.BYTE_TOKENS},
    )
    baseline = run_files.run_dir(MARKOV_NAME)
    (baseline / "baseline.json").write_text(json.dumps(info, indent=2))
    size = run_files.folder_size(out)
    print(json.dumps({**info, "folder": str(out), "folder_mb": round(size / 1e6, 2)}, indent=2))


def markov_samples(ngrams) -> list[str]:
    from studio.engine.text import generate as engine_text
    from studio.engine.text.models import MarkovTextModel

    model = MarkovTextModel(ngrams)
    settings = engine_text.TextSettings(max_new_tokens=300, temperature=0.8)
    return [
        prompt + engine_text.generate(model, prompt, settings, seed=i).text
        for i, prompt in enumerate(["The ", "A hacker "])
    ]


def markov_card(info: dict, summary: dict) -> str:
    shipped = info.get("held_out_bpb_shipped")
    prune_line = (
        f"The shipped counts drop {info['order'] + 1}-grams seen fewer than {info['pruned_min_count']} times "
        f"(to stay small): held-out {shipped:.3f} bits/byte as shipped.\n"
        if shipped
        else ""
    )
    orders = ", ".join(f"order {k}: {v:.3f}" for k, v in sorted(info.get("by_order", {}).items()))
    samples = "\n\n".join("```\n" + t.strip() + "\n```" for t in info.get("samples", []))
    return f"""# text-markov — the built-in n-gram text model of Latent Studio

An order-{info["order"]} Markov model over bytes (each byte predicted from the {info["order"]} before it), with
{info["smoothing"]} smoothing. Trained in {info["train_seconds"]:.1f} s by `python -m studio.training.text markov`.

## Data and licence
Same corpus and split as `text-gpt`:
{text_data.corpus_markdown(summary)}
- {text_data.WEIGHTS_LICENCE} (The counts hold the corpus's short byte sequences outright.)

## Evaluation
Held-out: {info["held_out_bpb"]:.3f} bits/byte (full counts; the baseline text-gpt is compared with).
{prune_line}Other orders on the same split: {orders}.

## Samples (temperature 0.8, top-k 40, top-p 0.95, repetition penalty 1.1; prompts "The ", "A hacker ")
{samples}

## Format
`config.json` ("model_type": "studio-markov"), `counts.safetensors`: per n-gram order, the sorted n-gram codes
(base-vocab integers) and their counts (raw for the highest order, continuation counts below), read by
`studio/core/ngram.py`.
"""
