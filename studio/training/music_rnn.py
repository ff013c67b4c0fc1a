"""Train music-rnn, the built-in recurrent music model (Melody-RNN style), on the same tokens as music-gpt.

    python -m studio.data.music                  # parse the corpus once (minutes), if not done for music-gpt
    python -m studio.training.music_rnn train    # resumable; run folder $STUDIO_RUNS_DIR/music-rnn (or --run-dir)
    python -m studio.training.music_rnn export   # best weights -> models/music-rnn/ (fp16) + MODEL_CARD.md

Same note-event tokens and tags as music-gpt, read through `studio.training.music` (its token cache, its packed
512-token training windows with transposition augmentation, its held-out pieces and its scoring code), so the
held-out nats/token of the n-gram, the RNN and the GPT are on the very same tokens.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from studio import paths
from studio.core import rnn
from studio.data import music as music_data
from studio.engine.music.piece import in_key_fraction
from studio.engine.music.tokenizer import Tags
from studio.training import music as music_gpt
from studio.training import rnn as loop
from studio.training import run

MODEL_NAME = "music-rnn"
MONITOR_PIECES = 120  # held-out pieces scored during training (as music-gpt's monitor)
CARD_PIECES = 300  # and for the card (as music-gpt's card)
# Asked-for keys for the in-key rate: (style, tonic, mode, metre, tempo).
KEY_PROMPTS = [Tags("chorale", 2, "minor", "4/4", "slow"), Tags("reel", 7, "major", "4/4", "fast"),
               Tags("jig", 9, "minor", "6/8", "fast"), Tags("waltz", 5, "major", "3/4", "moderate"),
               Tags("folk", 3, "major", "4/4", "unknown"), Tags("hornpipe", 10, "major", "4/4", "moderate"),
               Tags("chorale", 9, "major", "4/4", "slow"), Tags("air", 0, "minor", "3/4", "slow")]


class _HFStyle(torch.nn.Module):
    """The RNN dressed as a transformers LM (`model(input_ids=..., attention_mask=...).logits`) for music-gpt's
    scoring code. Padding comes after each window, so a causal model needs no mask. Leaves train/eval to its caller."""

    def __init__(self, model: rnn.RNNLanguageModel) -> None:
        super().__init__()
        self.net = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> SimpleNamespace:
        return SimpleNamespace(logits=self.net(input_ids)[0])

    def train(self, mode: bool = True) -> _HFStyle:
        return self


def held_out_loss(model: rnn.RNNLanguageModel, windows: list[np.ndarray]) -> float:
    return music_gpt.held_out_loss(_HFStyle(model), windows)


def music_task(data: music_gpt.TokenData, windows: list[np.ndarray], run_dir: Path | None = None,
               out: Path | None = None, augment: bool = True) -> loop.Task:
    def batch(step: int, schedule: loop.Schedule) -> torch.Tensor:
        rng = random.Random(schedule.seed * 1_000_003 + step)  # batch i depends on (seed, i) only: resumable
        return torch.as_tensor(data.batch(schedule.batch, rng, augment=augment))

    def sample(model: rnn.RNNLanguageModel, seed: int) -> str:
        tags = KEY_PROMPTS[seed % len(KEY_PROMPTS)]
        notes, _ = generate_notes(model, data.tok, tags, seed, bars=2)
        return f"{tags.style} in {tags.key}: " + " ".join(str(n.pitch) for n in notes)

    return loop.Task(
        name=MODEL_NAME,
        unit="nats/token",
        batch=batch,
        evaluate=lambda model: held_out_loss(model, windows),
        sample=sample,
        export=(lambda folder: export(folder, data, out)) if run_dir is not None else None,
    )


def generate_notes(model: rnn.RNNLanguageModel, tok, tags: Tags, seed: int, bars: int = 8, temperature: float = 1.0):
    """Plain sampling (no grammar) from the tags for `bars` bars: (notes, tokens)."""
    prompt = tok.tag_ids(tags) + [tok.bar_id]
    ids = rnn.sample(model, prompt, 120 * bars, temperature=temperature, top_k=0, seed=seed, stop_id=tok.eos_id)
    bar_starts = [i for i, t in enumerate(ids) if t == tok.bar_id]
    if len(bar_starts) >= bars:
        ids = ids[: bar_starts[bars - 1]]  # the prompt opened bar 1
    return tok.decode_notes([tok.bar_id, *ids], tags.metre), ids


def in_key_rate(model: rnn.RNNLanguageModel, tok, samples: int = 16) -> tuple[float, list[str]]:
    rates, lines = [], []
    for seed in range(samples):
        tags = KEY_PROMPTS[seed % len(KEY_PROMPTS)]
        notes, _ = generate_notes(model, tok, tags, seed)
        rate = in_key_fraction(notes, tags.key) if notes else float("nan")
        rates.append(rate)
        lines.append(f"{tags.style} in {tags.key} ({tags.metre}) seed {seed}: {len(notes)} notes, in key {rate:.0%}")
    return float(np.nanmean(rates)), lines


# --- the figures the card compares against ------------------------------------------------------------------


def baselines(run_dir: Path, data: music_gpt.TokenData, windows: list[np.ndarray]) -> dict:
    """Held-out nats/token of the shipped n-gram and music-gpt on the same windows; measured once, cached."""
    path = run_dir / "baselines.json"
    if path.exists():
        return json.loads(path.read_text())
    from studio.engine.music.models import MusicNGram

    figures: dict = {"pieces": len(windows)}
    markov = paths.builtin_model_dir("music-markov")
    if (markov / "config.json").exists():
        ngram = MusicNGram.load(markov)
        figures["ngram"], figures["ngram_order"] = ngram.mean_loss([w.tolist() for w in windows]), ngram.order
    gpt_folder = paths.builtin_model_dir("music-gpt")
    if (gpt_folder / "model.safetensors").exists():
        gpt = music_gpt.new_model(len(data.tok), data.tok)
        run.load_weights(gpt, gpt_folder / "model.safetensors")
        figures["gpt"], figures["gpt_params"] = music_gpt.held_out_loss(gpt, windows), gpt.num_parameters()
    path.write_text(json.dumps(figures, indent=2))
    return figures


# --- export --------------------------------------------------------------------------------------------------


def export(run_dir: Path, data: music_gpt.TokenData, out: Path | None = None) -> None:
    """The best weights so far -> models/music-rnn (fp16 safetensors, music_vocab.json, card, training.json)."""
    out = Path(out) if out else paths.builtin_model_dir(MODEL_NAME)
    state = run.read_checkpoint(run_dir / run.CHECKPOINT)["state"]
    model, windows = loop.load_best(run_dir), data.held_out_windows(CARD_PIECES)
    base, log = baselines(run_dir, data, windows), run.make_logger(run_dir)

    def write(folder: Path) -> None:
        tok = data.tok
        model.save(folder, torch.float16, extra={"bos_token_id": tok.bos_id, "eos_token_id": tok.eos_id,
                                                 "pad_token_id": tok.pad_id, "trained_context": music_gpt.CONTEXT})
        tok.save(folder)
        fp16 = loop.shipped(folder)
        rate, lines = in_key_rate(fp16, tok)
        figures = {"held_out_fp16": held_out_loss(fp16, windows), "pieces": len(windows), "baselines": base,
                   "in_key": rate, "sampling_tokens_per_s": loop.sampling_speed(fp16),
                   "threads": torch.get_num_threads(), "params": fp16.parameter_count(), **loop.training_summary(state)}
        record = {**figures, "history": state["history"], "samples": lines,
                  "settings": json.loads((run_dir / loop.SETTINGS).read_text())}
        (folder / "training.json").write_text(json.dumps(record, indent=1))
        (folder / "MODEL_CARD.md").write_text(model_card(fp16.config, figures, state, lines), encoding="utf-8")
        log(f"exported step {state['best_step']} to {out}: held-out {figures['held_out_fp16']:.4f} nats/token (fp16)")

    loop.export_folder(out, write)


def model_card(config: rnn.RNNConfig, figures: dict, state: dict, lines: list[str]) -> str:
    base, loss = figures["baselines"], figures["held_out_fp16"]
    stats_file = music_gpt.run_dir() / "tokens_stats.json"
    stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    licences = "\n".join(f"- **{name}**: {text}" for name, text in music_data.LICENCES.items())
    rows = "".join(f"| {label} | {family} | {base[key]:.4f} |\n" for key, label, family in (
        ("gpt", "music-gpt (`models/music-gpt`, fp16)", "transformer"),
        ("ngram", f"music-markov (`models/music-markov`, order {base.get('ngram_order')}, as shipped)", "n-gram"))
        if key in base)
    samples = "\n".join(f"- {line}" for line in lines)
    return f"""# music-rnn — the built-in recurrent music model of Latent Studio

A small {config.cell.upper()} over note-event tokens (`studio/core/rnn.py`: embedding -> {config.layers} {config.cell.upper()} layers of
{config.width} -> a head tied to the embedding), in the spirit of Magenta's Melody RNN, trained here from scratch on the
same tokens and tags as `music-gpt` (vocabulary `music_vocab.json`; see `studio/engine/music/tokenizer.py`).
{figures['params'] / 1e6:.2f} M parameters, fp16 safetensors (`config.json` "model_type": "studio-rnn").

## Data
music21's bundled corpus (read offline from the music21 wheel): {stats.get('pieces', '?')} pieces, {stats.get('tokens', 0):,} tokens,
{stats.get('held_out_pieces', '?')} held out (5 % by a hash of the piece id), the same pieces and split as music-gpt. Training
windows: 512 tokens packed from pieces, each transposed by a random interval with its key tag moved to match.

### Licences (music21/corpus/license.txt: "Some encodings included in the corpus may not be used for commercial uses")
{licences}

Because of the Essen collection, treat these weights as **non-commercial** unless retrained without it.

## Training
`python -m studio.training.music_rnn train` on one CPU thread (nice 19, shared 2-core machine): AdamW, warm-up then
cosine to a tenth of the peak. Steps: {figures['steps']:,} ({figures['tokens']:,} tokens); training CPU time
{figures['train_cpu_hours']:.2f} h, wall time {figures['wall_hours']:.2f} h; {figures['tokens_per_s']:,.0f} tokens/s
({figures['tokens_per_cpu_s']:,.0f} per CPU-second). Exported: the best held-out checkpoint (step {figures['best_step']:,}).

## Evaluation (held-out pieces, first 512 tokens each, own key; nats/token, lower is better)
| model | family | nats/token |
|---|---|---|
| music-rnn (these fp16 weights) | recurrent ({config.cell.upper()}) | {loss:.4f} |
{rows}
All on the first 512 tokens of the same {figures['pieces']} held-out pieces. In-key rate of notes sampled from the
tags alone (8 bars, temperature 1.0, no top-k/top-p, no grammar; the keys asked are listed below):
{figures['in_key']:.1%}. Sampling speed step by step at batch 1 on {figures['threads']} thread(s):
{figures['sampling_tokens_per_s']:,.0f} tokens/s.

{loop.history_table(state['history'], 'nats/token')}

## Samples (seeded)
{samples}
"""


# --- CLI ------------------------------------------------------------------------------------------------------


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir)
    data = music_gpt.TokenData(music_gpt.ensure_tokens())
    config = rnn.RNNConfig(len(data.tok), args.width, args.layers, args.cell, args.dropout)
    schedule = loop.Schedule(args.batch, music_gpt.CONTEXT - 1, args.lr, args.warmup, args.max_steps, seed=args.seed)
    timers = loop.Timers(args.minutes, args.eval_minutes, args.checkpoint_minutes, args.export_minutes, args.log_every)
    task = music_task(data, data.held_out_windows(MONITOR_PIECES), run_dir, args.out or None)
    trainer = loop.Trainer(run_dir, config, schedule, task, timers)
    trainer.log(f"{trainer.model.parameter_count() / 1e6:.2f} M parameters; {len(data.train_index)} train pieces, "
                f"{len(data.held_index)} held out; {torch.get_num_threads()} thread(s)")
    trainer.train()


def export_command(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    export(Path(args.run_dir), music_gpt.TokenData(music_gpt.ensure_tokens()), args.out or None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m studio.training.music_rnn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    default_run = str(run.run_dir(MODEL_NAME, create=False))
    t = commands.add_parser("train", help="train (or resume) music-rnn; the first start fixes the settings")
    t.add_argument("--run-dir", default=default_run)
    loop.add_model_flags(t, batch=8)
    t.add_argument("--lr", type=float, default=3e-3)
    loop.add_run_flags(t, max_steps=2000)
    t.add_argument("--out", default="", help="model folder (default models/music-rnn)")
    e = commands.add_parser("export", help="write the best weights to models/music-rnn")
    e.add_argument("--run-dir", default=default_run)
    e.add_argument("--out", default="")
    e.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    {"train": train, "export": export_command}[args.command](args)


if __name__ == "__main__":
    main(sys.argv[1:])
