"""The sampling maths: pure functions over one row of logits, in the order the loop applies them.

Order of the controls on each step (the usual one, as in transformers and llama.cpp):
  repetition penalty -> presence/frequency penalty -> temperature -> top-k -> top-p -> typical-p -> min-p
  -> sample (or argmax when greedy / temperature 0).
Each filter takes a 1-D float logits tensor and returns a new one; removed tokens get -inf.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from studio.engine.text.settings import TextSettings


def apply_temperature(logits, temperature: float):
    """temperature -> 0 approaches argmax; callers treat exactly 0 as greedy."""
    return logits / max(float(temperature), 1e-6)


def top_k_filter(logits, k: int):
    """Keep exactly the k highest (ties broken by index); k <= 0 or >= vocabulary = off."""
    import torch

    if k <= 0 or k >= logits.numel():
        return logits
    keep = torch.zeros_like(logits, dtype=torch.bool)
    keep[torch.topk(logits, k).indices] = True
    return logits.masked_fill(~keep, -math.inf)


def _keep_smallest_mass(logits, order, probs_sorted, mass: float):
    """Keep the leading tokens of `order` until their probabilities add up to at least `mass`."""
    import torch

    before = torch.cumsum(probs_sorted, 0) - probs_sorted  # mass of the tokens ranked above each one
    keep_sorted = before < mass
    keep_sorted[0] = True
    keep = torch.zeros_like(logits, dtype=torch.bool)
    keep[order[keep_sorted]] = True
    return logits.masked_fill(~keep, -math.inf)


def top_p_filter(logits, p: float):
    """Nucleus: the smallest set of most likely tokens whose mass is >= p; p >= 1 = off."""
    import torch

    if p >= 1.0:
        return logits
    probs = torch.softmax(logits, -1)
    probs_sorted, order = torch.sort(probs, descending=True)
    return _keep_smallest_mass(logits, order, probs_sorted, p)


def typical_filter(logits, mass: float):
    """Locally typical sampling (Meister et al. 2022): rank by |surprisal - entropy|, keep mass >= `mass`."""
    import torch

    if mass >= 1.0:
        return logits
    log_probs = torch.log_softmax(logits, -1)
    probs = log_probs.exp()
    entropy = -(probs * log_probs.nan_to_num(neginf=0.0)).sum()
    deviation = (-log_probs - entropy).abs()
    order = torch.argsort(deviation)
    return _keep_smallest_mass(logits, order, probs[order], mass)


def min_p_filter(logits, min_p: float):
    """Drop tokens whose probability is below min_p x the most likely token's; 0 = off."""
    import torch

    if min_p <= 0:
        return logits
    probs = torch.softmax(logits, -1)
    return logits.masked_fill(probs < min_p * probs.max(), -math.inf)


def apply_repetition_penalty(logits, previous_ids, penalty: float):
    """CTRL-style: a token seen before has its logit divided by `penalty` if positive, multiplied if negative."""
    import torch

    if penalty == 1.0 or len(previous_ids) == 0:
        return logits
    ids = torch.as_tensor(sorted(set(int(i) for i in previous_ids)), dtype=torch.long)
    chosen = logits[ids]
    logits = logits.clone()
    logits[ids] = torch.where(chosen > 0, chosen / penalty, chosen * penalty)
    return logits


def apply_presence_frequency_penalty(logits, previous_ids, presence: float, frequency: float):
    """OpenAI-style: logit -= presence x [seen] + frequency x (times seen)."""
    import torch

    if (presence == 0 and frequency == 0) or len(previous_ids) == 0:
        return logits
    counts = torch.bincount(torch.as_tensor(list(previous_ids), dtype=torch.long), minlength=logits.numel())
    counts = counts[: logits.numel()].to(logits.dtype)
    return logits - presence * (counts > 0).to(logits.dtype) - frequency * counts


def process_logits(logits, previous_ids, settings: TextSettings):
    """All the controls in order. Returns the logits the next token is drawn from."""
    window = list(previous_ids)[-settings.repetition_window :] if settings.repetition_window else list(previous_ids)
    logits = apply_repetition_penalty(logits, window, settings.repetition_penalty)
    logits = apply_presence_frequency_penalty(logits, window, settings.presence_penalty, settings.frequency_penalty)
    if settings.greedy or settings.temperature == 0:
        return logits
    logits = apply_temperature(logits, settings.temperature)
    logits = top_k_filter(logits, settings.top_k)
    logits = top_p_filter(logits, settings.top_p)
    logits = typical_filter(logits, settings.typical_p)
    logits = min_p_filter(logits, settings.min_p)
    return logits


def choose_token(logits, settings: TextSettings, generator) -> int:
    import torch

    if settings.greedy or settings.temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float(), -1)
    return int(torch.multinomial(probs, 1, generator=generator))


INSPECT_TOP = 10  # candidates shown by the token inspector


def inspect_candidates(raw_logits, final_logits, decode, top: int = INSPECT_TOP) -> dict[str, list]:
    """Top candidates with probabilities before any control and after all of them (what was sampled from)."""
    import torch

    def listing(logits):
        probs = torch.softmax(logits.float(), -1)
        values, indices = torch.topk(probs, min(top, probs.numel()))
        return [
            {"id": int(i), "token": decode([int(i)]), "p": round(float(v), 5)}
            for v, i in zip(values, indices, strict=False)
        ]

    return {"before": listing(raw_logits), "after": listing(final_logits)}
