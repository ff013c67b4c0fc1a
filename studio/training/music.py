"""Train the built-in music models on the music21 corpus: a small GPT-2 and an n-gram baseline.

    python -m studio.data.music          # parse the corpus once (minutes) -> corpus.jsonl.gz
    python -m studio.training.music tokens        # notes -> token ids (seconds), done by `train` if missing
    python -m studio.training.music train         # resumable; checkpoints every ~3 min in the run folder
    python -m studio.training.music export        # best weights -> models/music-gpt/ (fp16) + MODEL_CARD.md
    python -m studio.training.music markov        # n-gram baseline -> models/music-markov/
    python -m studio.training.music eval          # held-out loss (GPT vs n-gram), in-key rates

The run folder is $STUDIO_RUNS_DIR/music-gpt (default /work/runs/music-gpt), outside the repository.

Training windows are 512 tokens packed from pieces: each piece contributes its tags plus its tokens from a
random bar on (bar 0 half of the time), transposed by a random interval with the key tag moved to match
(transposition augmentation: 12x the data for free). Held-out pieces (5 %, by a hash of their id) are
scored in their own key on their first 512 tokens, by the GPT and by the n-gram on the very same tokens.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from studio import paths
from studio.core.recipe import Recipe
from studio.data import music as music_data
from studio.engine.music import generate as M

CONTEXT = 512
MODEL_NAME = "music-gpt"
MARKOV_NAME = "music-markov"
ARCH = {"n_layer": 4, "n_embd": 192, "n_head": 4}


def run_dir() -> Path:
    path = Path(os.environ.get("STUDIO_RUNS_DIR", "/work/runs")) / MODEL_NAME
    path.mkdir(parents=True, exist_ok=True)
    return path


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


# --- tokens ---------------------------------------------------------------------------------------


def piece_tags(piece: dict) -> M.Tags | None:
    if piece["metre"] not in M.METRES:
        return None
    return M.Tags(music_data.refine_style(piece), piece["tonic"], piece["mode"], piece["metre"], M.tempo_bucket(piece["tempo"]))


def tokenize_piece(tok: M.MusicTokenizer, piece: dict) -> tuple[list[int], list[int]] | None:
    """(tag ids, event ids) of one cached piece; None when its metre or range does not fit."""
    tags = piece_tags(piece)
    if tags is None:
        return None
    notes = [M.Note(int(p), float(s), float(d), int(v), int(voice)) for p, s, d, v, voice in piece["notes"]]
    if any(n.start < 0 for n in notes) or not all(M.PITCH_LOW <= n.pitch <= M.PITCH_HIGH for n in notes):
        return None
    return tok.tag_ids(tags), tok.encode_notes(notes, tags.metre)


def build_tokens(corpus: Path, out: Path) -> dict:
    tok = M.MusicTokenizer()
    pieces = music_data.load_pieces(corpus)
    tags, events, ids, held, collections, styles = [], [], [], [], [], []
    skipped = Counter()
    for piece in pieces:
        encoded = tokenize_piece(tok, piece)
        if encoded is None:
            skipped[piece["metre"]] += 1
            continue
        tags.append(encoded[0])
        events.append(np.asarray(encoded[1], dtype=np.int16))
        ids.append(piece["id"])
        held.append(music_data.is_held_out(piece["id"]))
        collections.append(piece["collection"])
        styles.append(music_data.refine_style(piece))
    lengths = np.asarray([len(e) for e in events])
    np.savez_compressed(
        out, tags=np.asarray(tags, dtype=np.int16), events=np.concatenate(events),
        offsets=np.concatenate([[0], np.cumsum(lengths)]), held=np.asarray(held),
        ids=np.asarray(ids), collections=np.asarray(collections), styles=np.asarray(styles),
    )
    tok.save(out.parent)
    stats = {"pieces": len(ids), "tokens": int(lengths.sum() + 5 * len(ids)), "skipped_metres": dict(skipped),
             "held_out_pieces": int(sum(held)), "collections": dict(Counter(collections)), "styles": dict(Counter(styles))}
    (out.parent / "tokens_stats.json").write_text(json.dumps(stats, indent=1))
    log(f"tokens: {stats}")
    return stats


class TokenData:
    """Pieces as token arrays, with the split, bar positions and transposition tables."""

    def __init__(self, path: Path) -> None:
        data = np.load(path)
        self.tok = M.MusicTokenizer()
        self.tags = data["tags"].astype(np.int64)
        events = data["events"].astype(np.int64)
        offsets = data["offsets"]
        self.events = [events[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
        self.held = data["held"]
        self.ids = data["ids"]
        self.styles = data["styles"]
        self.train_index = np.flatnonzero(~self.held)
        self.held_index = np.flatnonzero(self.held)
        self.bar_starts = [np.flatnonzero(e == self.tok.bar_id) for e in self.events]
        pitch_ids = np.asarray(self.tok.ids_of("Pitch"))
        self.pitch_range = []
        for e in self.events:
            pitches = e[np.isin(e, pitch_ids)] - pitch_ids[0] + M.PITCH_LOW
            self.pitch_range.append((int(pitches.min()), int(pitches.max())) if len(pitches) else (60, 60))
        self.tables = {s: np.asarray(self.tok.transpose_table(s)) for s in range(-6, 7)}

    def sequence(self, i: int) -> np.ndarray:
        return np.concatenate([self.tags[i], self.events[i]])

    def random_shift(self, i: int, rng: random.Random) -> int:
        low, high = self.pitch_range[i]
        options = [s for s in range(-6, 6) if low + s >= M.PITCH_LOW and high + s <= M.PITCH_HIGH]
        return rng.choice(options) if options else 0

    def window_part(self, i: int, rng: random.Random, augment: bool) -> np.ndarray:
        bars = self.bar_starts[i]
        start = 0 if rng.random() < 0.5 or len(bars) == 0 else int(bars[rng.randrange(len(bars))])
        seq = np.concatenate([self.tags[i], self.events[i][start:start + CONTEXT]])
        if augment:
            seq = self.tables[self.random_shift(i, rng)][seq]
        return seq

    def batch(self, size: int, rng: random.Random, augment: bool = True) -> np.ndarray:
        rows = np.empty((size, CONTEXT), dtype=np.int64)
        for r in range(size):
            parts, filled = [], 0
            while filled < CONTEXT:
                part = self.window_part(int(self.train_index[rng.randrange(len(self.train_index))]), rng, augment)
                parts.append(part)
                filled += len(part)
            rows[r] = np.concatenate(parts)[:CONTEXT]
        return rows

    def held_out_windows(self, limit: int = 400) -> list[np.ndarray]:
        """The first CONTEXT tokens of up to `limit` held-out pieces, spread evenly over the collections."""
        chosen = self.held_index
        if len(chosen) > limit:
            chosen = chosen[np.linspace(0, len(chosen) - 1, limit).round().astype(int)]
        return [self.sequence(int(i))[:CONTEXT] for i in chosen]


def tokens_file() -> Path:
    return run_dir() / "tokens.npz"


def ensure_tokens() -> Path:
    out = tokens_file()
    if not out.exists():
        corpus = music_data.default_cache_file()
        if not corpus.exists():
            sys.exit(f"no parsed corpus at {corpus}: run `python -m studio.data.music` first")
        build_tokens(corpus, out)
    return out


# --- the GPT --------------------------------------------------------------------------------------


def new_model(vocab_size: int, tok: M.MusicTokenizer, arch: dict | None = None, context: int = CONTEXT):
    from transformers import GPT2Config, GPT2LMHeadModel

    arch = {**ARCH, **(arch or {})}
    config = GPT2Config(
        vocab_size=vocab_size, n_positions=context, n_ctx=context, **arch,
        resid_pdrop=0.05, embd_pdrop=0.05, attn_pdrop=0.05,
        bos_token_id=tok.bos_id, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id,
    )
    return GPT2LMHeadModel(config)


def learning_rate(step: int, peak: float = 1.5e-3, warmup: int = 100, horizon: int = 2500, floor: float = 1e-4,
                  cycles: list | None = None) -> float:
    """Warm-up then cosine to `floor` at `horizon`; later cycles (warm restarts) are
    {"start", "peak", "end"} dicts, each warming up over 50 steps and decaying to `floor` at "end"."""
    for cycle in reversed(cycles or []):
        if step >= cycle["start"]:
            into = step - cycle["start"]
            if into < 50:
                return floor + (cycle["peak"] - floor) * (into + 1) / 50
            progress = min(1.0, (step - cycle["start"] - 50) / max(1, cycle["end"] - cycle["start"] - 50))
            return floor + 0.5 * (cycle["peak"] - floor) * (1 + math.cos(math.pi * progress))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, horizon - warmup))
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * progress))


def held_out_loss(model, windows: list[np.ndarray], batch: int = 16) -> float:
    """Mean loss per predicted token (nats) over held-out windows; padding is not scored."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(windows), batch):
            chunk = windows[start:start + batch]
            width = max(len(w) for w in chunk)
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            labels = torch.full((len(chunk), width), -100, dtype=torch.long)
            for r, w in enumerate(chunk):
                ids[r, :len(w)] = torch.as_tensor(w)
                labels[r, :len(w)] = torch.as_tensor(w)
            logits = model(input_ids=ids, attention_mask=(labels != -100).long()).logits[:, :-1]
            target = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                     ignore_index=-100, reduction="sum")
            total += float(loss)
            count += int((target != -100).sum())
    model.train()
    return total / max(1, count)


def save_atomic(obj, path: Path) -> None:
    import torch

    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_initial_weights(model) -> str:
    """Resume source when there is no checkpoint: the shipped fp16 weights, if any."""
    from safetensors.torch import load_file

    weights = paths.builtin_model_dir(MODEL_NAME) / "model.safetensors"
    if weights.exists():
        state = {k: v.float() for k, v in load_file(str(weights)).items()}
        model.load_state_dict(state, strict=False)
        return f"started from {weights}"
    return "started from scratch"


def train(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = TokenData(ensure_tokens())
    tok = data.tok
    model = new_model(len(tok), tok)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    ckpt_path = run_dir() / "checkpoint.pt"
    state = {"step": 0, "tokens": 0, "wall": 0.0, "history": [], "best": float("inf")}
    if ckpt_path.exists():
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
        log(f"resumed at step {state['step']} ({state['wall'] / 60:.0f} min trained)")
    else:
        log(load_initial_weights(model))
    if args.restart_peak:
        # A warm restart: more learning when the first schedule has run out (e.g. in a new session).
        end = state["step"] + args.restart_steps
        state.setdefault("cycles", []).append({"start": state["step"], "peak": args.restart_peak, "end": end})
        log(f"warm restart at step {state['step']}: lr up to {args.restart_peak:g}, cosine down to step {end}")
    rng = random.Random(1000 + state["step"])
    windows = data.held_out_windows(args.eval_pieces)
    fingerprint = f"{len(data.events)} pieces, {len(windows)} held-out windows"
    if state.get("data") != fingerprint:
        # The corpus changed (e.g. a fuller parse): held-out losses before and after do not compare.
        if state.get("data") is not None:
            log(f"data changed ({state['data']} -> {fingerprint}): best held-out loss reset")
            state["history"].append({"step": state["step"], "data_changed": fingerprint})
        state["data"], state["best"] = fingerprint, float("inf")
    log(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params; {len(data.train_index)} train pieces, "
        f"{len(data.held_index)} held out ({len(windows)} scored); batch {args.batch}x{CONTEXT}")
    model.train()
    last_save = last_eval = time.time()
    interval_start, interval_loss, interval_steps = time.time(), 0.0, 0
    while state["step"] < args.steps:
        step = state["step"]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, peak=args.lr, cycles=state.get("cycles"))
        batch = torch.as_tensor(data.batch(args.batch, rng, augment=not args.no_augment))
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state["step"] += 1
        state["tokens"] += batch.numel()
        interval_loss += float(loss.detach())
        interval_steps += 1
        if state["step"] % args.log_every == 0:
            elapsed = time.time() - interval_start
            log(f"step {state['step']} loss {interval_loss / interval_steps:.4f} "
                f"{interval_steps * batch.numel() / elapsed:.0f} tok/s lr {optimizer.param_groups[0]['lr']:.2e}")
        if time.time() - last_save > args.save_every or state["step"] >= args.steps:
            state["wall"] += time.time() - interval_start
            # Scoring the held-out set costs about a minute on a busy CPU: every few checkpoints only.
            evaluate_now = time.time() - last_eval > args.eval_every or state["step"] >= args.steps
            held = held_out_loss(model, windows) if evaluate_now else float("nan")
            if evaluate_now:
                last_eval = time.time()
            state["history"].append({"step": state["step"], "train": interval_loss / max(1, interval_steps),
                                     "held_out": held, "wall": state["wall"], "tokens": state["tokens"]})
            if evaluate_now and held < state["best"]:
                state["best"] = held
                from safetensors.torch import save_file

                best = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
                tmp = run_dir() / "best.safetensors.tmp"
                save_file(best, str(tmp), metadata={"step": str(state["step"]), "held_out": f"{held:.5f}"})
                os.replace(tmp, run_dir() / "best.safetensors")
            save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": state}, ckpt_path)
            log(f"checkpoint step {state['step']}: train {state['history'][-1]['train']:.4f}, held-out {held:.4f} "
                f"nats/token (best {state['best']:.4f})")
            last_save = time.time()
            interval_start, interval_loss, interval_steps = time.time(), 0.0, 0
    log("done")


# --- the n-gram baseline ---------------------------------------------------------------------------


def build_markov(data: TokenData, order: int, augment: bool) -> M.NGramModel:
    model = M.NGramModel(order, len(data.tok))
    shifts = range(-6, 6) if augment else [0]
    for i in data.train_index:
        seq = data.sequence(int(i))
        for shift in shifts:
            if augment:
                low, high = data.pitch_range[int(i)]
                if low + shift < M.PITCH_LOW or high + shift > M.PITCH_HIGH:
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
                log(f"n-gram order {order} augment {augment} {smoothing}: held-out {loss:.4f} nats/token "
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
    log(f"saved {folder}: {best}, held-out {pruned_loss:.4f} after pruning")


def write_markov_card(folder: Path, summary: dict) -> None:
    size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
    grid = "\n".join(f"| {r['order']} | {'yes' if r['augment'] else 'no'} | {r['smoothing']} | {r['held_out']:.4f} |"
                     for r in summary["grid"])
    text = f"""# Music Markov n-gram (built-in)

An interpolated n-gram model over the same note-event tokens as `music-gpt` (`music_vocab.json`): the
baseline the neural model is measured against, and an instant generator. numpy only (no torch), counts in
safetensors; loaded by `studio.engine.music.generate.load_music_model` (config.json model_type "studio-markov").

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


# --- export ---------------------------------------------------------------------------------------


def export(args) -> None:
    import torch
    from safetensors.torch import load_file

    data = TokenData(ensure_tokens())
    tok = data.tok
    source = run_dir() / "best.safetensors"
    if not source.exists():
        sys.exit(f"nothing to export: {source} does not exist yet (train first)")
    model = new_model(len(tok), tok)
    model.load_state_dict(load_file(str(source)), strict=False)
    model.eval()
    ckpt = torch.load(run_dir() / "checkpoint.pt", map_location="cpu", weights_only=True)
    state = ckpt["state"]
    folder = paths.builtin_model_dir(MODEL_NAME)
    folder.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(folder, safe_serialization=True)
    (folder / "model.safetensors").chmod(0o644)  # safetensors writes 0600; the file ships with the app
    model.float()
    tok.save(folder)
    evaluation = evaluate(data, args.eval_pieces, args.samples)
    (run_dir() / "eval.json").write_text(json.dumps(evaluation, indent=1))
    plot_loss(state["history"], evaluation.get("markov_held_out"), folder / "loss_curve.png")
    write_card(folder, state, evaluation, data)
    size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
    log(f"exported {folder} ({size:.1f} MB): held-out {evaluation['gpt_held_out']:.4f} vs n-gram "
        f"{evaluation.get('markov_held_out')}")


def evaluate(data: TokenData, eval_pieces: int, samples: int) -> dict:
    """Held-out loss of the GPT (fp16 weights, as shipped) vs the shipped n-gram, and in-key rates."""
    from safetensors.torch import load_file

    windows = data.held_out_windows(eval_pieces)
    shipped = new_model(len(data.tok), data.tok)
    folder = paths.builtin_model_dir(MODEL_NAME)
    shipped.load_state_dict({k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()},
                            strict=False)
    out = {"gpt_held_out": held_out_loss(shipped, windows), "held_out_pieces": len(windows)}
    markov_folder = paths.builtin_model_dir(MARKOV_NAME)
    if (markov_folder / "config.json").exists():
        ngram = M.NGramModel.load(markov_folder)
        out["markov_held_out"] = ngram.mean_loss([w.tolist() for w in windows])
        out["markov_order"] = ngram.order
        out["improvement"] = 1 - out["gpt_held_out"] / out["markov_held_out"]
        out["baseline"] = f"shipped order-{ngram.order} n-gram ({ngram.smoothing}, pruned)"
        grid = run_dir() / "markov_eval.json"
        if grid.exists():  # the strongest n-gram of the grid, before pruning: the honest baseline
            summary = json.loads(grid.read_text())
            if summary.get("eval_pieces") == len(windows) and summary["held_out"] < out["markov_held_out"]:
                out["markov_held_out"] = summary["held_out"]
                out["improvement"] = 1 - out["gpt_held_out"] / summary["held_out"]
                out["baseline"] = (f"best n-gram of the grid: order {summary['order']}, {summary['smoothing']}, "
                                   f"{'transposed copies' if summary['augment'] else 'original keys'}, unpruned")
    out["corpus_in_key"] = corpus_in_key_rate(data)
    out.update(sample_in_key_rates(folder, samples))
    return out


def corpus_in_key_rate(data: TokenData) -> float:
    """How often the corpus' own notes fit the key its tags name (natural + harmonic minor)."""
    hits = total = 0
    for i in range(len(data.events)):
        tags = data.tok.tags_of(data.tags[i].tolist())
        pitches = [n.pitch for n in data.tok.decode_notes(data.events[i].tolist(), tags.metre)]
        scale = music_data.scale_pitch_classes(tags.tonic, tags.mode)
        hits += sum(1 for p in pitches if p % 12 in scale)
        total += len(pitches)
    return hits / max(1, total)


SAMPLE_PROMPTS = ["slow chorale in D minor", "lively folk reel in G", "jig in A minor", "3/4 waltz in F",
                  "folk song in E flat major", "hornpipe in B flat", "chorale in A major", "air in C minor"]


def sample_in_key_rates(folder: Path, samples: int) -> dict:
    model = M.load_music_model(str(folder), "cpu")
    rates, lines = [], []
    for index in range(samples):
        prompt = SAMPLE_PROMPTS[index % len(SAMPLE_PROMPTS)]
        recipe = Recipe(modality="music", prompt=prompt, model=str(folder), seed=index,
                        params={"bars": 8, "temperature": 1.0, "top_k": 0, "top_p": 0.95})
        piece = M.generate(model, recipe).piece
        rate = M.in_key_fraction(piece.notes, piece.key)
        rates.append(rate)
        lines.append(f"{prompt!r} seed {index}: {len(piece.notes)} notes, {piece.key}, in key {rate:.0%}")
    return {"sample_in_key": float(np.mean(rates)) if rates else None, "samples": lines}



def plot_loss(history: list[dict], markov_loss: float | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    points = [h for h in history if "held_out" in h and h["held_out"] == h["held_out"]]  # evaluated ones
    steps = [h["step"] for h in points]
    ax.plot(steps, [h["train"] for h in points], label="train (augmented)")
    ax.plot(steps, [h["held_out"] for h in points], label="held-out")
    for change in (h for h in history if "data_changed" in h):
        ax.axvline(change["step"], color="lightgrey", linewidth=0.8)  # corpus grew: held-out set changed
    if markov_loss:
        ax.axhline(markov_loss, color="grey", linestyle="--", label="n-gram baseline (held-out)")
    ax.set_xlabel("step")
    ax.set_ylabel("nats / token")
    ax.set_title("music-gpt")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_card(folder: Path, state: dict, evaluation: dict, data: TokenData) -> None:
    stats = json.loads((run_dir() / "tokens_stats.json").read_text())
    licences = "\n".join(f"- **{name}**: {text}" for name, text in music_data.LICENCES.items())
    since_change = state["history"]
    for index, entry in enumerate(state["history"]):
        if "data_changed" in entry:
            since_change = state["history"][index + 1:]
    scored = [h for h in since_change if "held_out" in h and h["held_out"] == h["held_out"]]
    best = min(scored, key=lambda h: h["held_out"]) if scored else {}
    markov = evaluation.get("markov_held_out")
    comparison = (f"{evaluation['gpt_held_out']:.4f} nats/token vs {markov:.4f} for the {evaluation['baseline']} "
                  f"on the same tokens: {evaluation['improvement']:.1%} lower"
                  if markov else f"{evaluation['gpt_held_out']:.4f} nats/token (n-gram not built yet)")
    samples = "\n".join(f"- {line}" for line in evaluation.get("samples", []))
    size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
    text = f"""# Music GPT (built-in)

A small GPT-2 (transformers `GPT2LMHeadModel`, {ARCH['n_layer']} layers x {ARCH['n_embd']}, {ARCH['n_head']} heads,
context {CONTEXT}) over note-event tokens, trained here on 2 CPU cores. Folder size {size:.1f} MB (fp16 safetensors).
Loads with `AutoModelForCausalLM.from_pretrained(folder)`; the vocabulary is `{M.VOCAB_FILE}` (see
`studio/engine/music/generate.py` for the token grammar).

## Data
music21's bundled corpus (read offline from the music21 wheel): {stats['pieces']} pieces, {stats['tokens']:,} tokens,
{stats['held_out_pieces']} held out (5 % by a hash of the piece id). Pieces per collection: {stats['collections']}.
Style tags: {stats['styles']}. Transposition augmentation during training (random shift in -6..+5 semitones,
key tag moved with it).

### Licences (music21/corpus/license.txt: "Some encodings included in the corpus may not be used for commercial uses")
{licences}

Because of the Essen collection, treat these weights as **non-commercial** unless retrained without it.

## Training
- Steps: {state['step']:,} at batch of packed {CONTEXT}-token windows; {state['tokens']:,} tokens seen;
  wall time {state['wall'] / 3600:.2f} h on 1 CPU thread (shared machine). AdamW, peak lr 1.5e-3, cosine to 1e-4 over 2,500 steps.
- Warm restarts: {state.get('cycles') or 'none'}.
- Best checkpoint (exported): step {best.get('step')}, {best.get('held_out', float('nan')):.4f} nats/token in fp32 on the
  training monitor's 120 held-out pieces (the evaluation below uses 300).

![loss curve](loss_curve.png)

## Evaluation (held-out pieces, first {CONTEXT} tokens each, own key)
- Held-out loss (fp16 weights as shipped): {comparison}.
- In-key rate of generated notes (8 bars, temperature 1.0, top-p 0.95, key from the prompt):
  {evaluation.get('sample_in_key', float('nan')):.1%}; the corpus' own notes fit their tagged key
  {evaluation['corpus_in_key']:.1%} of the time (scale = major, or natural + harmonic minor).

## Samples (seeded; regenerate with the same recipe)
{samples}

Built by `python -m studio.training.music train` then `python -m studio.training.music export`
({platform.python_version()}, torch, transformers; see pyproject.toml).
"""
    (folder / "MODEL_CARD.md").write_text(text, encoding="utf-8")


def eval_only(args) -> None:
    data = TokenData(ensure_tokens())
    print(json.dumps(evaluate(data, args.eval_pieces, args.samples), indent=1))


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
