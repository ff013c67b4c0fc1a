"""Train the built-in melody VAE (the Latent Explorer's music latent) on two-bar melodies from music21.

    python -m studio.training.melody_vae data             # pieces -> 32-step melody windows (seconds)
    python -m studio.training.melody_vae train --minutes 40   # resumable; checkpoint every ~3 min
    python -m studio.training.melody_vae eval             # held-out reconstruction of the latest weights
    python -m studio.training.melody_vae export           # -> models/melody-vae/ (fp16) + MODEL_CARD.md

The run folder is $STUDIO_RUNS_DIR/melody-vae (default runs/melody-vae). The pieces come from the
music GPT's parsed corpus (`python -m studio.data.music`), and so does the held-out split (5 % of
pieces, by a hash of the piece id): no melody of a held-out piece is ever trained on.

Melodies (see studio/engine/music/melody.py for the encoding): the melody voice (a chorale's soprano, a tune's
only voice) is cut into 8-beat windows starting at every bar line, in every metre (two bars of 4/4 or 2/2,
four of 2/4, 2 2/3 of 3/4 or 6/8). A window is kept when all its onsets fall on the 16th grid (no
triplets), it has at least 4 notes, no more than one bar of silence, and fits 48-84 after an octave shift.
Training transposes each window by a random -5..+6 semitones that keeps it in range.

Loss (MusicVAE, Roberts et al. 2018): cross-entropy of the teacher-forced decoder + beta * max(KL - free, 0),
beta annealed from 0 to MAX_BETA; some previous tokens fed to the decoder are hidden ("word dropout",
Bowman et al. 2016), so the decoder cannot ignore z.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np

from studio import paths
from studio.data import music as music_data
from studio.engine.music import melody as ML
from studio.engine.music.piece import Note
from studio.training import run as run_files

MODEL_NAME = "melody-vae"
WINDOW_BEATS = ML.STEPS / ML.STEPS_PER_BEAT
MIN_NOTES = 4
MAX_SILENT_STEPS = 16  # one bar of 4/4
MAX_BETA = 0.2  # MusicVAE's 2-bar small model
BETA_WARMUP = 1500  # steps from beta 0 to MAX_BETA
FREE_NATS = 8.0  # KL below this (per melody, in nats) is not penalised
WORD_DROPOUT = 0.25
SHIFTS = range(-5, 7)


def run_dir() -> Path:
    return run_files.run_dir(MODEL_NAME)


log = run_files.log


# --- melody windows -------------------------------------------------------------------------------


def melody_notes(piece: dict) -> list[Note]:
    """The melody voice of a cached piece: voice 0 (chorale soprano, a tune's melody line)."""
    return [Note(int(p), float(s), float(d)) for p, s, d, _v, voice in piece["notes"] if voice == 0]


def on_grid(notes: list[Note], start: float) -> bool:
    return all(abs((n.start - start) * ML.STEPS_PER_BEAT - round((n.start - start) * ML.STEPS_PER_BEAT)) < 1e-3
               for n in notes)


def octave_shift(pitches: list[int]) -> int | None:
    """The octave shift that brings every pitch into the model's range, or None when the span is too wide."""
    low, high = min(pitches), max(pitches)
    for octaves in sorted(range(-4, 5), key=abs):  # the smallest move: keep melodies where they are
        if ML.PITCH_LOW <= low + 12 * octaves and high + 12 * octaves <= ML.PITCH_HIGH:
            return 12 * octaves
    return None


def longest_rest(tokens: list[int]) -> int:
    longest = run = 0
    for token in tokens:
        run = run + 1 if token == ML.REST else 0
        longest = max(longest, run)
    return longest


def piece_windows(piece: dict) -> tuple[list[list[int]], Counter]:
    """Distinct 32-step windows of one piece, and why the others were dropped."""
    notes = melody_notes(piece)
    why: Counter = Counter()
    if not notes:
        return [], why
    bar, end = float(piece["bar_length"]), max(n.start + n.duration for n in notes)
    windows, seen = [], set()
    start = 0.0
    while start + WINDOW_BEATS <= end + 1e-6:
        inside = [n for n in notes if start - 1e-6 <= n.start < start + WINDOW_BEATS - 1e-6]
        start_here, start = start, start + bar
        if len(inside) < MIN_NOTES:
            why["few notes"] += 1
            continue
        if not on_grid(inside, start_here):
            why["off the 16th grid"] += 1
            continue
        shift = octave_shift([n.pitch for n in inside])
        if shift is None:
            why["range"] += 1
            continue
        moved = [Note(n.pitch + shift, n.start, n.duration) for n in notes]
        tokens = ML.melody_tokens(moved, start=start_here)
        if longest_rest(tokens) > MAX_SILENT_STEPS:
            why["long rest"] += 1
            continue
        if tuple(tokens) in seen:
            why["repeat in the piece"] += 1
            continue
        seen.add(tuple(tokens))
        windows.append(tokens)
    return windows, why


def build_windows(corpus: Path, out: Path) -> dict:
    pieces = music_data.load_pieces(corpus)
    rows, piece_index, held, collections, metres = [], [], [], [], []
    dropped: Counter = Counter()
    for index, piece in enumerate(pieces):
        windows, why = piece_windows(piece)
        dropped.update(why)
        rows += windows
        piece_index += [index] * len(windows)
        held += [music_data.is_held_out(piece["id"])] * len(windows)
        collections += [piece["collection"]] * len(windows)
        metres += [piece["metre"]] * len(windows)
    tokens = np.asarray(rows, dtype=np.uint8)
    np.savez_compressed(out, tokens=tokens, piece=np.asarray(piece_index), held=np.asarray(held),
                        collections=np.asarray(collections), metres=np.asarray(metres))
    stats = {"pieces": len(pieces), "pieces_used": len(set(piece_index)), "windows": len(rows),
             "held_out_windows": int(sum(held)), "held_out_pieces": len({p for p, h in zip(piece_index, held, strict=True) if h}),
             "collections": dict(Counter(collections)), "metres": dict(Counter(metres).most_common()),
             "dropped": dict(dropped)}
    (out.parent / "windows_stats.json").write_text(json.dumps(stats, indent=1))
    log(f"melody windows: {stats}")
    return stats


def windows_file() -> Path:
    return run_dir() / "melodies.npz"


def ensure_windows() -> Path:
    out = windows_file()
    if not out.exists():
        corpus = music_data.default_cache_file()
        if not corpus.exists():
            sys.exit(f"no parsed corpus at {corpus}: run `python -m studio.data.music` first")
        build_windows(corpus, out)
    return out


class MelodyData:
    def __init__(self, path: Path) -> None:
        data = np.load(path)
        self.tokens = data["tokens"].astype(np.int64)
        self.held = data["held"]
        self.train_rows = self.tokens[~self.held]
        self.held_rows = self.tokens[self.held]
        self.low = np.where(self.train_rows >= 2, self.train_rows, 255).min(axis=1)  # lowest pitch token per row
        self.high = np.where(self.train_rows >= 2, self.train_rows, 0).max(axis=1)

    def batch(self, size: int, rng: np.random.Generator, augment: bool = True) -> np.ndarray:
        chosen = rng.integers(0, len(self.train_rows), size)
        rows = self.train_rows[chosen].copy()
        if augment:  # transpose each melody by a random interval that keeps it in range
            top = 2 + ML.PITCH_HIGH - ML.PITCH_LOW
            for r, index in enumerate(chosen):
                options = [s for s in SHIFTS if self.low[index] + s >= 2 and self.high[index] + s <= top]
                shift = options[rng.integers(len(options))] if options else 0
                rows[r] = np.where(rows[r] >= 2, rows[r] + shift, rows[r])
        return rows

    def held_out(self, limit: int) -> np.ndarray:
        """Up to `limit` held-out windows, evenly spread (the same ones every time)."""
        rows = self.held_rows
        if len(rows) > limit:
            rows = rows[np.linspace(0, len(rows) - 1, limit).round().astype(int)]
        return rows


# --- training -------------------------------------------------------------------------------------


def kl_per_melody(mu, logvar):
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def learning_rate(step: int, peak: float, warmup: int = 100, decay: float = 0.9995, floor: float = 1e-4) -> float:
    """Warm-up, then MusicVAE's exponential decay down to a floor."""
    return run_files.exponential_learning_rate(step, peak, warmup, decay, floor)


def beta_at(step: int) -> float:
    return MAX_BETA * min(1.0, step / BETA_WARMUP)


def evaluate(net, rows: np.ndarray, batch: int = 256) -> dict:
    """Held-out reconstruction from z = mu: teacher-forced and greedy token accuracy, exact melodies, KL."""
    import torch

    net.eval()
    tf_hits = greedy_hits = exact = prior_hits = 0
    kl_total = 0.0
    with torch.no_grad():
        for start in range(0, len(rows), batch):
            tokens = torch.as_tensor(rows[start:start + batch], dtype=torch.long)
            mu, logvar = net.encode(tokens)
            kl_total += float(kl_per_melody(mu, logvar).sum())
            tf_hits += int((net.decode_logits(mu, tokens).argmax(-1) == tokens).sum())
            # The decoder alone (z at the prior's mean): how much of the accuracy comes from z.
            prior_hits += int((net.decode_logits(torch.zeros_like(mu), tokens).argmax(-1) == tokens).sum())
            greedy = net.greedy(mu, tokens.shape[1])
            same = greedy == tokens
            greedy_hits += int(same.sum())
            exact += int(same.all(dim=1).sum())
    net.train()
    cells = rows.size
    counts = np.bincount(rows.reshape(-1), minlength=3)
    return {"melodies": len(rows), "teacher_forced_accuracy": tf_hits / cells, "greedy_accuracy": greedy_hits / cells,
            "exact_melody_rate": exact / len(rows), "kl_nats": kl_total / len(rows),
            "decoder_alone_teacher_forced_accuracy": prior_hits / cells,
            "majority_token_rate": float(counts.max() / cells), "majority_token": int(counts.argmax())}


def train(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = MelodyData(ensure_windows())
    config = ML.MelodyVaeConfig(encoder_hidden=args.hidden, decoder_hidden=args.hidden, z_dim=args.z_dim)
    net = ML.build_melody_vae(config)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    ckpt_path = run_dir() / run_files.CHECKPOINT
    state = {"step": 0, "melodies": 0, "wall": 0.0, "history": [], "config": asdict(config),
             "batch": args.batch, "lr": args.lr, "free_nats": args.free_nats, "word_dropout": args.word_dropout}
    saved = run_files.read_checkpoint(ckpt_path)
    if saved is not None:
        if saved["state"]["config"] != asdict(config):
            sys.exit(f"{ckpt_path} was trained with {saved['state']['config']}: pass the same sizes or move it away")
        state = run_files.restore(saved, net, optimizer)
        log(f"resumed at step {state['step']} ({state['wall'] / 60:.1f} min trained)")
    rng = np.random.default_rng(1000 + state["step"])
    monitor = data.held_out(args.eval_melodies)
    log(f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f} M params; {len(data.train_rows)} train melodies, "
        f"{len(data.held_rows)} held out ({len(monitor)} monitored); batch {args.batch}; {args.minutes} min")
    net.train()
    deadline = time.time() + args.minutes * 60
    last_save = interval_start = time.time()
    sums = Counter()
    while time.time() < deadline:
        step = state["step"]
        run_files.set_learning_rate(optimizer, learning_rate(step, args.lr))
        tokens = torch.as_tensor(data.batch(args.batch, rng))
        # 1. encode, sample z with the reparameterisation trick
        mu, logvar = net.encode(tokens)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        # 2. decode with teacher forcing (some inputs hidden), score every step
        logits = net.decode_logits(z, tokens, dropout=args.word_dropout)
        recon = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1),
                                                  reduction="sum") / tokens.shape[0]
        kl = kl_per_melody(mu, logvar).mean()
        # 3. free nats: KL under FREE_NATS costs nothing, so early training does not collapse z
        loss = recon + beta_at(step) * torch.clamp(kl - args.free_nats, min=0.0)
        run_files.optimise(optimizer, loss)
        state["step"] += 1
        state["melodies"] += len(tokens)
        sums.update({"recon": float(recon.detach()), "kl": float(kl.detach()),
                     "acc": float((logits.argmax(-1) == tokens).float().mean()), "n": 1})
        if state["step"] % args.log_every == 0:
            n = sums["n"]
            log(f"step {state['step']} recon {sums['recon'] / n:.3f} nats/melody, KL {sums['kl'] / n:.2f}, "
                f"acc {sums['acc'] / n:.3f}, beta {beta_at(step):.3f}, lr {optimizer.param_groups[0]['lr']:.2e}")
        finishing = time.time() >= deadline
        if time.time() - last_save > args.save_every or finishing:
            state["wall"] += time.time() - interval_start
            n = max(1, sums["n"])
            entry = {"step": state["step"], "wall": state["wall"], "train_recon": sums["recon"] / n,
                     "train_kl": sums["kl"] / n, "train_accuracy": sums["acc"] / n}
            entry.update({f"held_{k}": v for k, v in evaluate(net, monitor).items()
                          if k in ("teacher_forced_accuracy", "greedy_accuracy", "exact_melody_rate", "kl_nats")})
            state["history"].append(entry)
            run_files.save_checkpoint(ckpt_path, net, optimizer, state)
            log(f"checkpoint step {state['step']}: held-out teacher-forced {entry['held_teacher_forced_accuracy']:.3f}, "
                f"greedy {entry['held_greedy_accuracy']:.3f}, exact {entry['held_exact_melody_rate']:.3f}, "
                f"KL {entry['held_kl_nats']:.1f} nats ({state['wall'] / 60:.1f} min)")
            last_save = interval_start = time.time()
            sums = Counter()
    log("done")


# --- evaluation and export ------------------------------------------------------------------------


def checkpoint_net():
    ckpt_path = run_dir() / run_files.CHECKPOINT
    saved = run_files.read_checkpoint(ckpt_path)
    if saved is None:
        sys.exit(f"nothing to export: {ckpt_path} does not exist yet (train first)")
    net = ML.build_melody_vae(ML.MelodyVaeConfig.from_dict(saved["state"]["config"]))
    net.load_state_dict(saved["model"])
    return net.eval(), saved["state"]


def prior_sample_stats(model: ML.MelodyModel, count: int = 200) -> dict:
    """How melodies decoded from prior samples look: notes per melody, share with at least MIN_NOTES notes."""
    notes = [len(ML.decode(model, ML.prior_sample(model, seed))) for seed in range(count)]
    return {"prior_samples": count, "prior_mean_notes": float(np.mean(notes)),
            "prior_melodic_rate": float(np.mean([n >= MIN_NOTES for n in notes]))}


def interpolation_smoothness(model: ML.MelodyModel, rows: np.ndarray, pairs: int = 50, steps: int = 8) -> dict:
    """Mean fraction of steps that change between neighbouring melodies of held-out A->B interpolations."""
    rng = np.random.default_rng(0)
    changes = {"slerp": [], "lerp": []}
    for _ in range(pairs):
        a, b = rows[rng.integers(len(rows), size=2)]
        for method in changes:
            zs = ML.interpolate_latents(ML.encode(model, a.tolist()), ML.encode(model, b.tolist()), steps, method)
            decoded = np.asarray(ML.decode_tokens(model, zs))
            changes[method].append(float((decoded[1:] != decoded[:-1]).mean()))
    return {f"{k}_neighbour_change": float(np.mean(v)) for k, v in changes.items()}


def eval_only(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    data = MelodyData(ensure_windows())
    folder = paths.builtin_model_dir(MODEL_NAME)
    if args.checkpoint or not (folder / ML.WEIGHTS_FILE).exists():
        net, _state = checkpoint_net()
        source = "checkpoint (fp32)"
    else:
        net = ML.load_melody_vae(folder).net
        source = f"{folder} (fp16 weights as shipped)"
    result = {"weights": source, **evaluate(net, data.held_out(args.eval_melodies))}
    print(json.dumps(result, indent=1))


def export(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    data = MelodyData(ensure_windows())
    net, state = checkpoint_net()
    folder = paths.builtin_model_dir(MODEL_NAME)
    for stale in folder.glob("*") if folder.exists() else []:
        stale.unlink()
    info = {"steps": state["step"], "wall_seconds": round(state["wall"]), "melodies_seen": state["melodies"]}
    ML.save_melody_vae(net, folder, info)
    shipped = ML.load_melody_vae(folder)  # score the fp16 weights, as the app will load them
    rows = data.held_out(args.eval_melodies)
    evaluation = evaluate(shipped.net, rows)
    evaluation.update(prior_sample_stats(shipped))
    evaluation.update(interpolation_smoothness(shipped, rows))
    (run_dir() / "eval.json").write_text(json.dumps(evaluation, indent=1))
    info["held_out"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in evaluation.items()}
    ML.save_melody_vae(net, folder, info)
    plot_history(state["history"], folder / "training_curve.png")
    write_card(folder, state, evaluation)
    size = run_files.folder_size(folder) / 1e6
    log(f"exported {folder} ({size:.2f} MB): {json.dumps(evaluation)}")


def plot_history(history: list[dict], path: Path) -> None:
    steps = [h["step"] for h in history]
    with run_files.figure(path, figsize=(6, 3.2), dpi=90) as ax:
        ax.plot(steps, [h["train_accuracy"] for h in history], label="train, teacher-forced (word dropout on)")
        ax.plot(steps, [h["held_teacher_forced_accuracy"] for h in history], label="held-out, teacher-forced")
        ax.plot(steps, [h["held_greedy_accuracy"] for h in history], label="held-out, greedy from z")
        ax.plot(steps, [h["held_exact_melody_rate"] for h in history], label="held-out, exact melodies")
        ax.set_xlabel("step")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1)
        ax.set_title("melody-vae reconstruction")
        ax.legend(fontsize=7)


def write_card(folder: Path, state: dict, ev: dict) -> None:
    stats = json.loads((run_dir() / "windows_stats.json").read_text())
    config = ML.MelodyVaeConfig.from_dict(state["config"])
    licences = "\n".join(f"- **{name}**: {text}" for name, text in music_data.LICENCES.items())
    from safetensors import safe_open

    with safe_open(str(folder / ML.WEIGHTS_FILE), "np") as weights:
        params = sum(int(np.prod(weights.get_slice(k).get_shape())) for k in weights.keys())
    size = run_files.folder_size(folder) / 1e6
    majority = {0: "rest", 1: "hold"}.get(ev["majority_token"], "a pitch")
    text = f"""# Melody VAE (built-in)

The Latent Explorer's music latent: a small MusicVAE-style VAE over two-bar melodies (32 steps of a 16th
note; per step REST, HOLD or a new note of pitch {config.pitch_low}-{config.pitch_high}). A bidirectional GRU
({config.encoder_hidden} per direction) encodes a melody to a {config.z_dim}-dimensional z; a GRU decoder
({config.decoder_hidden}) conditioned on z at every step writes it back. {params / 1e6:.2f} M parameters, fp16
safetensors, folder {size:.1f} MB. Loaded by `studio.engine.music.melody.load_melody_vae` (config.json model_type
`{ML.MODEL_TYPE}`); the code is in `studio/engine/music/melody.py`.

## Data
Melody voices of music21's bundled corpus (read offline from the music21 wheel; parsed by
`studio/data/music.py`): {stats['windows']:,} distinct 8-beat windows from {stats['pieces_used']:,} of
{stats['pieces']:,} pieces; {stats['held_out_windows']:,} windows of {stats['held_out_pieces']} held-out pieces (5 % of
pieces by a hash of the piece id, the same split as `music-gpt`) are never trained on.
Windows per collection: {stats['collections']}. Per metre: {stats['metres']}.
Dropped windows: {stats['dropped']}. Chorales contribute their soprano; tunes their melody line.
Training transposes each window by a random -5..+6 semitones that keeps it in range.

### Licences (music21/corpus/license.txt: "Some encodings included in the corpus may not be used for commercial uses")
{licences}

Because of the Essen collection, treat these weights as **non-commercial** unless retrained without it.

## Training
- Steps: {state['step']:,} at batch {state['batch']} ({state['melodies']:,} melodies seen); wall time
  {state['wall'] / 60:.1f} min on 1 CPU thread of a shared 2-core machine. Adam, peak lr {state['lr']:g}, exponential
  decay (x0.9995 per step, floor 1e-4).
- Loss: teacher-forced cross-entropy + beta x max(KL - {state['free_nats']:g} nats, 0), beta annealed 0 -> {MAX_BETA}
  over {BETA_WARMUP} steps; word dropout {state['word_dropout']} on the decoder's inputs so that z carries the melody.

![training curve](training_curve.png)

## Evaluation (fp16 weights as shipped; {ev['melodies']:,} held-out melodies; z = posterior mean)
| measure | value |
|---|---|
| teacher-forced token accuracy | {ev['teacher_forced_accuracy']:.1%} |
| greedy-from-z token accuracy (decode z alone, argmax) | {ev['greedy_accuracy']:.1%} |
| exact-melody rate (all 32 steps right, greedy) | {ev['exact_melody_rate']:.1%} |
| KL(q(z given melody) vs N(0, I)), nats per melody | {ev['kl_nats']:.1f} |
| chance: always predicting the commonest token ({majority}) | {ev['majority_token_rate']:.1%} |
| decoder alone (z = 0), teacher-forced | {ev['decoder_alone_teacher_forced_accuracy']:.1%} |

- Prior samples (z ~ N(0, I), seeds 0-{ev['prior_samples'] - 1}): {ev['prior_mean_notes']:.1f} notes per melody on average;
  {ev['prior_melodic_rate']:.0%} have at least {MIN_NOTES} notes.
- Interpolation between 50 pairs of held-out melodies in 8 steps: neighbouring melodies differ in
  {ev['slerp_neighbour_change']:.0%} of their steps with slerp, {ev['lerp_neighbour_change']:.0%} with lerp.

Built by `python -m studio.training.melody_vae train --minutes N` then `python -m studio.training.melody_vae export`
(Python {platform.python_version()}, torch; see pyproject.toml).
"""
    (folder / "MODEL_CARD.md").write_text(text, encoding="utf-8")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("data")
    t = sub.add_parser("train")
    t.add_argument("--minutes", type=float, default=40.0, help="wall time of this run; resume adds more")
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--hidden", type=int, default=256)
    t.add_argument("--z-dim", type=int, default=32)
    t.add_argument("--free-nats", type=float, default=FREE_NATS)
    t.add_argument("--word-dropout", type=float, default=WORD_DROPOUT)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--save-every", type=float, default=180.0, help="seconds between checkpoints")
    t.add_argument("--log-every", type=int, default=50)
    t.add_argument("--eval-melodies", type=int, default=1000)
    for name in ("eval", "export"):
        e = sub.add_parser(name)
        e.add_argument("--eval-melodies", type=int, default=3000)
        e.add_argument("--threads", type=int, default=1)
        if name == "eval":
            e.add_argument("--checkpoint", action="store_true", help="score the run's checkpoint, not models/")
    args = parser.parse_args(argv)
    if args.command == "data":
        build_windows(music_data.default_cache_file(), windows_file())
    elif args.command == "train":
        train(args)
    elif args.command == "eval":
        eval_only(args)
    elif args.command == "export":
        export(args)


if __name__ == "__main__":
    main()
