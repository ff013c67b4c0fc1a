"""Train the built-in text models on the fortune cookies and the Jargon File (see studio/data/text.py).

    python -m studio.training.text train    # GPT-2-style LM; resumable; checkpoints to runs/text-gpt/
    python -m studio.training.text export   # best weights -> models/text-gpt/ (fp16 safetensors + tokenizer + card)
    python -m studio.training.text markov   # order-5 Kneser-Ney byte model -> models/text-markov/
    python -m studio.training.text compare  # held-out bits/byte of GPT weights vs the Markov model, per source
    python -m studio.training.text bench    # tokens/s through the app's loop vs model.generate

Evaluation is in bits per byte of held-out text, so byte-level, BPE and n-gram models compare fairly:
every model predicts the same held-out stream (entries joined by an end-of-text symbol that counts as
one byte), and bits/byte = total negative log2-likelihood / number of bytes predicted.

The code: text_tokens.py (tokenizer, token streams), text_model.py (the GPT, a step, scoring), this file
(the training loop and the command line), text_export.py, text_markov.py, text_compare.py; run.py holds
what every trainer shares.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from studio import paths
from studio.training import run as run_files
from studio.training.text_compare import benchmark, compare
from studio.training.text_export import export
from studio.training.text_markov import build_markov
from studio.training.text_model import (
    MODEL_NAME,
    SETTINGS,
    TRAINING_KEYS,
    held_out_bits_per_byte,
    learning_rate,
    model_from_settings,
    sample_text,
    settings_from_config,
    train_step,
)
from studio.training.text_tokens import (  # noqa: F401 (build_tokenizer: tests/engine/test_text_generate.py reads it here)
    build_tokenizer,
    bytes_per_token,
    prepare_data,
    random_batch,
)

RUN_DIR = run_files.run_dir(MODEL_NAME, create=False)


# --- where a run starts from ----------------------------------------------------------------------


def run_settings(args: argparse.Namespace, run_dir: Path, builtin: Path | None) -> dict:
    """The architecture: fixed by the first start of a run and read back on a resume; else the exported model's
    (training goes on from it); else the command line's."""
    settings_file = run_dir / "settings.json"
    if settings_file.exists():
        settings = json.loads(settings_file.read_text())
    elif builtin is not None and (builtin / "config.json").exists():
        settings = settings_from_config(json.loads((builtin / "config.json").read_text()))
    else:
        settings = {key: getattr(args, key) for key in SETTINGS}
    settings_file.write_text(json.dumps(settings, indent=2))
    return settings


def new_state() -> dict:
    return {"step": 0, "wall_seconds": 0.0, "tokens": 0, "history": [], "best_bpb": float("inf")}


def resume(run_dir: Path, builtin: Path | None, model, optimizer, log: Callable[[str], None]) -> dict | None:
    """Where training stands: the run's checkpoint, else the exported weights; None for a new run."""
    checkpoint = run_dir / run_files.CHECKPOINT
    saved = run_files.read_checkpoint(checkpoint)
    if saved is not None:
        state = run_files.restore(saved, model, optimizer)
        log(f"resumed from {checkpoint} at step {state['step']}")
        return state
    if builtin is None or not (builtin / "model.safetensors").exists():
        return None
    run_files.load_weights(model, builtin / "model.safetensors")
    trained = json.loads((builtin / "training.json").read_text()) if (builtin / "training.json").exists() else {}
    state = new_state()
    state.update({k: trained[k] for k in TRAINING_KEYS if k in trained})
    # A fresh optimiser: its own warm-up and cosine, counted from here.
    state["schedule_start"] = state["step"]
    log(f"started from the exported weights in {builtin} (step {state['step']})")
    return state


def note_corpus(state: dict, summary: dict, log: Callable[[str], None]) -> None:
    """Held-out figures on another corpus don't compare: after a change the best checkpoint is chosen afresh."""
    corpus = {k: summary[k] for k in ("entries", "train_bytes", "held_out_bytes")}
    if state.get("corpus") != corpus:
        if state["step"]:
            state.setdefault("corpus_changes", []).append({"step": state["step"], "corpus": corpus})
            log(f"corpus changed at step {state['step']}: {json.dumps(corpus)}")
        state["corpus"], state["best_bpb"] = corpus, float("inf")


def scheduled_rate(args: argparse.Namespace, state: dict) -> float:
    """The learning rate now: warm-up and cosine counted from the start of the run or of its current schedule."""
    start = state.get("schedule_start", 0)
    return learning_rate(state["step"] - start, args.lr, args.warmup, args.max_steps - start)


# --- one sitting of training ----------------------------------------------------------------------


@dataclass
class Session:
    """The model, where training stands (`state`), the held-out stream, and this sitting's clock."""

    run_dir: Path
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    state: dict
    tokenizer: object
    held_stream: np.ndarray
    token_bytes: np.ndarray
    context: int
    log: Callable[[str], None]
    running_loss: float | None = None
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.wall_before = self.state["wall_seconds"]

    def wall(self) -> float:
        """Seconds of training in all sittings so far."""
        return self.wall_before + time.monotonic() - self.started

    def step(self, batch: torch.Tensor, lr: float) -> None:
        loss = train_step(self.model, self.optimizer, batch, lr)
        self.state["step"] += 1
        self.state["tokens"] += batch[:, 1:].numel()
        self.running_loss = loss if self.running_loss is None else 0.95 * self.running_loss + 0.05 * loss

    def report(self, lr: float) -> None:
        loss = self.running_loss
        self.log(
            f"step {self.state['step']} loss {loss:.3f} ({loss / math.log(2):.2f} bits/token) "
            f"lr {lr:.2e} {self.state['tokens'] / max(self.wall(), 1e-9):.0f} tok/s overall"
        )

    def evaluate(self) -> None:
        """Held-out bits/byte into the history; the best weights so far to best.safetensors; a sample in the log."""
        state = self.state
        bpb = held_out_bits_per_byte(self.model, self.held_stream, self.token_bytes, self.context)
        state["history"].append(
            {
                "step": state["step"],
                "train_loss": self.running_loss,
                "held_out_bpb": bpb,
                "wall_seconds": self.wall(),
                "tokens": state["tokens"],
            }
        )
        if bpb < state["best_bpb"]:
            state["best_bpb"] = bpb
            weights = {k: v for k, v in self.model.state_dict().items() if k != "lm_head.weight"}  # tied
            run_files.save_weights(weights, self.run_dir / "best.safetensors")
            (self.run_dir / "best.json").write_text(json.dumps({**state["history"][-1]}, indent=2))
        sample = sample_text(self.model, self.tokenizer, "The", seed=state["step"])
        self.log(
            f"step {state['step']}: held-out {bpb:.3f} bits/byte (best {state['best_bpb']:.3f}); "
            f"sample: {sample[:200]!r}"
        )

    def checkpoint(self) -> None:
        self.state["wall_seconds"] = self.wall()
        run_files.save_checkpoint(self.run_dir / run_files.CHECKPOINT, self.model, self.optimizer, self.state)


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir)
    log = run_files.make_logger(run_dir)
    builtin = None if args.fresh else paths.builtin_model_dir(MODEL_NAME)  # a new run goes on from the shipped model

    # 1. The architecture, fixed by the first start of the run.
    settings = run_settings(args, run_dir, builtin)
    # 2. Tokenizer and token streams (the shipped model's tokenizer when going on from it).
    tokenizer_dir = builtin if builtin is not None and (builtin / "tokenizer.json").exists() else None
    tokenizer, train_stream, held_stream, summary = prepare_data(run_dir, settings["vocab_size"], tokenizer_dir)
    token_bytes = bytes_per_token(tokenizer)
    # 3. Model and optimiser, and where training stands.
    model = model_from_settings(settings, len(tokenizer))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    state = resume(run_dir, builtin, model, optimizer, log)
    if state is None:
        state = new_state()
        log(f"new run: {json.dumps(settings)}; corpus {json.dumps(summary)}")
    note_corpus(state, summary, log)
    log(
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; {len(train_stream):,} train tokens, "
        f"{len(held_stream):,} held-out tokens; {token_bytes[train_stream].sum() / len(train_stream):.2f} bytes/token"
    )

    # 4. Random windows until max-steps or the time is up; evaluate and checkpoint every few minutes.
    rng = np.random.default_rng(args.seed + state["step"])  # a resume does not replay the same batches
    torch.manual_seed(args.seed + state["step"])
    model.train()
    last_checkpoint = last_eval = time.monotonic()
    session = Session(run_dir, model, optimizer, state, tokenizer, held_stream, token_bytes, settings["context"], log)
    stop_at = time.monotonic() + args.minutes * 60 if args.minutes else None
    while state["step"] < args.max_steps and (stop_at is None or time.monotonic() < stop_at):
        lr = scheduled_rate(args, state)
        session.step(random_batch(train_stream, args.batch, settings["context"], rng), lr)
        now = time.monotonic()
        if state["step"] % args.log_every == 0:
            session.report(lr)
        if now - last_eval > args.eval_minutes * 60:
            session.evaluate()
            last_eval = time.monotonic()
        if now - last_checkpoint > args.checkpoint_minutes * 60:
            session.checkpoint()
            last_checkpoint = time.monotonic()

    # 5. A last evaluation and checkpoint, whatever ended the loop.
    session.evaluate()
    session.checkpoint()
    log(f"stopped at step {state['step']}")


def write_gguf(args: argparse.Namespace) -> None:
    from studio.training.text_gguf import export_gguf

    path = export_gguf(Path(args.folder), Path(args.out) if args.out else None)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


# --- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m studio.training.text", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("train", help="train (or resume) the GPT model")
    run.add_argument("--run-dir", default=str(RUN_DIR))
    run.add_argument("--vocab-size", type=int, default=2048, help="257 = plain bytes")
    run.add_argument("--layers", type=int, default=4)
    run.add_argument("--width", type=int, default=256)
    run.add_argument("--heads", type=int, default=4)
    run.add_argument("--context", type=int, default=256)
    run.add_argument("--dropout", type=float, default=0.05)
    run.add_argument("--batch", type=int, default=8)
    run.add_argument("--lr", type=float, default=2e-3)
    run.add_argument("--warmup", type=int, default=100)
    run.add_argument("--max-steps", type=int, default=3000)
    run.add_argument("--minutes", type=float, default=0, help="stop after this many minutes (0: run to max-steps)")
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--log-every", type=int, default=20)
    run.add_argument("--eval-minutes", type=float, default=10)
    run.add_argument("--checkpoint-minutes", type=float, default=3)
    run.add_argument("--fresh", action="store_true", help="ignore models/text-gpt (architecture and weights)")
    exp = commands.add_parser("export", help="write the best weights to models/text-gpt")
    exp.add_argument("--run-dir", default=str(RUN_DIR))
    exp.add_argument("--out", default="")
    mk = commands.add_parser("markov", help="build models/text-markov and print its held-out bits/byte")
    mk.add_argument("--order", type=int, default=5)
    mk.add_argument("--prune", type=int, default=0, help="drop highest-order n-grams seen fewer times than this")
    mk.add_argument("--out", default="")
    bench = commands.add_parser("bench", help="tokens/s through the app's loop vs model.generate; first-token time")
    bench.add_argument("--model", default="builtin:text-gpt")
    bench.add_argument("--tokens", type=int, default=200)
    bench.add_argument("--runs", type=int, default=5)
    bench.add_argument("--threads", type=int, default=1)
    gg = commands.add_parser("gguf", help="write models/text-gpt as a GGUF file for llama.cpp (text-gpt.gguf)")
    gg.add_argument("--folder", default=str(paths.builtin_model_dir(MODEL_NAME)))
    gg.add_argument("--out", default="", help="default: FOLDER/text-gpt.gguf")
    cmp_ = commands.add_parser("compare", help="held-out bits/byte of GPT weights vs the Markov model, per source")
    cmp_.add_argument("--weights", default=str(paths.builtin_model_dir(MODEL_NAME) / "model.safetensors"))
    cmp_.add_argument("--tokenizer", default="", help="folder with tokenizer.json (default: beside the weights)")
    cmp_.add_argument("--order", type=int, default=5)
    args = parser.parse_args(argv)
    commands_by_name = {
        "train": train,
        "export": export,
        "markov": build_markov,
        "bench": benchmark,
        "compare": compare,
        "gguf": write_gguf,
    }
    commands_by_name[args.command](args)


if __name__ == "__main__":
    main(sys.argv[1:])
