"""Train text-rnn, the built-in recurrent text model, on the same tokens as text-gpt.

    python -m studio.training.text_rnn train     # resumable; run folder $STUDIO_RUNS_DIR/text-rnn (or --run-dir)
    python -m studio.training.text_rnn export    # best weights -> models/text-rnn/ (fp16) + MODEL_CARD.md
    python -m studio.training.text_rnn cells --cell lstm   # LSTM vs GRU: held-out bits/byte after equal CPU time

Same tokenizer (text-gpt's byte-level BPE, copied from models/text-gpt), same corpus, same 5 % hash split and
the same held-out evaluation as text-gpt: `studio.training.text_tokens.prepare_data` builds the token streams and
`studio.training.text_model.held_out_bits_per_byte` scores them in the same 256-token windows, so the three families' figures are on
exactly the same predicted tokens (text-markov's on the same held-out entries, byte by byte).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from studio import paths
from studio.core import rnn
from studio.data import text as text_data
from studio.training import rnn as loop
from studio.training import run
from studio.training import text_model as gpt_model
from studio.training import text_tokens as gpt_tokens

MODEL_NAME = "text-rnn"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
PROMPTS = ("The", "A hacker", "Love is", "Q:")


@dataclass
class TextData:
    tokenizer: object
    train: np.ndarray  # token ids, entries joined by end-of-text
    held_out: np.ndarray
    token_bytes: np.ndarray  # bytes each token stands for (bits/byte = bits / these)
    summary: dict  # the corpus summary (entries, bytes per source)
    eval_context: int  # text-gpt's window for held-out scoring

    @property
    def eot(self) -> int:
        return int(self.tokenizer.convert_tokens_to_ids(gpt_tokens.EOT))


def gpt_folder() -> Path:
    return paths.builtin_model_dir("text-gpt")


def load_data(run_dir: Path) -> TextData:
    """text-gpt's tokenizer and token streams, cached in the run folder (tokenizer/, tokens.npz)."""
    gpt = gpt_folder()
    if not (gpt / "tokenizer.json").exists():
        sys.exit(f"text-rnn reads text-gpt's tokenizer, and {gpt / 'tokenizer.json'} is missing")
    tokenizer, train, held, summary = gpt_tokens.prepare_data(run_dir, 2048, gpt)
    context = json.loads((gpt / "config.json").read_text())["n_positions"]
    return TextData(tokenizer, train, held, gpt_tokens.bytes_per_token(tokenizer), summary, context)


class _HFStyle(torch.nn.Module):
    """The RNN dressed as a transformers LM (`model(ids).logits`), so text-gpt's scoring code runs on it unchanged.

    It leaves train/eval mode to its caller (the scoring code would switch the wrapped model back to training).
    """

    def __init__(self, model: rnn.RNNLanguageModel) -> None:
        super().__init__()
        self.net = model

    def forward(self, ids: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.net(ids)[0])

    def train(self, mode: bool = True) -> _HFStyle:
        return self


def held_out_bpb(model: rnn.RNNLanguageModel, data: TextData, stream: np.ndarray | None = None) -> float:
    stream = data.held_out if stream is None else stream
    return gpt_model.held_out_bits_per_byte(_HFStyle(model), stream, data.token_bytes, data.eval_context)


def sample_text(model: rnn.RNNLanguageModel, data: TextData, prompt: str, seed: int, new_tokens: int = 80) -> str:
    ids = data.tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
    out = rnn.sample(model, [data.eot, *ids], new_tokens, temperature=0.8, top_k=40, seed=seed, stop_id=data.eot)
    return prompt + data.tokenizer.decode(out)


def text_task(data: TextData, run_dir: Path | None = None, out: Path | None = None) -> loop.Task:
    def batch(step: int, schedule: loop.Schedule) -> torch.Tensor:
        rng = np.random.default_rng([schedule.seed, step])  # batch i depends on (seed, i) only: resumable
        return gpt_tokens.random_batch(data.train, schedule.batch, schedule.context, rng)

    return loop.Task(
        name=MODEL_NAME,
        unit="bits/byte",
        batch=batch,
        evaluate=lambda model: held_out_bpb(model, data),
        sample=lambda model, seed: sample_text(model, data, "The", seed, 40),
        export=(lambda folder: export(folder, data, out)) if run_dir is not None else None,
    )


# --- the figures the card compares against --------------------------------------------------------------------


def baselines(run_dir: Path, data: TextData) -> dict:
    """Held-out bits/byte of text-markov and text-gpt on the same held-out entries; measured once, cached."""
    path = run_dir / "baselines.json"
    if path.exists():
        return json.loads(path.read_text())
    from transformers import AutoModelForCausalLM

    from studio.core import ngram

    train_texts, held_texts = text_data.split_entries(text_data.load_entries())
    held_symbols = ngram.texts_to_symbols(held_texts)
    started = time.process_time()
    figures = {"markov_full": ngram.train_byte_model(train_texts, order=5).bits_per_symbol(held_symbols)}
    markov_folder = paths.builtin_model_dir("text-markov")
    if (markov_folder / "counts.safetensors").exists():
        figures["markov_shipped"] = ngram.NGramModel.load(markov_folder).bits_per_symbol(held_symbols)
    gpt = AutoModelForCausalLM.from_pretrained(str(gpt_folder()), dtype=torch.float32, local_files_only=True)
    figures["gpt"] = gpt_model.held_out_bits_per_byte(gpt, data.held_out, data.token_bytes, data.eval_context)
    figures["gpt_params"] = sum(p.numel() for p in gpt.parameters())
    figures["cpu_seconds"] = time.process_time() - started
    path.write_text(json.dumps(figures, indent=2))
    return figures


# --- export ------------------------------------------------------------------------------------------------


def export(run_dir: Path, data: TextData, out: Path | None = None) -> None:
    """The best weights so far -> models/text-rnn (fp16 safetensors, text-gpt's tokenizer, card, training.json)."""
    out = Path(out) if out else paths.builtin_model_dir(MODEL_NAME)
    state = run.read_checkpoint(run_dir / run.CHECKPOINT)["state"]
    model = loop.load_best(run_dir)
    base = baselines(run_dir, data)
    log = run.make_logger(run_dir)

    def write(folder: Path) -> None:
        model.save(folder, torch.float16, extra={"bos_token_id": data.eot, "eos_token_id": data.eot,
                                                 "trained_context": loop.read_settings(run_dir)[1].context})
        for name in TOKENIZER_FILES:
            shutil.copy(gpt_folder() / name, folder / name)
        fp16 = loop.shipped(folder)
        figures = {"held_out_bpb_fp16": held_out_bpb(fp16, data), "baselines": base,
                   "sampling_tokens_per_s": loop.sampling_speed(fp16), "threads": torch.get_num_threads(),
                   "params": fp16.parameter_count(), **loop.training_summary(state)}
        samples = [sample_text(fp16, data, prompt, seed) for seed, prompt in enumerate(PROMPTS)]
        record = {**figures, "history": state["history"], "settings": json.loads((run_dir / loop.SETTINGS).read_text()),
                  "corpus": {k: data.summary[k] for k in ("entries", "train_bytes", "held_out_bytes")}}
        (folder / "training.json").write_text(json.dumps(record, indent=1))
        (folder / "MODEL_CARD.md").write_text(model_card(fp16.config, data, figures, state, samples), encoding="utf-8")
        log(f"exported step {state['best_step']} to {out}: held-out {figures['held_out_bpb_fp16']:.4f} bits/byte (fp16), "
            f"{run.folder_size(folder) / 1e6:.1f} MB")

    loop.export_folder(out, write)


def model_card(config: rnn.RNNConfig, data: TextData, figures: dict, state: dict, samples: list[str]) -> str:
    base, bpb = figures["baselines"], figures["held_out_bpb_fp16"]
    versus = {name: 100 * (1 - bpb / base[name]) for name in ("markov_full", "gpt") if base.get(name)}

    def below(name: str) -> str:
        return f"{abs(versus[name]):.1f} % {'below' if versus[name] >= 0 else 'above'}" if name in versus else "n/a"

    shipped_row = (f"| order-5 byte Markov as shipped (`models/text-markov`, pruned) | n-gram | {base['markov_shipped']:.3f} |\n"
                   if base.get("markov_shipped") else "")
    sample_md = "\n\n".join("```\n" + s.strip() + "\n```" for s in samples)
    return f"""# text-rnn — the built-in recurrent text model of Latent Studio

A small {config.cell.upper()} language model (`studio/core/rnn.py`: embedding -> {config.layers} {config.cell.upper()} layers
of {config.width} -> {'a head tied to the embedding' if config.tie_embeddings else 'a linear head'}) trained from scratch on the
same fortune cookies and hacker/satirical dictionaries as `text-gpt`, with the same tokenizer. It steps token by
token with a fixed-size memory, so each new token costs the same however long the text gets.

## Data and licence
{text_data.corpus_markdown(data.summary)}
- {text_data.WEIGHTS_LICENCE}

## Architecture
{config.cell.upper()}, {config.layers} layers x {config.width}, vocabulary {config.vocab_size} (text-gpt's byte-level BPE, `<|endoftext|>` ends
each entry), dropout {config.dropout}, {figures['params'] / 1e6:.2f} M parameters, stored as fp16 safetensors
(`config.json` "model_type": "studio-rnn"; the tied head is stored once).

## Training
`python -m studio.training.text_rnn train` on one CPU thread (nice 19, on a 2-core machine shared with other jobs):
AdamW (beta 0.9/0.99, weight decay 0.01), warm-up then cosine decay to a tenth of the peak, batches of random
windows from the training stream, each starting from a blank state. Steps: {figures['steps']:,} ({figures['tokens']:,} tokens);
training CPU time {figures['train_cpu_hours']:.2f} h, wall time {figures['wall_hours']:.2f} h; {figures['tokens_per_s']:,.0f} tokens/s
({figures['tokens_per_cpu_s']:,.0f} per CPU-second). The exported weights are the best held-out checkpoint (step {figures['best_step']:,}).

## Evaluation (held-out bits per byte, lower is better)
All on the same held-out entries (5 % by hash); text-rnn and text-gpt predict the very same tokens (256-token
windows, each window's first token given), the Markov model every byte plus one end-of-text symbol per entry.

| model | family | bits/byte |
|---|---|---|
| text-rnn (these fp16 weights) | recurrent ({config.cell.upper()}) | {bpb:.3f} |
| text-gpt (`models/text-gpt`, fp16, {base.get('gpt_params', 0) / 1e6:.2f} M parameters) | transformer | {base['gpt']:.3f} |
| order-5 byte Markov, full counts (as in text-markov's card) | n-gram | {base['markov_full']:.3f} |
{shipped_row}
text-rnn is {below('markov_full')} the Markov model and {below('gpt')} text-gpt, which trained for
{json.loads((gpt_folder() / 'training.json').read_text()).get('wall_seconds', 0) / 3600:.1f} h.
Sampling speed of these weights, step by step at batch 1 on {figures['threads']} thread(s): {figures['sampling_tokens_per_s']:,.0f} tokens/s.

{loop.history_table(state['history'], 'bits/byte')}

## Samples (temperature 0.8, top-k 40, seeds 0-3)
{sample_md}
"""


# --- LSTM or GRU? --------------------------------------------------------------------------------------------


def compare_cell(args: argparse.Namespace) -> None:
    """Train one cell for a fixed CPU budget from scratch; held-out bits/byte on the first 32k held-out tokens."""
    torch.set_num_threads(1)
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = load_data(run_dir)
    config = rnn.RNNConfig(len(data.tokenizer), args.width, args.layers, args.cell, args.dropout)
    schedule = loop.Schedule(batch=args.batch, context=args.context, lr=args.lr, warmup=50, max_steps=10**9)
    task, model = text_task(data), rnn.RNNLanguageModel(config)
    optimizer, cpu, step, losses = loop.new_optimizer(model, schedule), 0.0, 0, []
    while cpu < args.cpu_seconds:
        batch = task.batch(step, schedule)
        loop.seed_step(schedule, step)
        started = time.process_time()
        losses.append(loop.train_step(model, optimizer, batch, loop.learning_rate(schedule, step), schedule.clip))
        cpu += time.process_time() - started
        step += 1
    model.eval()
    with torch.inference_mode():
        bpb = held_out_bpb(model, data, data.held_out[: 128 * data.eval_context + 1])
    result = {"cell": args.cell, "width": args.width, "layers": args.layers, "params": model.parameter_count(),
              "steps": step, "tokens": step * args.batch * args.context, "cpu_seconds": cpu,
              "tokens_per_cpu_s": step * args.batch * args.context / cpu, "held_out_bpb_32k": bpb,
              "last_losses": losses[-10:], "schedule": asdict(schedule)}
    (run_dir / f"cells-{args.cell}-{args.width}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


# --- CLI ----------------------------------------------------------------------------------------------------------


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = load_data(run_dir)
    config = rnn.RNNConfig(len(data.tokenizer), args.width, args.layers, args.cell, args.dropout)
    schedule = loop.Schedule(args.batch, args.context, args.lr, args.warmup, args.max_steps, seed=args.seed)
    timers = loop.Timers(args.minutes, args.eval_minutes, args.checkpoint_minutes, args.export_minutes, args.log_every)
    trainer = loop.Trainer(run_dir, config, schedule, text_task(data, run_dir, args.out or None), timers)
    trainer.log(f"{trainer.model.parameter_count() / 1e6:.2f} M parameters; {len(data.train):,} train tokens, "
                f"{len(data.held_out):,} held-out tokens; {torch.get_num_threads()} thread(s)")
    trainer.train()


def export_command(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir)
    export(run_dir, load_data(run_dir), args.out or None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m studio.training.text_rnn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    default_run = str(run.run_dir(MODEL_NAME, create=False))
    t = commands.add_parser("train", help="train (or resume) text-rnn; the first start fixes the settings")
    c = commands.add_parser("cells", help="one cell's held-out bits/byte after a fixed CPU budget")
    for sub in (t, c):
        sub.add_argument("--run-dir", default=default_run)
        loop.add_model_flags(sub, batch=16)
        sub.add_argument("--context", type=int, default=256)
        sub.add_argument("--lr", type=float, default=3e-3)
    loop.add_run_flags(t, max_steps=1600)
    t.add_argument("--out", default="", help="model folder (default models/text-rnn)")
    c.add_argument("--cpu-seconds", type=float, default=300)
    e = commands.add_parser("export", help="write the best weights to models/text-rnn")
    e.add_argument("--run-dir", default=default_run)
    e.add_argument("--out", default="")
    e.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    {"train": train, "cells": compare_cell, "export": export_command}[args.command](args)


if __name__ == "__main__":
    main(sys.argv[1:])
