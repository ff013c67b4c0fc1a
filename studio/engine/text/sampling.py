"""The sampling maths: pure functions over one row of logits, and the chain that applies them in order.

Every step: logit bias and banned tokens first (as llama.cpp does), then the stages of `sampler_order`
(settings.py; the default is text-generation-webui's order):
  repetition penalty -> presence -> frequency -> DRY -> temperature (fixed or dynamic) -> top-k -> top-p
  -> typical-p -> min-p -> mirostat v2 -> XTC
-> draw (or argmax when greedy / temperature 0, which skips temperature and every filter).
Each function takes a 1-D float logits row and returns a new one; removed tokens get -inf. The few that need
randomness or memory take them as arguments (XTC's dice roll, mirostat's mu), so each is tested alone; the state
they carry from token to token lives in chain.py.

NumPy, not torch: a row is a few thousand numbers, where torch's per-call overhead (µs a call, and more when the
caches are cold after llama.cpp's own work) outweighs the maths. A torch tensor given to a function comes back as
a torch tensor (`same_kind`); the chain itself keeps NumPy arrays throughout. After the first stage that cuts
tokens the chain goes on with the kept ones only (`Candidates`), as llama.cpp does, so the rest costs what is kept.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from studio.engine.text.settings import TextSettings

NEG_INF = np.float32(-np.inf)


def as_row(logits) -> np.ndarray:
    """A float32 NumPy row (a CPU torch tensor's memory is shared, not copied)."""
    return logits if isinstance(logits, np.ndarray) and logits.dtype == np.float32 else np.asarray(
        logits, dtype=np.float32)


def same_kind(function):
    """The function on a NumPy row; a torch tensor given comes back as a torch tensor."""

    @functools.wraps(function)
    def wrapper(logits, *args, **kwargs):
        row = as_row(logits)
        result = function(row, *args, **kwargs)
        if isinstance(logits, np.ndarray) or not hasattr(logits, "numel"):
            return result
        if result is row:
            return logits  # unchanged: the caller's own tensor
        import torch

        return torch.from_numpy(np.ascontiguousarray(result))

    return wrapper


def softmax(row: np.ndarray) -> np.ndarray:
    finite_max = row.max()
    if not np.isfinite(finite_max):
        return np.full_like(row, 1.0 / row.size)
    exps = np.exp(row - finite_max)
    return exps / exps.sum()


def log_softmax(row: np.ndarray) -> np.ndarray:
    shifted = row - row.max()
    return shifted - np.log(np.exp(shifted).sum())


@same_kind
def apply_temperature(logits, temperature: float):
    """temperature -> 0 approaches argmax; callers treat exactly 0 as greedy."""
    return logits / np.float32(max(float(temperature), 1e-6))


@same_kind
def top_k_filter(logits, k: int):
    """Keep exactly the k highest (ties broken arbitrarily but never more than k); k <= 0 or >= vocabulary = off."""
    if k <= 0 or k >= logits.size:
        return logits
    kept = np.argpartition(logits, -k)[-k:]
    out = np.full_like(logits, NEG_INF)
    out[kept] = logits[kept]
    return out


def _keep_smallest_mass(logits, order, probs_sorted, mass: float):
    """Keep the leading tokens of `order` until their probabilities add up to at least `mass`."""
    before = np.cumsum(probs_sorted) - probs_sorted  # mass of the tokens ranked above each one
    keep = max(1, int((before < mass).sum()))
    if keep >= order.size:
        return logits
    logits = logits.copy()
    logits[order[keep:]] = NEG_INF
    return logits


@same_kind
def top_p_filter(logits, p: float):
    """Nucleus: the smallest set of most likely tokens whose mass is >= p; p >= 1 = off."""
    if p >= 1.0:
        return logits
    probs = softmax(logits)
    order = np.argsort(-probs, kind="stable")
    return _keep_smallest_mass(logits, order, probs[order], p)


@same_kind
def typical_filter(logits, mass: float):
    """Locally typical sampling (Meister et al. 2022): rank by |surprisal - entropy|, keep mass >= `mass`."""
    if mass >= 1.0:
        return logits
    log_probs = log_softmax(logits)
    probs = np.exp(log_probs)
    entropy = -(probs * np.nan_to_num(log_probs, neginf=0.0)).sum()
    deviation = np.abs(-log_probs - entropy)
    order = np.argsort(deviation, kind="stable")
    return _keep_smallest_mass(logits, order, probs[order], mass)


@same_kind
def min_p_filter(logits, min_p: float):
    """Drop tokens whose probability is below min_p x the most likely token's; 0 = off."""
    if min_p <= 0:
        return logits
    probs = softmax(logits)
    return np.where(probs < min_p * probs.max(), NEG_INF, logits)


def _ids_in(previous_ids, size: int) -> np.ndarray:
    ids = np.fromiter(set(previous_ids), dtype=np.int64)
    return ids[(ids >= 0) & (ids < size)]


@same_kind
def apply_repetition_penalty(logits, previous_ids, penalty: float):
    """CTRL-style: a token seen before has its logit divided by `penalty` if positive, multiplied if negative."""
    if penalty == 1.0 or len(previous_ids) == 0:
        return logits
    ids = _ids_in(previous_ids, logits.size)
    chosen = logits[ids]
    logits = logits.copy()
    penalty = np.float32(penalty)
    logits[ids] = np.where(chosen > 0, chosen / penalty, chosen * penalty)
    return logits


@same_kind
def apply_presence_frequency_penalty(logits, previous_ids, presence: float, frequency: float):
    """OpenAI-style: logit -= presence x [seen] + frequency x (times seen)."""
    if (presence == 0 and frequency == 0) or len(previous_ids) == 0:
        return logits
    ids = np.asarray(list(previous_ids), dtype=np.int64)
    counts = np.bincount(ids[(ids >= 0) & (ids < logits.size)], minlength=logits.size)[: logits.size]
    counts = counts.astype(logits.dtype)
    return logits - np.float32(presence) * (counts > 0).astype(logits.dtype) - np.float32(frequency) * counts


# ----------------------------------------------------------------------------------------------- newer samplers


@same_kind
def apply_logit_bias(logits, bias: dict[int, float]):
    """Add a fixed amount to chosen tokens' logits (OpenAI's logit_bias); -100 all but bans a token."""
    bias = {i: b for i, b in bias.items() if 0 <= i < logits.size} if bias else bias
    if not bias:
        return logits
    logits = logits.copy()
    np.add.at(logits, np.fromiter(bias, dtype=np.int64), np.fromiter(bias.values(), dtype=np.float32))
    return logits


@same_kind
def ban_tokens(logits, ids):
    """These tokens can never be chosen (a banned string that fits in one token)."""
    ids = [i for i in ids if 0 <= i < logits.size] if ids else ids
    if not ids:
        return logits
    logits = logits.copy()
    logits[np.asarray(ids, dtype=np.int64)] = NEG_INF
    return logits


DRY_MAX_MATCH = 50  # text-generation-webui's cap: the penalty's exponent can't overflow, the worst case stays fast


@same_kind
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
    penalties = {t: multiplier * base ** (n - allowed_length) for t, n in longest.items()
                 if n >= allowed_length and 0 <= t < logits.size}
    if not penalties:
        return logits
    logits = logits.copy()
    logits[np.fromiter(penalties, dtype=np.int64)] -= np.fromiter(penalties.values(), dtype=np.float32)
    return logits


@same_kind
def xtc_filter(logits, threshold: float, probability: float, roll: float, protected=()):
    """XTC, "exclude top choices" (p-e-w, text-generation-webui #6335): when the dice roll is below `probability`
    and two or more tokens are at least `threshold` likely, drop all of them but the least likely one — the
    obvious continuations go, a still-plausible one stays. Nothing changes if that would drop a protected token
    (newline, end of text: without them texts run on)."""
    if probability <= 0 or roll >= probability:
        return logits
    probs = softmax(logits)
    over = probs >= threshold
    if int(over.sum()) < 2:
        return logits
    weakest = int(np.argmin(np.where(over, probs, 2.0)))
    drop = over.copy()
    drop[weakest] = False
    protected = [i for i in protected if 0 <= i < drop.size]
    if protected and bool(drop[np.asarray(protected, dtype=np.int64)].any()):
        return logits
    return np.where(drop, NEG_INF, logits)


@same_kind
def dynamic_temperature(logits, low: float, high: float, exponent: float):
    """Entropy-scaled temperature (kalomaze; text-generation-webui's dynatemp): a sure model (low entropy) samples
    near `low`, an unsure one near `high`: T = low + (high - low) x (entropy / max entropy)^exponent."""
    probs = softmax(logits)
    entropy = float(-(probs * np.log(np.maximum(probs, 1e-30))).sum())
    valid = int(np.isfinite(logits).sum())
    max_entropy = math.log(valid) if valid > 1 else 1e-10
    normalised = max(entropy, 1e-10) / max_entropy
    return apply_temperature(logits, low + (high - low) * normalised**exponent)


@same_kind
def mirostat_v2_filter(logits, mu: float):
    """Mirostat v2 (Basu et al. 2021; llama.cpp): drop the tokens whose surprise -log2 p is above mu (the likeliest
    always stays). After the draw, `mirostat_update` moves mu so the text's surprise tracks tau."""
    log2p = log_softmax(logits) / math.log(2)
    keep = -log2p <= mu
    keep[int(np.argmax(logits))] = True
    return np.where(keep, logits, NEG_INF)


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
    stages: tuple[str, ...] | None = None  # the order's stages that do something (`active_stages`); None: all


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
def active_stages(settings: TextSettings) -> tuple[str, ...]:
    """The stages of the order that change anything with these settings (the others return their input): worked
    out once a generation, so a token pays only for the controls that are on."""
    s = settings
    off = {"repetition_penalty": s.repetition_penalty == 1.0, "presence_penalty": s.presence_penalty == 0,
           "frequency_penalty": s.frequency_penalty == 0, "dry": s.dry_multiplier <= 0,
           "temperature": not s.dynamic_temperature and s.temperature == 1.0, "top_k": s.top_k <= 0,
           "top_p": s.top_p >= 1.0, "typical_p": s.typical_p >= 1.0, "min_p": s.min_p <= 0,
           "mirostat": not s.mirostat, "xtc": s.xtc_probability <= 0}
    return tuple(stage for stage in s.sampler_order if not off.get(stage, False))


# The stages greedy decoding keeps: it takes the argmax of the penalised logits.
PENALTY_STAGES = frozenset({"repetition_penalty", "presence_penalty", "frequency_penalty", "dry"})




# The stages that remove tokens: after one of them the chain goes on with the kept tokens only (llama.cpp's way), so
# the later stages and the draw cost what is kept, not the vocabulary.
TRUNCATING = frozenset({"top_k", "top_p", "typical_p", "min_p", "mirostat", "xtc"})
# The stages that look tokens up by id (the history, DRY's repeats, XTC's protected tokens).
BY_ID = frozenset({"repetition_penalty", "presence_penalty", "frequency_penalty", "dry", "xtc"})


@dataclass
class Candidates:
    """The tokens still in the running and their logits: the whole row (`ids` None) or the kept ones."""

    values: np.ndarray  # float32
    ids: np.ndarray | None  # int64 token ids, or None when `values` is the whole vocabulary
    size: int  # the vocabulary

    def full(self) -> np.ndarray:
        """As a row of the whole vocabulary, the tokens not kept at -inf."""
        if self.ids is None:
            return self.values
        row = np.full(self.size, NEG_INF, dtype=np.float32)
        row[self.ids] = self.values
        return row

    def token(self, position: int) -> int:
        return int(self.ids[position]) if self.ids is not None else int(position)

    def probability(self, token: int) -> float:
        probs = softmax(self.values)
        return float(probs[token if self.ids is None else int(np.flatnonzero(self.ids == token)[0])])

    def keep_finite(self) -> Candidates:
        kept = np.flatnonzero(np.isfinite(self.values))
        if kept.size == self.values.size:
            return self
        return Candidates(self.values[kept], kept if self.ids is None else self.ids[kept], self.size)


def _run_stage(stage: str, candidates: Candidates, settings, history, window, extras) -> Candidates:
    function, values = STAGES[stage], candidates.values
    if stage == "top_k" and candidates.ids is None and 0 < settings.top_k < candidates.size:
        kept = np.argpartition(values, -settings.top_k)[-settings.top_k :]  # top_k_filter's kept set, compact
        return Candidates(values[kept], kept, candidates.size)
    if candidates.ids is not None and stage in BY_ID:  # by token id: on the whole row, then the kept ones again
        row = function(candidates.full(), settings, history, window, extras)
        return Candidates(row[candidates.ids], candidates.ids, candidates.size)
    result = Candidates(function(values, settings, history, window, extras), candidates.ids, candidates.size)
    if stage in TRUNCATING and candidates.ids is None and result.values is not values:
        return result.keep_finite()  # the whole row was cut: go on with what is kept (already-kept rows stay)
    return result


def run_chain(logits, previous_ids, settings: TextSettings, extras: ChainExtras | None = None) -> Candidates:
    """The whole chain in `settings.sampler_order`: the candidates the next token is drawn from.

    `extras` carries what the stateless settings can't: the token ids that bias, ban and break DRY sequences (from
    the model's vocabulary), mirostat's mu and XTC's dice roll for this step (chain.py fills it each step)."""
    extras = extras or ChainExtras()
    logits = ban_tokens(apply_logit_bias(as_row(logits), extras.bias), extras.banned)
    history = previous_ids if isinstance(previous_ids, list) else list(previous_ids)
    window = history[-settings.repetition_window :] if settings.repetition_window else history
    greedy = settings.greedy or settings.temperature == 0
    candidates = Candidates(logits, None, logits.size)
    for stage in extras.stages if extras.stages is not None else settings.sampler_order:
        if greedy and stage not in PENALTY_STAGES:
            continue  # greedy = the penalised argmax: temperature and the filters can't change it (or shouldn't)
        candidates = _run_stage(stage, candidates, settings, history, window, extras)
    return candidates


@same_kind
def process_logits(logits, previous_ids, settings: TextSettings, extras: ChainExtras | None = None):
    """The whole chain as a row of the vocabulary: the logits the next token is drawn from (-inf = removed)."""
    return run_chain(logits, previous_ids, settings, extras).full()


def uniform(generator) -> float:
    """A number in [0, 1) from a seeded NumPy generator (chain.py's) or a torch.Generator."""
    if hasattr(generator, "random"):
        return float(generator.random())
    import torch

    return float(torch.rand(1, generator=generator, dtype=torch.float64))


def draw_by_cdf(candidates: Candidates, generator) -> int:
    """One uniform number from the seeded generator, looked up in the kept tokens' cumulative probabilities in
    token-id order (float64): costs what is kept, and a tiny change of the logits moves the result only when the
    number falls on a boundary."""
    values, ids = candidates.values, candidates.ids
    if ids is not None:
        order = np.argsort(ids, kind="stable")
        ids, values = ids[order], values[order]
    cumulative = np.cumsum(softmax(values.astype(np.float64)))
    u = uniform(generator)
    position = min(int(np.searchsorted(cumulative, u * cumulative[-1], side="right")), values.size - 1)
    while position > 0 and not np.isfinite(values[position]):  # zero probability: never drawn (a boundary case)
        position -= 1
    return int(ids[position]) if ids is not None else position


def choose_from(candidates: Candidates, settings: TextSettings, generator) -> int:
    """The token: the likeliest (greedy), else a draw (settings.draw: "cdf", or "multinomial" as recipes before it
    was a setting were drawn, which takes the whole row and a torch.Generator)."""
    if settings.greedy or settings.temperature == 0:
        return candidates.token(int(np.argmax(candidates.values)))
    if settings.draw == "multinomial":
        import torch

        probs = torch.softmax(torch.from_numpy(np.ascontiguousarray(candidates.full())).float(), -1)
        return int(torch.multinomial(probs, 1, generator=generator))
    return draw_by_cdf(candidates, generator)


def choose_token(logits, settings: TextSettings, generator) -> int:
    row = as_row(logits)
    return choose_from(Candidates(row, None, row.size), settings, generator)


INSPECT_TOP = 10  # candidates shown by the token inspector


def _listing(candidates: Candidates, decode, top: int) -> list[dict]:
    probs = softmax(candidates.values)
    count = min(top, probs.size)
    best = np.argpartition(-probs, count - 1)[:count] if count < probs.size else np.arange(probs.size)
    best = best[np.argsort(-probs[best], kind="stable")]
    return [{"id": candidates.token(int(i)), "token": decode([candidates.token(int(i))]), "p": round(float(probs[i]), 5)}
            for i in best]


def inspect_candidates(raw_logits, final, decode, top: int = INSPECT_TOP) -> dict[str, list]:
    """Top candidates with probabilities before any control and after all of them (what was drawn from); `final`
    is a row of the vocabulary or the chain's Candidates."""
    raw = as_row(raw_logits)
    if not isinstance(final, Candidates):
        row = as_row(final)
        final = Candidates(row, None, row.size)
    return {"before": _listing(Candidates(raw, None, raw.size), decode, top), "after": _listing(final, decode, top)}
