"""Measuring the text models: held-out bits/byte per corpus source (text-gpt vs the Markov model), and speed.

    python -m studio.training.text compare   # per-source held-out figures of GPT weights and an order-5 Markov model
    python -m studio.training.text bench     # tokens/s through the app's loop vs model.generate
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from studio.data import text as text_data
from studio.training import run as run_files
from studio.training.text_model import held_out_bits_per_byte, model_from_settings, settings_from_config
from studio.training.text_tokens import bytes_per_token, encode_stream, require_full_corpus


def speed_figures(model_ref: str, new_tokens: int = 200, runs: int = 5, prompt: str = "The meaning of life") -> dict:
    """Same settings, interleaved runs: our streaming loop (with previews) vs bare `model.generate`.

    Medians, so one run slowed by another process on a shared machine does not decide the ratio.
    """
    from studio.core import catalog
    from studio.engine.text import generate as engine_text
    from studio.engine.text.models import load_text_model

    model = load_text_model(catalog.resolve(model_ref))
    settings = engine_text.TextSettings(max_new_tokens=new_tokens, repetition_window=0)
    ours, theirs, first = [], [], []
    ids = torch.tensor([model.encode(prompt)])
    for run in range(runs):
        started = time.perf_counter()
        result = engine_text.generate(model, prompt, settings, seed=run, report=lambda progress: None)
        produced = len(result.token_ids) + (result.finish_reason == "eos")
        ours.append(produced / (time.perf_counter() - started))
        first.append(result.first_token_s)
        started = time.perf_counter()
        out = model.model.generate(
            ids,
            max_new_tokens=produced,
            min_new_tokens=produced,
            do_sample=True,
            temperature=settings.temperature,
            top_k=settings.top_k,
            top_p=settings.top_p,
            repetition_penalty=settings.repetition_penalty,
            pad_token_id=model.eos_id,
        )
        theirs.append((out.shape[1] - ids.shape[1]) / (time.perf_counter() - started))
    median = lambda values: sorted(values)[len(values) // 2]  # noqa: E731
    return {
        "model": model_ref,
        "tokens_per_s_app": median(ours),
        "tokens_per_s_generate": median(theirs),
        "ratio": median(ours) / median(theirs),
        "first_token_s": median(first),
        "threads": torch.get_num_threads(),
    }


def benchmark(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    print(json.dumps(speed_figures(args.model, args.tokens, args.runs), indent=2))


def per_source_figures(weights: Path, tokenizer_dir: Path, order: int = 5) -> dict:
    """Held-out bits/byte of GPT weights and of an order-n Markov model, overall and for each corpus source.

    The Markov model is trained here on the same training entries (about two seconds), so the figures
    always compare the two models on the same text.
    """
    from transformers import AutoTokenizer

    from studio.core import ngram as markov

    require_full_corpus()
    entries = text_data.load_entries()
    train_texts, _ = text_data.split_entries(entries)
    ngrams = markov.train_byte_model(train_texts, order=order)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, model_max_length=1_000_000)  # whole entries
    token_bytes = bytes_per_token(tokenizer)
    settings = shape_beside(weights)
    context = settings["context"]
    model = model_from_settings(settings, len(tokenizer), dropout=0.0)
    run_files.load_weights(model, weights)
    model.tie_weights()
    held_by_source: dict[str, list[str]] = {"all": []}
    for entry in entries:
        if text_data.is_held_out(entry.text):
            held_by_source.setdefault(entry.source.split("/")[0], []).append(entry.text)
            held_by_source["all"].append(entry.text)
    figures = {}
    for source, texts in held_by_source.items():
        gpt = held_out_bits_per_byte(model, encode_stream(tokenizer, texts), token_bytes, context)
        ngram = ngrams.bits_per_symbol(markov.texts_to_symbols(texts))
        figures[source] = {
            "held_out_bytes": sum(len(t.encode("utf-8")) for t in texts),
            "gpt_bpb": round(gpt, 4),
            "markov_bpb": round(ngram, 4),
            "gpt_below_markov_percent": round(100 * (1 - gpt / ngram), 1),
        }
    return figures


def shape_beside(weights: Path) -> dict:
    """The settings of the model whose weights these are: a model folder has config.json, a run folder settings.json."""
    if (weights.parent / "config.json").exists():
        return settings_from_config(json.loads((weights.parent / "config.json").read_text()))
    if (weights.parent / "settings.json").exists():
        return json.loads((weights.parent / "settings.json").read_text())
    raise SystemExit(f"no config.json or settings.json beside {weights}: can't tell the model's shape")


def compare(args: argparse.Namespace) -> None:
    weights = Path(args.weights)
    tokenizer_dir = Path(args.tokenizer) if args.tokenizer else weights.parent
    if not (tokenizer_dir / "tokenizer.json").exists():
        tokenizer_dir = tokenizer_dir / "tokenizer"
    print(json.dumps(per_source_figures(weights, tokenizer_dir, args.order), indent=2))
