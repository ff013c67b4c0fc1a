"""The music GPT (transformers' `GPT2LMHeadModel` over note-event tokens): building it, its schedule, scoring."""

from __future__ import annotations

import numpy as np

from studio import paths
from studio.engine.music.tokenizer import MusicTokenizer
from studio.training import run as run_files
from studio.training.music_tokens import CONTEXT, MODEL_NAME

ARCH = {"n_layer": 4, "n_embd": 192, "n_head": 4}


def new_model(vocab_size: int, tok: MusicTokenizer, arch: dict | None = None, context: int = CONTEXT):
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
    {"start", "peak", "end"} dicts, each warming up from `floor` over 50 steps and decaying to `floor` at "end"."""
    for cycle in reversed(cycles or []):
        if step >= cycle["start"]:
            return run_files.learning_rate(step - cycle["start"], cycle["peak"], 50, cycle["end"] - cycle["start"],
                                           floor, warm_from=floor)
    return run_files.learning_rate(step, peak, warmup, horizon, floor)


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


def load_initial_weights(model) -> str:
    """Resume source when there is no checkpoint: the shipped fp16 weights, if any."""
    weights = paths.builtin_model_dir(MODEL_NAME) / "model.safetensors"
    if weights.exists():
        run_files.load_weights(model, weights)
        return f"started from {weights}"
    return "started from scratch"
