"""One generation's sampler: the settings' chain (sampling.py) plus what it carries from token to token.

Built once per generation from the settings, the model's vocabulary and the seed: it turns texts into token ids
(logit bias, banned strings, DRY's sequence breakers), keeps mirostat's mu and draws XTC's dice rolls from the
same seeded generator as the tokens, so one seed gives one text whatever the model runs on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.engine.text.sampling import (
    Candidates,
    ChainExtras,
    active_stages,
    choose_from,
    mirostat_update,
    run_chain,
    uniform,
)

if TYPE_CHECKING:
    from studio.engine.text.models import TextModel
    from studio.engine.text.settings import TextSettings


def bias_ids(model: TextModel, pairs) -> dict[int, float]:
    """Each text's tokens get its bias (a text of several tokens biases all of them; biases of one id add up)."""
    bias: dict[int, float] = {}
    for text, amount in pairs:
        for token in model.encode(text):
            bias[token] = bias.get(token, 0.0) + float(amount)
    return bias


def ids_containing(model: TextModel, texts, lower: bool = False) -> frozenset[int]:
    """The tokens whose own text contains one of `texts` (case-insensitive when `lower`)."""
    wanted = [t.lower() if lower else t for t in texts if t]
    if not wanted:
        return frozenset()
    found = set()
    for token, piece in enumerate(model.vocab_texts()):
        piece = piece.lower() if lower else piece
        if any(w in piece for w in wanted):
            found.add(token)
    return frozenset(found)


class SamplerChain:
    def __init__(self, settings: TextSettings, model: TextModel, seed: int) -> None:
        self.settings = settings
        if settings.draw == "multinomial":  # how recipes from before "draw" were drawn: their seeds' own stream
            import torch

            self.generator = torch.Generator().manual_seed(int(seed))
        else:  # NumPy's PCG64: a draw is one call, no torch dispatch between two of llama.cpp's tokens
            import numpy as np

            self.generator = np.random.default_rng(int(seed))
        self.greedy = settings.greedy or settings.temperature == 0
        self.extras = ChainExtras(mu=2 * settings.mirostat_tau, stages=active_stages(settings))  # mu: llama.cpp's start
        self.extras.bias = bias_ids(model, settings.logit_bias)
        # A banned string that fits inside one token is banned as that token; longer ones back the writer up.
        self.extras.banned = ids_containing(model, settings.banned_strings, lower=True)
        if settings.dry_multiplier > 0:
            self.extras.breakers = ids_containing(model, settings.dry_sequence_breakers)
        if settings.xtc_probability > 0:
            newline = model.encode("\n")
            self.extras.protected = tuple(newline[-1:]) + ((model.eos_id,) if model.eos_id is not None else ())

    def process(self, logits, history, banned_here=frozenset()) -> Candidates:
        """The candidates the next token is drawn from; `banned_here` are tokens refused at this position only."""
        extras = self.extras
        if banned_here:
            extras = ChainExtras(**{**vars(extras), "banned": extras.banned | banned_here})
        if self.settings.xtc_probability > 0 and not self.greedy:
            extras.roll = uniform(self.generator)  # drawn every step: one seed, one text
        return run_chain(logits, history, self.settings, extras)

    def choose(self, final: Candidates) -> int:
        token = choose_from(final, self.settings, self.generator)
        if self.settings.mirostat and not self.greedy:
            p_chosen = final.probability(token)
            self.extras.mu = mirostat_update(self.extras.mu, p_chosen, self.settings.mirostat_tau,
                                             self.settings.mirostat_eta)
        return token
