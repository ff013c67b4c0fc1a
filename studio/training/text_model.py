"""The neural text model (GPT-2, transformers' `GPT2LMHeadModel`): building it, one training step, scoring, sampling.

Scores are bits per byte of held-out text, so byte-level, BPE and n-gram models compare fairly.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from studio.training import run as run_files
from studio.training.text_tokens import EOT

MODEL_NAME = "text-gpt"
MARKOV_NAME = "text-markov"
SETTINGS = ("vocab_size", "layers", "width", "heads", "context", "dropout")  # a run's settings.json
# What training.json (beside exported weights) carries from a run's state, and a later run takes up again.
TRAINING_KEYS = ("step", "wall_seconds", "tokens", "history", "best_bpb", "corpus", "corpus_changes")


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


def settings_from_config(config: dict) -> dict:
    """A run's settings from an exported model's config.json."""
    return {
        "vocab_size": config["vocab_size"],
        "layers": config["n_layer"],
        "width": config["n_embd"],
        "heads": config["n_head"],
        "context": config["n_positions"],
        "dropout": config.get("resid_pdrop", 0.1),
    }


def model_from_settings(settings: dict, vocab_size: int, dropout: float | None = None):
    """The model a run's settings describe (`vocab_size`: the tokenizer's own length)."""
    dropout = settings["dropout"] if dropout is None else dropout
    return build_model(vocab_size, settings["layers"], settings["width"], settings["heads"], settings["context"], dropout)


def learning_rate(step: int, peak: float, warmup: int, max_steps: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak at max_steps (flat after)."""
    return run_files.learning_rate(step, peak, warmup, max_steps, floor=peak / 10)


def next_token_loss(model, batch: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy over a batch of windows, in nats/token."""
    logits = model(batch[:, :-1]).logits
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))


def train_step(model, optimizer, batch: torch.Tensor, lr: float) -> float:
    """One optimiser step on a batch of windows (next-token cross-entropy); returns the loss in nats/token."""
    run_files.set_learning_rate(optimizer, lr)
    loss = next_token_loss(model, batch)
    run_files.optimise(optimizer, loss)
    return loss.item()


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
