"""The newer samplers (DRY, XTC, mirostat v2, dynamic temperature, logit bias, banned strings) and the settable
order of the chain, tested directly on logits rows and through the loop on scripted models."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from studio.core.jobs import UserError  # noqa: E402
from studio.engine.text import generate as text  # noqa: E402
from studio.engine.text import models, sampling  # noqa: E402
from studio.engine.text.chain import SamplerChain  # noqa: E402
from studio.engine.text.settings import SAMPLER_ORDER, TextSettings, complete_order  # noqa: E402


def kept(logits) -> set[int]:
    return set(torch.nonzero(torch.isfinite(torch.as_tensor(logits))).flatten().tolist())


def plain(**changes) -> TextSettings:
    return TextSettings(**{"temperature": 1.0, "top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0, **changes})


# --- DRY ----------------------------------------------------------------------------------------------------------


def test_dry_penalises_the_token_that_would_repeat_a_sequence():
    logits = torch.zeros(10)
    history = [5, 1, 2, 3, 7, 1, 2]  # "1 2" is followed by 3 earlier: writing 3 now repeats "1 2 3"
    out = sampling.dry_penalty(logits, history, multiplier=0.8, base=1.75, allowed_length=2)
    assert out[3].item() == pytest.approx(-0.8)  # a 2-token match at allowed length 2: multiplier x base^0
    assert kept(out) == set(range(10)) and (out[torch.arange(10) != 3] == 0).all()
    assert torch.equal(sampling.dry_penalty(logits, history, 0.8, 1.75, allowed_length=3), logits)


def test_dry_grows_exponentially_with_the_length_of_the_repeat():
    history = [4, 1, 2, 3, 6, 9, 4, 1, 2, 3]  # "4 1 2 3" then 6: writing 6 repeats 5 tokens
    out = sampling.dry_penalty(torch.zeros(10), history, multiplier=1.0, base=2.0, allowed_length=2)
    assert out[6].item() == pytest.approx(-(2.0 ** (4 - 2)))


def test_dry_sequence_breakers_end_a_match():
    history = [5, 1, 2, 3, 7, 1, 2]
    out = sampling.dry_penalty(torch.zeros(10), history, 0.8, 1.75, 2, breakers=frozenset({1}))
    assert out[3].item() == 0  # the match "1 2" is cut at the breaker 1: one token, below the allowed length
    assert torch.equal(sampling.dry_penalty(torch.zeros(10), history, 0.8, 1.75, 1, breakers=frozenset({2})),
                       torch.zeros(10))  # the last token itself is a breaker: no penalty at all


def dry_reference(history: list[int], vocab: int, allowed: int) -> dict[int, int]:
    """Brute force: for each token t, the longest n such that the last n tokens also stand earlier, followed by t
    (that earlier t may be the last token itself)."""
    found = {}
    for t in range(vocab):
        for n in range(len(history) - 1, 0, -1):
            if any(history[i : i + n] == history[-n:] and history[i + n] == t for i in range(len(history) - n)):
                if n >= allowed:
                    found[t] = n
                break
    return found


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=2, max_size=30), st.integers(1, 3))
def test_dry_matches_a_brute_force_search(history, allowed):
    out = sampling.dry_penalty(torch.zeros(4), history, multiplier=1.0, base=2.0, allowed_length=allowed)
    expected = dry_reference(history, 4, allowed)
    for token in range(4):
        penalty = 2.0 ** (expected[token] - allowed) if token in expected else 0.0
        assert out[token].item() == pytest.approx(-penalty), (history, token)


# --- XTC ----------------------------------------------------------------------------------------------------------


def test_xtc_drops_every_top_choice_but_the_least_likely_one():
    logits = torch.log(torch.tensor([0.4, 0.3, 0.2, 0.1]))
    assert kept(sampling.xtc_filter(logits, threshold=0.25, probability=1.0, roll=0.0)) == {1, 2, 3}
    assert kept(sampling.xtc_filter(logits, threshold=0.15, probability=1.0, roll=0.0)) == {2, 3}


def test_xtc_leaves_the_logits_alone_when_it_does_not_fire():
    logits = torch.log(torch.tensor([0.4, 0.3, 0.2, 0.1]))
    assert torch.equal(sampling.xtc_filter(logits, 0.25, probability=0.5, roll=0.7), logits)  # the dice said no
    assert torch.equal(sampling.xtc_filter(logits, 0.35, probability=1.0, roll=0.0), logits)  # one token over
    assert torch.equal(sampling.xtc_filter(logits, 0.25, 1.0, 0.0, protected=(0,)), logits)  # newline/EOS stay


def test_xtc_fires_at_its_probability_through_the_chain():
    logits = torch.full((128,), -math.inf)
    logits[65:69] = torch.log(torch.tensor([0.4, 0.3, 0.2, 0.1]))  # not end of text (0), not a newline (10)
    settings = plain(xtc_threshold=0.25, xtc_probability=0.3)
    chain = SamplerChain(settings, ScriptedModel(), seed=3)
    fired = sum(not math.isfinite(chain.process(logits, []).full().tolist()[65]) for _ in range(2000))
    assert 0.26 < fired / 2000 < 0.34


# --- mirostat v2 --------------------------------------------------------------------------------------------------


def test_mirostat_drops_tokens_more_surprising_than_mu():
    logits = torch.log(torch.tensor([0.5, 0.25, 0.125, 0.125]))  # surprises 1, 2, 3, 3 bits
    assert kept(sampling.mirostat_v2_filter(logits, mu=2.5)) == {0, 1}
    assert kept(sampling.mirostat_v2_filter(logits, mu=0.1)) == {0}  # the likeliest always stays
    assert sampling.mirostat_update(5.0, 0.25, tau=3.0, eta=0.1) == pytest.approx(5.0 - 0.1 * (2 - 3))


def test_mirostat_holds_the_average_surprise_near_tau():
    ranks = torch.arange(1, 2001, dtype=torch.float32)
    logits = torch.log(1 / ranks)  # Zipf: a long tail, like a language model's
    settings = plain(mirostat=True, mirostat_tau=4.0, mirostat_eta=0.1)
    chain = SamplerChain(settings, ScriptedModel(), seed=0)
    surprises = []
    for _ in range(3000):
        final = chain.process(logits, [])
        token = chain.choose(final)
        surprises.append(-math.log2(float(torch.softmax(torch.as_tensor(final.full()), -1)[token])))
    assert sum(surprises[500:]) / len(surprises[500:]) == pytest.approx(4.0, abs=0.3)


# --- dynamic temperature ------------------------------------------------------------------------------------------


def test_dynamic_temperature_follows_the_models_certainty():
    uniform = torch.zeros(16)  # entropy = the maximum: the high end
    assert torch.allclose(sampling.dynamic_temperature(uniform + 1, 0.5, 2.0, 1.0), (uniform + 1) / 2.0)
    sure = torch.tensor([30.0] + [0.0] * 15)  # entropy ~ 0: the low end
    assert torch.allclose(sampling.dynamic_temperature(sure, 0.5, 2.0, 1.0), sure / 0.5, rtol=1e-3)
    middle = torch.log(torch.tensor([0.7, 0.1, 0.1, 0.1]))
    probs = torch.softmax(middle, -1)
    normalised = float(-(probs * probs.log()).sum()) / math.log(4)
    for exponent in (0.5, 1.0, 2.0):
        expected = 0.5 + 1.5 * normalised**exponent
        assert torch.allclose(sampling.dynamic_temperature(middle, 0.5, 2.0, exponent), middle / expected)


def test_dynamic_temperature_replaces_the_fixed_one_in_the_chain():
    logits = torch.log(torch.tensor([0.7, 0.1, 0.1, 0.1]))
    fixed = sampling.process_logits(logits, [], plain(temperature=0.3))
    dynamic = sampling.process_logits(logits, [], plain(temperature=0.3, dynamic_temperature=True,
                                                        dynatemp_low=1.0, dynatemp_high=1.0))
    assert torch.allclose(dynamic, logits) and not torch.allclose(fixed, logits)


# --- logit bias and banned tokens ---------------------------------------------------------------------------------


def test_logit_bias_by_text_moves_those_tokens():
    model = ScriptedModel()
    chain = SamplerChain(plain(logit_bias=(("ab", 2.0), ("b", -1.5))), model, seed=0)
    assert chain.extras.bias == {ord("a"): 2.0, ord("b"): 0.5}
    out = torch.as_tensor(chain.process(torch.zeros(128), []).full())
    assert out[ord("a")].item() == 2.0 and out[ord("b")].item() == 0.5 and out[ord("c")].item() == 0.0


def test_a_banned_string_inside_one_token_bans_that_token():
    chain = SamplerChain(plain(banned_strings=("E",)), ScriptedModel(), seed=0)  # case-insensitive
    assert chain.extras.banned == {ord("e"), ord("E")}
    assert kept(chain.process(torch.zeros(128), []).full()) == set(range(128)) - {ord("e"), ord("E")}


def test_a_banned_phrase_is_never_written_and_the_text_before_it_is_kept():
    free = text.generate(ScriptedModel(), "", plain(greedy=True, max_new_tokens=30), seed=0).text
    assert "bye now" in free
    shown = []
    banned = text.generate(ScriptedModel(), "", plain(greedy=True, max_new_tokens=30, banned_strings=("BYE NOW",)),
                           seed=0, report=lambda p: shown.append(p.preview))
    assert "bye now" not in banned.text.lower()
    assert banned.text.startswith(free[: free.index("bye now")])
    assert not any("bye now" in s.lower() for s in shown)  # never even flashed on screen


# --- the order of the chain ---------------------------------------------------------------------------------------


def test_the_default_order_is_the_one_recipes_were_made_with():
    logits = torch.randn(50, generator=torch.Generator().manual_seed(0)) * 2
    history = [3, 3, 7, 12, 3]
    s = TextSettings(temperature=0.7, top_k=20, top_p=0.9, min_p=0.05, typical_p=0.95, repetition_penalty=1.3,
                     presence_penalty=0.2, frequency_penalty=0.1, repetition_window=4)
    window = history[-4:]
    old = sampling.apply_repetition_penalty(logits, window, 1.3)
    old = sampling.apply_presence_frequency_penalty(old, window, 0.2, 0.1)
    old = sampling.min_p_filter(sampling.typical_filter(sampling.top_p_filter(sampling.top_k_filter(
        sampling.apply_temperature(old, 0.7), 20), 0.9), 0.95), 0.05)
    assert torch.allclose(sampling.process_logits(logits, history, s), old, equal_nan=True)


def test_the_order_changes_what_is_kept():
    logits = torch.log(torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05]))
    default = plain(temperature=3.0, min_p=0.25)  # temperature first: a flatter curve keeps more above min-p
    min_p_first = plain(temperature=3.0, min_p=0.25, sampler_order=complete_order(["min_p", "temperature"]))
    assert kept(sampling.process_logits(logits, [], default)) == {0, 1, 2, 3, 4}
    assert kept(sampling.process_logits(logits, [], min_p_first)) == {0, 1, 2}


def test_an_order_names_every_stage_once():
    assert complete_order(["xtc", "top_k", "xtc"])[:2] == ("xtc", "top_k")
    assert sorted(complete_order(["xtc"])) == sorted(SAMPLER_ORDER)
    with pytest.raises(UserError):
        complete_order(["top_k", "quadratic"])
    settings = TextSettings.from_params({"sampler_order": ["min_p"], "logit_bias": {" cat": -5},
                                         "banned_strings": "slop", "dry_sequence_breakers": ["\n", ""]})
    assert settings.sampler_order[0] == "min_p" and settings.logit_bias == ((" cat", -5.0),)
    assert settings.banned_strings == ("slop",) and settings.dry_sequence_breakers == ("\n",)
    assert TextSettings.from_params(settings.to_params()) == settings  # a recipe's params round-trip
    with pytest.raises(UserError):
        TextSettings.from_params({"logit_bias": [["cat", "lots"]]})
    with pytest.raises(UserError):
        TextSettings.from_params({"xtc_probability": 1.5})


def test_a_seeded_run_with_every_new_sampler_repeats_exactly():
    settings = plain(max_new_tokens=40, temperature=1.2, dry_multiplier=0.8, xtc_probability=0.5,
                     xtc_threshold=0.05, mirostat=True, dynamic_temperature=True, logit_bias=(("o", 1.0),))
    model = NoisyModel()
    first = text.generate(model, "", settings, seed=11).text
    assert text.generate(model, "", settings, seed=11).text == first
    assert text.generate(model, "", settings, seed=12).text != first


class ScriptedModel(models.TextModel):
    """Puts its mass on the next character of a script, with the rest of the alphabet a little behind: greedy
    writes the script exactly, and a banned token leaves a next best one."""

    script = "hello world. bye now, friends and foes"

    def __init__(self) -> None:
        self.eos_id = 0
        self.max_context = 10_000

    def encode(self, s):
        return [ord(c) for c in s]

    def decode(self, ids):
        return "".join(chr(i) for i in ids)

    def vocab_size(self) -> int:
        return 128

    def _logits(self, position):
        logits = torch.full((128,), -20.0)
        logits[97:123] = 5.0  # any lower-case letter is a little likely
        logits[ord(self.script[position]) if position < len(self.script) else 0] = 20.0
        return logits

    def start(self, ids):
        return len(ids), self._logits(len(ids))

    def step(self, state, token_id):
        return state + 1, self._logits(state + 1)


class NoisyModel(ScriptedModel):
    """Random logits fixed by position: a spread-out distribution for the samplers to work on."""

    def _logits(self, position):
        logits = torch.randn(128, generator=torch.Generator().manual_seed(position)) * 2
        logits[0] = -30.0  # no end of text: every run writes its 40 tokens
        return logits


def test_continue_on_a_finished_text_writes_something():
    model = ScriptedModel()
    ended = text.generate(model, model.script, plain(greedy=True, max_new_tokens=5, min_new_tokens=0), seed=0)
    assert ended.text == "" and ended.finish_reason == "eos"  # the model's own choice: the text is over
    again = text.generate(model, model.script, plain(greedy=True, max_new_tokens=5), seed=0)  # the default: 1
    assert again.text and len(again.token_ids) >= 1
