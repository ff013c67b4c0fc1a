"""Train the built-in text models on the fortune cookies and the Jargon File (see text_data.py).

    python -m studio.training.text train    # GPT-2-style LM; resumable; checkpoints to /work/runs/text-gpt/
    python -m studio.training.text export   # best weights -> models/text-gpt/ (fp16 safetensors + tokenizer + card)
    python -m studio.training.text markov   # order-5 Kneser-Ney byte model -> models/text-markov/

Evaluation is in bits per byte of held-out text, so byte-level, BPE and n-gram models compare fairly:
every model predicts the same held-out stream (entries joined by an end-of-text symbol that counts as
one byte), and bits/byte = total negative log2-likelihood / number of bytes predicted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from studio.data import text as text_data

RUN_DIR = Path(os.environ.get("STUDIO_RUNS", "/work/runs")) / "text-gpt"
EOT = "<|endoftext|>"


def model_dir(name: str) -> Path:
    from studio import paths

    return paths.builtin_model_dir(name)


def log(message: str, log_file: Path | None = None) -> None:
    line = f"[{time.strftime('%H:%M:%S')}] {message}"
    print(line, flush=True)
    if log_file is not None:
        with open(log_file, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


# ----------------------------------------------------------------------------------------------- tokenizer


def build_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer (GPT-2 style). vocab_size 257 means plain bytes + end-of-text, no merges."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte is a token: no unknown text
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=EOT, eos_token=EOT, unk_token=EOT, pad_token=EOT, model_max_length=1_000_000
    )


def bytes_per_token(tokenizer) -> np.ndarray:
    """How many text bytes each token stands for (ByteLevel maps one byte to one character); EOT counts 1."""
    lengths = np.ones(len(tokenizer), dtype=np.int64)
    for token, index in tokenizer.get_vocab().items():
        lengths[index] = 1 if token == EOT else len(token)
    return lengths


def encode_stream(tokenizer, texts: list[str]) -> np.ndarray:
    """All texts as one token stream, each followed by end-of-text (so the model learns where entries end)."""
    eot = tokenizer.convert_tokens_to_ids(EOT)
    ids: list[int] = []
    for encoded in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids += encoded
        ids.append(eot)
    return np.asarray(ids, dtype=np.int32)


# ----------------------------------------------------------------------------------------------- model


def build_model(vocab_size: int, layers: int, width: int, heads: int, context: int, dropout: float):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=context,
        n_embd=width,
        n_layer=layers,
        n_head=heads,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=0,
        eos_token_id=0,
        tie_word_embeddings=True,  # halves the embedding cost: matters under 20 MB
    )
    return GPT2LMHeadModel(config)


@torch.no_grad()
def held_out_bits_per_byte(model, stream: np.ndarray, token_bytes: np.ndarray, context: int, batch: int = 16) -> float:
    """Non-overlapping windows over the held-out stream; every token but each window's first is predicted."""
    model.eval()
    total_bits, total_bytes = 0.0, 0
    windows = [stream[i : i + context + 1] for i in range(0, len(stream) - 1, context)]
    windows = [w for w in windows if len(w) >= 2]
    full = [w for w in windows if len(w) == context + 1]
    groups = [full[i : i + batch] for i in range(0, len(full), batch)] + [[w] for w in windows if len(w) != context + 1]
    for group in groups:
        ids = torch.from_numpy(np.stack(group).astype(np.int64))
        logits = model(ids[:, :-1]).logits.float()
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum"
        )
        total_bits += nll.item() / math.log(2)
        total_bytes += int(sum(token_bytes[w[1:]].sum() for w in group))
    model.train()
    return total_bits / max(total_bytes, 1)


def learning_rate(step: int, peak: float, warmup: int, max_steps: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak at max_steps (flat after)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def sample_text(model, tokenizer, prompt: str, new_tokens: int = 120, temperature: float = 0.8, seed: int = 0) -> str:
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    if ids.shape[1] == 0:
        ids = torch.tensor([[tokenizer.convert_tokens_to_ids(EOT)]])
    start = ids.shape[1]
    context = model.config.n_positions
    with torch.no_grad():
        for _ in range(new_tokens):
            logits = model(ids[:, -context:]).logits[0, -1].float() / temperature
            next_id = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
            if next_id.item() == tokenizer.eos_token_id:
                break
            ids = torch.cat([ids, next_id[None]], dim=1)
    model.train()
    return prompt + tokenizer.decode(ids[0, start:])


# ----------------------------------------------------------------------------------------------- data


def require_full_corpus() -> None:
    missing = text_data.missing_packages()
    if missing:
        raise SystemExit(
            "the text corpus is incomplete; install its Debian packages first:\n"
            f"  sudo apt-get install --no-install-recommends {' '.join(missing)}"
        )


def prepare_data(run_dir: Path, vocab_size: int, tokenizer_dir: Path | None = None):
    """Tokenizer + train/held-out token streams, cached in the run folder so a resume reuses them exactly."""
    from transformers import AutoTokenizer

    require_full_corpus()
    entries = text_data.load_entries()
    train_texts, held_texts = text_data.split_entries(entries)
    tok_dir = run_dir / "tokenizer"
    if not (tok_dir / "tokenizer.json").exists():
        if tokenizer_dir is not None and (tokenizer_dir / "tokenizer.json").exists():
            shutil.copytree(tokenizer_dir, tok_dir, dirs_exist_ok=True)
        else:
            build_tokenizer(train_texts, vocab_size).save_pretrained(tok_dir)
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    cache = run_dir / "tokens.npz"
    if cache.exists():
        data = np.load(cache)
        train, held = data["train"], data["held_out"]
    else:
        train, held = encode_stream(tokenizer, train_texts), encode_stream(tokenizer, held_texts)
        np.savez(cache, train=train, held_out=held)
    return tokenizer, train, held, text_data.corpus_summary(entries)


def random_batch(stream: np.ndarray, batch: int, context: int, rng: np.random.Generator) -> torch.Tensor:
    starts = rng.integers(0, len(stream) - context - 1, size=batch)
    return torch.from_numpy(np.stack([stream[s : s + context + 1] for s in starts]).astype(np.int64))


def train_step(model, optimizer, batch: torch.Tensor, lr: float) -> float:
    """One optimiser step on a batch of windows (next-token cross-entropy); returns the loss in nats/token."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    logits = model(batch[:, :-1]).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # a bad batch must not undo hours of training
    optimizer.step()
    return loss.item()


# ----------------------------------------------------------------------------------------------- checkpoints


def save_atomically(obj, path: Path) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, temporary)
    os.replace(temporary, path)


def save_best_weights(model, path: Path) -> None:
    from safetensors.torch import save_file

    temporary = path.with_suffix(".tmp")
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(temporary))
    os.replace(temporary, path)


def train(args: argparse.Namespace) -> None:
    from safetensors.torch import load_file

    torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_file = run_dir / "train.log"
    settings_file = run_dir / "settings.json"
    checkpoint_file = run_dir / "checkpoint.pt"
    builtin = model_dir("text-gpt")

    # The architecture is fixed by the first start of a run; a resume reads it back.
    if settings_file.exists():
        settings = json.loads(settings_file.read_text())
    elif (builtin / "config.json").exists() and not args.fresh:
        config = json.loads((builtin / "config.json").read_text())
        settings = {
            "vocab_size": config["vocab_size"],
            "layers": config["n_layer"],
            "width": config["n_embd"],
            "heads": config["n_head"],
            "context": config["n_positions"],
            "dropout": config.get("resid_pdrop", 0.1),
        }
    else:
        settings = {
            "vocab_size": args.vocab_size,
            "layers": args.layers,
            "width": args.width,
            "heads": args.heads,
            "context": args.context,
            "dropout": args.dropout,
        }
    settings_file.write_text(json.dumps(settings, indent=2))
    tokenizer, train_stream, held_stream, summary = prepare_data(
        run_dir, settings["vocab_size"], builtin if (builtin / "tokenizer.json").exists() and not args.fresh else None
    )
    token_bytes = bytes_per_token(tokenizer)
    model = build_model(
        len(tokenizer),
        settings["layers"],
        settings["width"],
        settings["heads"],
        settings["context"],
        settings["dropout"],
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    state = {"step": 0, "wall_seconds": 0.0, "tokens": 0, "history": [], "best_bpb": float("inf")}

    if checkpoint_file.exists():
        checkpoint = torch.load(checkpoint_file, map_location="cpu", weights_only=True)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        state = checkpoint["state"]
        log(f"resumed from {checkpoint_file} at step {state['step']}", log_file)
    elif (builtin / "model.safetensors").exists() and not args.fresh:
        weights = {k: v.float() for k, v in load_file(str(builtin / "model.safetensors")).items()}
        model.load_state_dict(weights, strict=False)
        trained = json.loads((builtin / "training.json").read_text()) if (builtin / "training.json").exists() else {}
        keys = ("step", "wall_seconds", "tokens", "history", "best_bpb", "corpus", "corpus_changes")
        state.update({k: trained[k] for k in keys if k in trained})
        # A fresh optimiser: its own warm-up and cosine, counted from here.
        state["schedule_start"] = state["step"]
        log(f"started from the exported weights in {builtin} (step {state['step']})", log_file)
    else:
        log(f"new run: {json.dumps(settings)}; corpus {json.dumps(summary)}", log_file)
    corpus = {k: summary[k] for k in ("entries", "train_bytes", "held_out_bytes")}
    if state.get("corpus") != corpus:
        # Held-out figures on another corpus don't compare: the best checkpoint is chosen afresh from here.
        if state["step"]:
            state.setdefault("corpus_changes", []).append({"step": state["step"], "corpus": corpus})
            log(f"corpus changed at step {state['step']}: {json.dumps(corpus)}", log_file)
        state["corpus"], state["best_bpb"] = corpus, float("inf")
    params = sum(p.numel() for p in model.parameters())
    log(
        f"{params / 1e6:.2f} M parameters; {len(train_stream):,} train tokens, {len(held_stream):,} held-out tokens; "
        f"{token_bytes[train_stream].sum() / len(train_stream):.2f} bytes/token",
        log_file,
    )

    rng = np.random.default_rng(args.seed + state["step"])  # a resume does not replay the same batches
    torch.manual_seed(args.seed + state["step"])
    context = settings["context"]
    model.train()
    last_checkpoint = last_eval = time.monotonic()
    segment_start, segment_wall = time.monotonic(), state["wall_seconds"]
    running_loss = None
    stop_at = time.monotonic() + args.minutes * 60 if args.minutes else None

    def checkpoint_now() -> None:
        state["wall_seconds"] = segment_wall + time.monotonic() - segment_start
        save_atomically(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": state}, checkpoint_file
        )

    def evaluate_now() -> None:
        bpb = held_out_bits_per_byte(model, held_stream, token_bytes, context)
        wall = segment_wall + time.monotonic() - segment_start
        state["history"].append(
            {
                "step": state["step"],
                "train_loss": running_loss,
                "held_out_bpb": bpb,
                "wall_seconds": wall,
                "tokens": state["tokens"],
            }
        )
        if bpb < state["best_bpb"]:
            state["best_bpb"] = bpb
            save_best_weights(model, run_dir / "best.safetensors")
            (run_dir / "best.json").write_text(json.dumps({**state["history"][-1]}, indent=2))
        sample = sample_text(model, tokenizer, "The", seed=state["step"])
        log(
            f"step {state['step']}: held-out {bpb:.3f} bits/byte (best {state['best_bpb']:.3f}); "
            f"sample: {sample[:200]!r}",
            log_file,
        )

    while state["step"] < args.max_steps and (stop_at is None or time.monotonic() < stop_at):
        start = state.get("schedule_start", 0)
        lr = learning_rate(state["step"] - start, args.lr, args.warmup, args.max_steps - start)
        batch = random_batch(train_stream, args.batch, context, rng)
        loss = train_step(model, optimizer, batch, lr)
        state["step"] += 1
        state["tokens"] += batch[:, 1:].numel()
        running_loss = loss if running_loss is None else 0.95 * running_loss + 0.05 * loss
        now = time.monotonic()
        if state["step"] % args.log_every == 0:
            wall = segment_wall + now - segment_start
            log(
                f"step {state['step']} loss {running_loss:.3f} ({running_loss / math.log(2):.2f} bits/token) "
                f"lr {lr:.2e} {state['tokens'] / max(wall, 1e-9):.0f} tok/s overall",
                log_file,
            )
        if now - last_eval > args.eval_minutes * 60:
            evaluate_now()
            last_eval = time.monotonic()
        if now - last_checkpoint > args.checkpoint_minutes * 60:
            checkpoint_now()
            last_checkpoint = time.monotonic()
    evaluate_now()
    checkpoint_now()
    log(f"stopped at step {state['step']}", log_file)


# ----------------------------------------------------------------------------------------------- export


def draw_loss_curve(
    history: list[dict],
    markov_bpb: float | None,
    path: Path,
    bytes_per_train_token: float = 1.0,
    corpus_changes: list[int] | None = None,
) -> None:
    """Held-out (blue) and training (grey, smoothed) bits/byte against step, drawn with Pillow (no matplotlib).

    A corpus change (a dashed line) starts a new held-out set: the blue line is broken there, because
    figures on two different held-out sets are not one curve.
    """
    from PIL import Image, ImageDraw

    width, height, margin = 640, 360, 48
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    points = [(h["step"], h["held_out_bpb"]) for h in history if h.get("held_out_bpb") is not None]
    train = [(h["step"], h["train_loss"] / math.log(2) / bytes_per_train_token) for h in history if h.get("train_loss")]
    if not points:
        image.save(path)
        return
    max_step = max(p[0] for p in points) or 1
    values = [p[1] for p in points] + ([markov_bpb] if markov_bpb else [])
    low, high = min(values + [v for _, v in train] + [2.0]) - 0.1, min(max(values), 8.0) + 0.1

    def xy(step: float, value: float) -> tuple[float, float]:
        x = margin + (width - 2 * margin) * step / max_step
        y = height - margin - (height - 2 * margin) * (min(value, high) - low) / (high - low)
        return x, y

    draw.rectangle([margin, margin, width - margin, height - margin], outline="black")
    for level in np.arange(math.ceil(low * 2) / 2, high, 0.5):
        _, y = xy(0, level)
        draw.line([margin, y, width - margin, y], fill=(225, 225, 225))
        draw.text((4, y - 6), f"{level:.1f}", fill="black")
    if markov_bpb:
        _, y = xy(0, markov_bpb)
        draw.line([margin, y, width - margin, y], fill=(200, 60, 60), width=2)
        draw.text((width - margin - 190, y - 14), f"order-5 Markov {markov_bpb:.3f}", fill=(200, 60, 60))
    if len(train) > 1:
        draw.line([xy(s, v) for s, v in train], fill=(150, 150, 150), width=1)
    changes = sorted(corpus_changes or [])
    for change in changes:
        x, _ = xy(change, low)
        for y in range(margin, height - margin, 8):
            draw.line([x, y, x, y + 4], fill=(90, 90, 90))
        draw.text((x - 84, margin + 6), "larger corpus ->", fill=(90, 90, 90))
    bounds = [-1] + changes + [float("inf")]
    for begin, end in zip(bounds, bounds[1:], strict=False):
        segment = [xy(s, v) for s, v in points if begin < s <= end]
        if segment:
            draw.line(segment if len(segment) > 1 else segment * 2, fill=(30, 90, 200), width=2)
    baseline_note = " on the latest corpus" if changes else ""
    draw.text(
        (margin, 12),
        f"bits/byte: text-gpt held-out (blue), training (grey); Markov baseline{baseline_note} (red)",
        fill="black",
    )
    draw.text((width - margin - 80, height - margin + 8), f"step {max_step:,}", fill="black")
    draw.text((margin, height - margin + 8), "0", fill="black")
    image.save(path)


def export(args: argparse.Namespace) -> None:
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    run_dir = Path(args.run_dir)
    out = Path(args.out) if args.out else model_dir("text-gpt")
    settings = json.loads((run_dir / "settings.json").read_text())
    checkpoint = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    state = checkpoint["state"]
    best = json.loads((run_dir / "best.json").read_text())
    weights = load_file(str(run_dir / "best.safetensors"))
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "tokenizer")
    model = build_model(
        len(tokenizer),
        settings["layers"],
        settings["width"],
        settings["heads"],
        settings["context"],
        settings["dropout"],
    )
    model.load_state_dict(weights, strict=False)
    model.tie_weights()
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.model_max_length = settings["context"]
    model.config.dtype = "float16"  # what the file holds; the app's loader asks for float32 on CPU
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    portable_tokenizer_config(out / "tokenizer_config.json")
    state_fp16 = {k: v.half().contiguous() for k, v in load_file(str(out / "model.safetensors")).items()}
    save_file(state_fp16, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "model.safetensors").chmod(0o644)

    # Numbers for the card: held-out bits/byte of the fp16 weights as shipped, and the Markov baseline.
    _, train_stream, held_stream, summary = prepare_data(run_dir, settings["vocab_size"])
    token_bytes = bytes_per_token(tokenizer)
    shipped = build_model(
        len(tokenizer), settings["layers"], settings["width"], settings["heads"], settings["context"], 0.0
    )
    shipped.load_state_dict({k: v.float() for k, v in state_fp16.items()}, strict=False)
    shipped.tie_weights()
    bpb = held_out_bits_per_byte(shipped, held_stream, token_bytes, settings["context"])
    markov_file = run_dir.parent / "text-markov" / "baseline.json"
    markov = json.loads(markov_file.read_text()) if markov_file.exists() else {}
    markov_bpb = markov.get("held_out_bpb")
    changes = [c["step"] for c in state.get("corpus_changes", [])]
    draw_loss_curve(
        state["history"], markov_bpb, out / "loss_curve.png", float(token_bytes[train_stream].mean()), changes
    )
    samples = [
        sample_text(shipped, tokenizer, prompt, new_tokens=100, temperature=0.8, seed=i)
        for i, prompt in enumerate(["The", "A hacker", "Love is", "Q:"])
    ]
    keys = ("step", "wall_seconds", "tokens", "history", "best_bpb", "corpus", "corpus_changes")
    training = {k: state[k] for k in keys if k in state}
    training["step"] = max(training["step"], best["step"])  # an evaluation can come after the last checkpoint
    training.update(
        {"best_step": best["step"], "held_out_bpb_fp16": bpb, "markov_bpb": markov_bpb, "settings": settings}
    )
    training["by_source"] = by_source = per_source_figures(out / "model.safetensors", out)
    (out / "training.json").write_text(json.dumps(training, indent=1))
    write_model_card(
        out, settings, summary, training, bpb, markov, samples, sum(p.numel() for p in shipped.parameters()), by_source
    )
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    log(
        f"exported step {best['step']} to {out}: {size / 1e6:.1f} MB, held-out {bpb:.3f} bits/byte "
        f"(Markov {markov_bpb})"
    )


def portable_tokenizer_config(path: Path) -> None:
    """Name the class transformers 4.x and 5.x both know (5.x writes its own "TokenizersBackend")."""
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    for machine_specific in ("is_local", "local_files_only", "backend"):
        config.pop(machine_specific, None)
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")


def write_model_card(
    out: Path,
    settings: dict,
    summary: dict,
    training: dict,
    bpb: float,
    markov: dict,
    samples: list[str],
    params: int,
    by_source: dict | None = None,
) -> None:
    markov_bpb = markov.get("held_out_bpb")
    gain = 100 * (1 - bpb / markov_bpb) if markov_bpb else None
    versus = "not measured against" if gain is None else f"{gain:.1f} % below" if gain >= 0 else f"{-gain:.1f} % above"
    hours = training["wall_seconds"] / 3600
    sample_text_md = "\n\n".join("```\n" + s.strip() + "\n```" for s in samples)
    corpus_history = "".join(
        f"Up to step {change['step']:,} the model trained on an earlier, different corpus; "
        f"from there it went on with those weights on the corpus above, with a fresh optimiser (warm-up, cosine). "
        f"Held-out figures before that step are on the earlier corpus's held-out set (the broken line in the curve).\n"
        for change in training.get("corpus_changes", [])
    )
    by_source_md = ""
    if by_source:
        rows = "\n".join(
            f"| {name} | {f['held_out_bytes']:,} | {f['gpt_bpb']:.3f} | {f['markov_bpb']:.3f} | {f['gpt_below_markov_percent']:.1f} % |"
            for name, f in by_source.items()
        )
        by_source_md = (
            "\nBy source (`python -m studio.training.text compare`; the Markov model retrained on the same split):\n\n"
            "| held-out part | bytes | text-gpt | order-5 Markov | text-gpt below Markov |\n|---|---|---|---|---|\n"
            + rows
            + "\n"
        )
    card = f"""# text-gpt — the built-in neural text model of Latent Studio

A small GPT-2-style causal language model (transformers `GPT2LMHeadModel`) trained from scratch on
fortune cookies and three hacker/satirical dictionaries (the Jargon File, The Devil's Dictionary, FOLDOC).
It writes short quips, jokes and dictionary-style entries. Load it like any transformers model:

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained("models/text-gpt")
model = AutoModelForCausalLM.from_pretrained("models/text-gpt")
```

## Data and licence
{text_data.corpus_markdown(summary)}
- {text_data.WEIGHTS_LICENCE}

## Architecture
GPT-2: {settings["layers"]} layers × {settings["width"]} wide, {settings["heads"]} heads, context {settings["context"]} tokens,
tied input/output embeddings, {params / 1e6:.2f} M parameters, stored as fp16 safetensors.
Tokenizer: byte-level BPE (`tokenizers`), {settings["vocab_size"]} tokens including `<|endoftext|>`, which ends each entry.

## Training
`python -m studio.training.text train` on CPU (1-2 threads, nice 10): AdamW (β 0.9/0.95, weight decay 0.1),
peak learning rate with warm-up and cosine decay, batches of 8 random {settings["context"]}-token windows, dropout {settings["dropout"]}.
Steps: {training["step"]:,} ({training["tokens"]:,} tokens); wall time {hours:.2f} h. The exported weights are the best
held-out checkpoint (step {training["best_step"]:,}).
{corpus_history}
![loss curve](loss_curve.png)

## Evaluation (held-out bits per byte, lower is better)
| model | bits/byte |
|---|---|
| text-gpt (these fp16 weights) | {bpb:.3f} |
| order-5 byte Markov, {markov.get("smoothing", "interpolated Kneser-Ney")} (`models/text-markov`) | {markov_bpb if markov_bpb is None else f"{markov_bpb:.3f}"} |

text-gpt is {versus} the Markov baseline. Both predict the same held-out entries, each followed by an
end-of-text symbol counted as one byte.
{by_source_md}
## Samples (temperature 0.8, seeds 0-3)
{sample_text_md}
"""
    (out / "MODEL_CARD.md").write_text(card, encoding="utf-8")


# ----------------------------------------------------------------------------------------------- markov


def build_markov(args: argparse.Namespace) -> None:
    from studio.core import ngram as markov

    require_full_corpus()
    entries = text_data.load_entries()
    train_texts, held_texts = text_data.split_entries(entries)
    started = time.monotonic()
    model = markov.train_byte_model(train_texts, order=args.order)
    trained = time.monotonic() - started
    bpb = model.bits_per_symbol(markov.texts_to_symbols(held_texts))
    out = Path(args.out) if args.out else model_dir("text-markov")
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
    baseline = RUN_DIR.parent / "text-markov"
    baseline.mkdir(parents=True, exist_ok=True)
    (baseline / "baseline.json").write_text(json.dumps(info, indent=2))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(json.dumps({**info, "folder": str(out), "folder_mb": round(size / 1e6, 2)}, indent=2))


def markov_samples(ngrams) -> list[str]:
    from studio.engine.text import generate as engine_text

    model = engine_text.MarkovTextModel(ngrams)
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


# ----------------------------------------------------------------------------------------------- speed


def speed_figures(model_ref: str, new_tokens: int = 200, runs: int = 5, prompt: str = "The meaning of life") -> dict:
    """Same settings, interleaved runs: our streaming loop (with previews) vs bare `model.generate`.

    Medians, so one run slowed by another process on a shared machine does not decide the ratio.
    """
    from studio.core import catalog
    from studio.engine.text import generate as engine_text

    model = engine_text.load_text_model(catalog.resolve(model_ref))
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
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from studio.core import ngram as markov

    require_full_corpus()
    entries = text_data.load_entries()
    train_texts, _ = text_data.split_entries(entries)
    ngrams = markov.train_byte_model(train_texts, order=order)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, model_max_length=1_000_000)  # whole entries
    token_bytes = bytes_per_token(tokenizer)
    # A model folder has config.json; a training run folder (best.safetensors) has settings.json.
    if (weights.parent / "config.json").exists():
        config = json.loads((weights.parent / "config.json").read_text())
        layers, width, heads, context = (config[k] for k in ("n_layer", "n_embd", "n_head", "n_positions"))
    elif (weights.parent / "settings.json").exists():
        settings = json.loads((weights.parent / "settings.json").read_text())
        layers, width, heads, context = (settings[k] for k in ("layers", "width", "heads", "context"))
    else:
        raise SystemExit(f"no config.json or settings.json beside {weights}: can't tell the model's shape")
    state = {k: v.float() for k, v in load_file(str(weights)).items()}
    model = build_model(len(tokenizer), layers, width, heads, context, 0.0)
    model.load_state_dict(state, strict=False)
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


def compare(args: argparse.Namespace) -> None:
    weights = Path(args.weights)
    tokenizer_dir = Path(args.tokenizer) if args.tokenizer else weights.parent
    if not (tokenizer_dir / "tokenizer.json").exists():
        tokenizer_dir = tokenizer_dir / "tokenizer"
    print(json.dumps(per_source_figures(weights, tokenizer_dir, args.order), indent=2))


# ----------------------------------------------------------------------------------------------- CLI


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
    cmp_ = commands.add_parser("compare", help="held-out bits/byte of GPT weights vs the Markov model, per source")
    cmp_.add_argument("--weights", default=str(model_dir("text-gpt") / "model.safetensors"))
    cmp_.add_argument("--tokenizer", default="", help="folder with tokenizer.json (default: beside the weights)")
    cmp_.add_argument("--order", type=int, default=5)
    args = parser.parse_args(argv)
    commands_by_name = {
        "train": train,
        "export": export,
        "markov": build_markov,
        "bench": benchmark,
        "compare": compare,
    }
    commands_by_name[args.command](args)


if __name__ == "__main__":
    main(sys.argv[1:])
