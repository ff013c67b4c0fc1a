"""Train the built-in music models on the music21 corpus: a small GPT-2 and an n-gram baseline.

    python -m studio.data.music          # parse the corpus once (minutes) -> corpus.jsonl.gz
    python -m studio.training.music tokens        # notes -> token ids (seconds), done by `train` if missing
    python -m studio.training.music train         # resumable; checkpoints every ~3 min in the run folder
    python -m studio.training.music export        # best weights -> models/music-gpt/ (fp16) + MODEL_CARD.md
    python -m studio.training.music markov        # n-gram baseline -> models/music-markov/
    python -m studio.training.music eval          # held-out loss (GPT vs n-gram), in-key rates

The run folder is $STUDIO_RUNS_DIR/music-gpt (default runs/music-gpt), outside the repository.

Training windows are 512 tokens packed from pieces: each piece contributes its tags plus its tokens from a
random bar on (bar 0 half of the time), transposed by a random interval with the key tag moved to match
(transposition augmentation: 12x the data for free). Held-out pieces (5 %, by a hash of their id) are
scored in their own key on their first 512 tokens, by the GPT and by the n-gram on the very same tokens.

The code: music_tokens.py (notes -> tokens, training windows), music_model.py (the GPT, its schedule, scoring),
this file (the training loop and the command line), music_markov.py (the n-gram baseline), music_export.py
(export, evaluation, card); run.py holds what every trainer shares.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass, field

from studio.data import music as music_data
from studio.training import run as run_files
from studio.training.music_export import eval_only, export
from studio.training.music_markov import markov
from studio.training.music_model import held_out_loss, learning_rate, load_initial_weights, new_model
from studio.training.music_tokens import CONTEXT, TokenData, build_tokens, ensure_tokens, run_dir, tokens_file


def resume(model, optimizer) -> dict:
    """Where training stands: the run's checkpoint, else the shipped weights (or none) at step 0."""
    saved = run_files.read_checkpoint(run_dir() / run_files.CHECKPOINT)
    if saved is None:
        run_files.log(load_initial_weights(model))
        return {"step": 0, "tokens": 0, "wall": 0.0, "history": [], "best": float("inf")}
    state = run_files.restore(saved, model, optimizer)
    run_files.log(f"resumed at step {state['step']} ({state['wall'] / 60:.0f} min trained)")
    return state


def warm_restart(state: dict, peak: float, steps: int) -> None:
    """A new cosine cycle from now: more learning when the first schedule has run out (e.g. in a new session)."""
    end = state["step"] + steps
    state.setdefault("cycles", []).append({"start": state["step"], "peak": peak, "end": end})
    run_files.log(f"warm restart at step {state['step']}: lr up to {peak:g}, cosine down to step {end}")


def note_data(state: dict, fingerprint: str) -> None:
    """The corpus changed (e.g. a fuller parse): held-out losses before and after do not compare."""
    if state.get("data") != fingerprint:
        if state.get("data") is not None:
            run_files.log(f"data changed ({state['data']} -> {fingerprint}): best held-out loss reset")
            state["history"].append({"step": state["step"], "data_changed": fingerprint})
        state["data"], state["best"] = fingerprint, float("inf")


@dataclass
class Interval:
    """The steps since the last checkpoint: their summed loss and when they began."""

    start: float = field(default_factory=time.time)
    loss: float = 0.0
    steps: int = 0


def checkpoint(model, optimizer, state: dict, interval: Interval, windows: list | None) -> None:
    """Training time and a history entry into the state, scored on the held-out `windows` when given (the best
    weights so far to best.safetensors); then the checkpoint."""
    state["wall"] += time.time() - interval.start
    held = held_out_loss(model, windows) if windows is not None else float("nan")
    state["history"].append({"step": state["step"], "train": interval.loss / max(1, interval.steps),
                             "held_out": held, "wall": state["wall"], "tokens": state["tokens"]})
    if held < state["best"]:
        state["best"] = held
        run_files.save_weights(model.state_dict(), run_dir() / "best.safetensors",
                               metadata={"step": str(state["step"]), "held_out": f"{held:.5f}"})
    run_files.save_checkpoint(run_dir() / run_files.CHECKPOINT, model, optimizer, state)
    run_files.log(f"checkpoint step {state['step']}: train {state['history'][-1]['train']:.4f}, held-out {held:.4f} "
                  f"nats/token (best {state['best']:.4f})")


def train(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # 1. Tokens, model and optimiser; where training stands.
    data = TokenData(ensure_tokens())
    model = new_model(len(data.tok), data.tok)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    state = resume(model, optimizer)
    if args.restart_peak:
        warm_restart(state, args.restart_peak, args.restart_steps)
    rng = random.Random(1000 + state["step"])
    # 2. The held-out windows the checkpoints are scored on.
    windows = data.held_out_windows(args.eval_pieces)
    note_data(state, f"{len(data.events)} pieces, {len(windows)} held-out windows")
    run_files.log(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params; {len(data.train_index)} train "
                  f"pieces, {len(data.held_index)} held out ({len(windows)} scored); batch {args.batch}x{CONTEXT}")
    # 3. Packed, transposed windows until args.steps; a checkpoint every few minutes, scored less often.
    model.train()
    last_save = last_eval = time.time()
    interval = Interval()
    while state["step"] < args.steps:
        run_files.set_learning_rate(optimizer, learning_rate(state["step"], peak=args.lr, cycles=state.get("cycles")))
        batch = torch.as_tensor(data.batch(args.batch, rng, augment=not args.no_augment))
        loss = model(input_ids=batch, labels=batch).loss
        run_files.optimise(optimizer, loss)
        state["step"] += 1
        state["tokens"] += batch.numel()
        interval.loss += float(loss.detach())
        interval.steps += 1
        if state["step"] % args.log_every == 0:
            run_files.log(f"step {state['step']} loss {interval.loss / interval.steps:.4f} "
                          f"{interval.steps * batch.numel() / (time.time() - interval.start):.0f} tok/s "
                          f"lr {optimizer.param_groups[0]['lr']:.2e}")
        finished = state["step"] >= args.steps
        if time.time() - last_save > args.save_every or finished:
            # Scoring the held-out set costs about a minute on a busy CPU: every few checkpoints only.
            scored = time.time() - last_eval > args.eval_every or finished
            checkpoint(model, optimizer, state, interval, windows if scored else None)
            if scored:
                last_eval = time.time()
            last_save = time.time()
            interval = Interval()
    run_files.log("done")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("tokens")
    t = sub.add_parser("train")
    t.add_argument("--steps", type=int, default=100000)
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--lr", type=float, default=1.5e-3)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--save-every", type=float, default=180.0, help="seconds between checkpoints")
    t.add_argument("--restart-peak", type=float, default=0.0, help="start a new cosine cycle now with this peak lr")
    t.add_argument("--restart-steps", type=int, default=3000, help="length of that cycle in steps")
    t.add_argument("--log-every", type=int, default=20)
    t.add_argument("--eval-every", type=float, default=900.0, help="seconds between held-out evaluations")
    t.add_argument("--eval-pieces", type=int, default=120)
    t.add_argument("--no-augment", action="store_true")
    e = sub.add_parser("export")
    e.add_argument("--eval-pieces", type=int, default=300)
    e.add_argument("--samples", type=int, default=16)
    k = sub.add_parser("markov")
    k.add_argument("--orders", type=int, nargs="+", default=[4, 5, 6, 7])
    k.add_argument("--eval-pieces", type=int, default=300)
    k.add_argument("--prune", type=int, default=2)
    v = sub.add_parser("eval")
    v.add_argument("--eval-pieces", type=int, default=300)
    v.add_argument("--samples", type=int, default=16)
    args = parser.parse_args(argv)
    if args.command == "tokens":
        build_tokens(music_data.default_cache_file(), tokens_file())
    elif args.command == "train":
        train(args)
    elif args.command == "export":
        export(args)
    elif args.command == "markov":
        markov(args)
    elif args.command == "eval":
        eval_only(args)


if __name__ == "__main__":
    main()
