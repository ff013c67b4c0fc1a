"""The music n-gram baseline: a grid over order x transposed copies x smoothing, scored on the held-out windows.

    python -m studio.training.music markov   # -> models/music-markov/ + MODEL_CARD.md
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from studio import paths
from studio.engine.music.models import MusicNGram
from studio.engine.music.piece import PITCH_HIGH, PITCH_LOW
from studio.training import run as run_files
from studio.training.music_tokens import TokenData, ensure_tokens, run_dir

MARKOV_NAME = "music-markov"


def build_markov(data: TokenData, order: int, augment: bool) -> MusicNGram:
    model = MusicNGram(order, len(data.tok))
    shifts = range(-6, 6) if augment else [0]
    for i in data.train_index:
        seq = data.sequence(int(i))
        for shift in shifts:
            if augment:
                low, high = data.pitch_range[int(i)]
                if low + shift < PITCH_LOW or high + shift > PITCH_HIGH:
                    continue
                model.add(data.tables[shift][seq].tolist())
            else:
                model.add(seq.tolist())
    return model


def markov(args) -> None:
    """Grid over order x transposed copies x smoothing on the held-out windows; ship the best."""
    data = TokenData(ensure_tokens())
    windows = [w.tolist() for w in data.held_out_windows(args.eval_pieces)]
    results = []
    for augment in (False, True):
        for order in args.orders:
            started = time.time()
            model = build_markov(data, order, augment)
            for smoothing in ("absolute-discounting", "kneser-ney"):
                if smoothing == "kneser-ney":
                    model.use_kneser_ney()
                loss = model.mean_loss(windows)
                results.append({"order": order, "augment": augment, "smoothing": smoothing, "held_out": loss})
                run_files.log(f"n-gram order {order} augment {augment} {smoothing}: held-out {loss:.4f} nats/token "
                    f"({time.time() - started:.0f} s)")
    best = min(results, key=lambda r: r["held_out"])
    model = build_markov(data, best["order"], best["augment"])
    if best["smoothing"] == "kneser-ney":
        model.use_kneser_ney()
    folder = paths.builtin_model_dir(MARKOV_NAME)
    folder.mkdir(parents=True, exist_ok=True)
    model.prune(args.prune)
    model.save(folder)
    data.tok.save(folder)
    pruned_loss = model.mean_loss(windows)
    summary = {**best, "held_out_after_prune": pruned_loss, "prune_min_count": args.prune,
               "eval_pieces": len(windows), "discounts": model.discounts, "grid": results}
    (run_dir() / "markov_eval.json").write_text(json.dumps(summary, indent=1))
    write_markov_card(folder, summary)
    run_files.log(f"saved {folder}: {best}, held-out {pruned_loss:.4f} after pruning")


def write_markov_card(folder: Path, summary: dict) -> None:
    size = run_files.folder_size(folder) / 1e6
    grid = "\n".join(f"| {r['order']} | {'yes' if r['augment'] else 'no'} | {r['smoothing']} | {r['held_out']:.4f} |"
                     for r in summary["grid"])
    text = f"""# Music Markov n-gram (built-in)

An interpolated n-gram model over the same note-event tokens as `music-gpt` (`music_vocab.json`): the
baseline the neural model is measured against, and an instant generator. numpy only (no torch), counts in
safetensors; loaded by `studio.engine.music.models.load_music_model` (config.json model_type "studio-markov").

- Shipped: order {summary['order']} ({summary['order'] - 1} tokens of context), {summary['smoothing']},
  transposed copies of the training pieces: {'yes' if summary['augment'] else 'no'};
  discounts per order {[round(d, 3) for d in summary['discounts']]}.
- Highest-order n-grams seen fewer than {summary['prune_min_count']} times are dropped to keep the folder small ({size:.1f} MB).
- Held-out loss (first 512 tokens of {summary['eval_pieces']} held-out pieces, in their own key, nats/token):
  {summary['held_out']:.4f} before pruning, {summary['held_out_after_prune']:.4f} as shipped.

| order | transposed copies | smoothing | held-out nats/token |
|---|---|---|---|
{grid}

Data and licences: see `models/music-gpt/MODEL_CARD.md` (same corpus: music21's bundled corpus; the Essen
collection is licensed for NON-COMMERCIAL use only).

Built by `python -m studio.training.music markov`.
"""
    (folder / "MODEL_CARD.md").write_text(text, encoding="utf-8")

