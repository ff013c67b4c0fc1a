"""The sampling maths: pure functions over one row of logits, and the chain that applies them in order.

Every step: logit bias and banned tokens first (as llama.cpp does), then the stages of `sampler_order`
(settings.py; the default is text-generation-webui's order):
  repetition penalty -> presence -> frequency -> DRY -> temperature (fixed or dynamic) -> top-k -> top-p
  -> typical-p -> min-p -> mirostat v2 -> XTC
-> sample (or argmax when greedy / temperature 0, which skips temperature and every filter).
Each function takes a 1-D float logits tensor and returns a new one; removed tokens get -inf. The few that need
randomness or memory take them as arguments (XTC's dice roll, mirostat's mu), so each is tested alone; the state
they carry from token to token lives in chain.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
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


# ----------------------------------------------------------------------------------------------- newer samplers


def apply_logit_bias(logits, bias: dict[int, float]):
    """Add a fixed amount to chosen tokens' logits (OpenAI's logit_bias); -100 all but bans a token."""
    bias = {i: b for i, b in bias.items() if 0 <= i < logits.numel()} if bias else bias
    if not bias:
        return logits
    import torch

    ids = torch.as_tensor(list(bias), dtype=torch.long)
    logits = logits.clone()
    logits[ids] += torch.as_tensor(list(bias.values()), dtype=logits.dtype)
    return logits


def ban_tokens(logits, ids):
    """These tokens can never be chosen (a banned string that fits in one token)."""
    ids = sorted(i for i in ids if 0 <= i < logits.numel()) if ids else ids
    if not ids:
        return logits
    import torch

    logits = logits.clone()
    logits[torch.as_tensor(ids, dtype=torch.long)] = -math.inf
    return logits


DRY_MAX_MATCH = 50  # text-generation-webui's cap: the penalty's exponent can't overflow, the worst case stays fast


def dry_penalty(logits, previous_ids, multiplier: float, base: float, allowed_length: int, breakers=frozenset()):
    """DRY, "don't repeat yourself" (p-e-w, text-generation-webui #5677; llama.cpp's `dry` sampler).

    For each place the last token occurred before, extend the match backwards: if the text's last n tokens
    also came, in order, just before an earlier occurrence of token t, then writing t now repeats an
    (n+1)-token sequence. Each such t loses multiplier x base^(n - allowed_length) when n >= allowed_length.
    A breaker token (a newline, a colon…) ends any match, so names and formatting can recur freely."""
    if multiplier <= 0 or len(previous_ids) < 2:
        return logits
    ids = [int(i) for i in previous_ids]
    last = ids[-1]
    if last in breakers:
        return logits
    longest: dict[int, int] = {}  # token that would repeat -> length of the sequence it would extend
    for i in range(len(ids) - 1):  # the last position always matches itself: left out
        if ids[i] != last:
            continue
        following = ids[i + 1]
        if following in breakers:
            continue
        length = 1
        while length < DRY_MAX_MATCH:
            j = i - length
            if j < 0:
                break
            before = ids[-(length + 1)]
            if ids[j] != before or before in breakers:
                break
            length += 1
        longest[following] = max(length, longest.get(following, 0))
    penalties = {t: multiplier * base ** (n - allowed_length) for t, n in longest.items() if n >= allowed_length}
    if not penalties:
        return logits
    import torch

    logits = logits.clone()
    logits[torch.as_tensor(list(penalties), dtype=torch.long)] -= torch.as_tensor(list(penalties.values()),
                                                                                  dtype=logits.dtype)
    return logits


def xtc_filter(logits, threshold: float, probability: float, roll: float, protected=()):
    """XTC, "exclude top choices" (p-e-w, text-generation-webui #6335): when the dice roll is below `probability`
    and two or more tokens are at least `threshold` likely, drop all of them but the least likely one — the
    obvious continuations go, a still-plausible one stays. Nothing changes if that would drop a protected token
    (newline, end of text: without them texts run on)."""
    if probability <= 0 or roll >= probability:
        return logits
    import torch

    probs = torch.softmax(logits.float(), -1)
    over = probs >= threshold
    if int(over.sum()) < 2:
        return logits
    weakest = int(torch.argmin(torch.where(over, probs, torch.full_like(probs, 2.0))))
    drop = over.clone()
    drop[weakest] = False
    protected = [i for i in protected if 0 <= i < drop.numel()]
    if protected and bool(drop[torch.as_tensor(protected, dtype=torch.long)].any()):
        return logits
    return logits.masked_fill(drop, -math.inf)


def dynamic_temperature(logits, low: float, high: float, exponent: float):
    """Entropy-scaled temperature (kalomaze; text-generation-webui's dynatemp): a sure model (low entropy) samples
    near `low`, an unsure one near `high`: T = low + (high - low) x (entropy / max entropy)^exponent."""
    import torch

    probs = torch.softmax(logits.float(), -1)
    entropy = float(-(probs * torch.log(probs.clamp_min(1e-30))).sum())
    valid = int(torch.isfinite(logits).sum())
    max_entropy = math.log(valid) if valid > 1 else 1e-10
    normalised = max(entropy, 1e-10) / max_entropy
    return apply_temperature(logits, low + (high - low) * normalised**exponent)


def mirostat_v2_filter(logits, mu: float):
    """Mirostat v2 (Basu et al. 2021; llama.cpp): drop the tokens whose surprise -log2 p is above mu (the likeliest
    always stays). After the draw, `mirostat_update` moves mu so the text's surprise tracks tau."""
    import torch

    log2p = torch.log_softmax(logits.float(), -1) / math.log(2)
    keep = -log2p <= mu
    keep[int(torch.argmax(logits))] = True
    return logits.masked_fill(~keep, -math.inf)


def mirostat_update(mu: float, p_chosen: float, tau: float, eta: float) -> float:
    """mu <- mu - eta x (observed surprise - tau), the surprise taken in the distribution the token came from."""
    return mu - eta * (-math.log2(max(p_chosen, 1e-30)) - tau)


# ----------------------------------------------------------------------------------------------- the chain


@dataclass
class ChainExtras:
    """Per-step inputs of the stages that need more than the settings (chain.py fills it)."""

    bias: dict[int, float] = field(default_factory=dict)  # token id -> added logit
    banned: frozenset[int] = frozenset()
    breakers: frozenset[int] = frozenset()  # DRY's sequence breakers, as token ids
    protected: tuple[int, ...] = ()  # XTC never drops these (newline, end of text)
    mu: float = 0.0  # mirostat's running threshold (starts at 2 x tau)
    roll: float = 1.0  # XTC's dice roll for this step, in [0, 1): 1 never fires


def _temperature(logits, s, history, window, extras):
    if s.dynamic_temperature:
        return dynamic_temperature(logits, s.dynatemp_low, s.dynatemp_high, s.dynatemp_exponent)
    return apply_temperature(logits, s.temperature)


def _dry(logits, s, history, window, extras):
    context = list(history)[-s.dry_window :] if s.dry_window else history
    return dry_penalty(logits, context, s.dry_multiplier, s.dry_base, s.dry_allowed_length, extras.breakers)


STAGES = {
    "repetition_penalty": lambda x, s, h, w, e: apply_repetition_penalty(x, w, s.repetition_penalty),
    "presence_penalty": lambda x, s, h, w, e: apply_presence_frequency_penalty(x, w, s.presence_penalty, 0.0),
    "frequency_penalty": lambda x, s, h, w, e: apply_presence_frequency_penalty(x, w, 0.0, s.frequency_penalty),
    "dry": _dry,
    "temperature": _temperature,
    "top_k": lambda x, s, h, w, e: top_k_filter(x, s.top_k),
    "top_p": lambda x, s, h, w, e: top_p_filter(x, s.top_p),
    "typical_p": lambda x, s, h, w, e: typical_filter(x, s.typical_p),
    "min_p": lambda x, s, h, w, e: min_p_filter(x, s.min_p),
    "mirostat": lambda x, s, h, w, e: mirostat_v2_filter(x, e.mu) if s.mirostat else x,
    "xtc": lambda x, s, h, w, e: xtc_filter(x, s.xtc_threshold, s.xtc_probability, e.roll, e.protected),
}
# The stages greedy decoding keeps: it takes the argmax of the penalised logits.
PENALTY_STAGES = frozenset({"repetition_penalty", "presence_penalty", "frequency_penalty", "dry"})


def process_logits(logits, previous_ids, settings: TextSettings, extras: ChainExtras | None = None):
    """The whole chain in `settings.sampler_order`. Returns the logits the next token is drawn from.

    `extras` carries what the stateless settings can't: the token ids that bias, ban and break DRY sequences (from
    the model's vocabulary), mirostat's mu and XTC's dice roll for this step (chain.py fills it each step)."""
    extras = extras or ChainExtras()
    logits = apply_logit_bias(logits, extras.bias)
    logits = ban_tokens(logits, extras.banned)
    window = list(previous_ids)[-settings.repetition_window :] if settings.repetition_window else list(previous_ids)
    greedy = settings.greedy or settings.temperature == 0
    for stage in settings.sampler_order:
        if greedy and stage not in PENALTY_STAGES:
            continue  # greedy = the penalised argmax: temperature and the filters can't change it (or shouldn't)
        logits = STAGES[stage](logits, settings, previous_ids, window, extras)
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
