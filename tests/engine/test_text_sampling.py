"""The sampling maths of studio.engine.text.generate, tested directly on logits rows."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from studio.core.jobs import UserError  # noqa: E402
from studio.engine.text import generate as text  # noqa: E402
from studio.engine.text import sampling  # noqa: E402


def kept(logits) -> set[int]:
    return set(torch.nonzero(torch.isfinite(logits)).flatten().tolist())


@pytest.fixture
def logits():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(50, generator=generator) * 2


@pytest.mark.parametrize("k", [1, 5, 17, 49])
def test_top_k_keeps_exactly_k_highest(logits, k):
    filtered = sampling.top_k_filter(logits, k)
    assert kept(filtered) == set(torch.topk(logits, k).indices.tolist())
    assert len(kept(filtered)) == k


def test_top_k_keeps_exactly_k_even_with_ties():
    filtered = sampling.top_k_filter(torch.zeros(10), 3)
    assert len(kept(filtered)) == 3


def test_top_k_zero_is_off(logits):
    assert torch.equal(sampling.top_k_filter(logits, 0), logits)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8, 0.95])
def test_top_p_keeps_the_smallest_set_reaching_p(logits, p):
    probs = torch.softmax(logits, -1)
    keep = kept(sampling.top_p_filter(logits, p))
    mass = probs[list(keep)].sum().item()
    assert mass >= p - 1e-6
    # smallest: dropping the least likely kept token falls below p
    weakest = min(keep, key=lambda i: probs[i].item())
    assert mass - probs[weakest].item() < p
    # and the kept ones are the most likely ones
    assert keep == set(torch.argsort(probs, descending=True)[: len(keep)].tolist())


def test_top_p_on_a_known_distribution():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    assert kept(sampling.top_p_filter(logits, 0.5)) == {0}
    assert kept(sampling.top_p_filter(logits, 0.6)) == {0, 1}
    assert kept(sampling.top_p_filter(logits, 0.8)) == {0, 1}
    assert kept(sampling.top_p_filter(logits, 0.81)) == {0, 1, 2}


def test_min_p_drops_tokens_below_a_fraction_of_the_best():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    assert kept(sampling.min_p_filter(logits, 0.2)) == {0, 1, 2}
    assert kept(sampling.min_p_filter(logits, 0.5)) == {0, 1}


def test_typical_keeps_tokens_near_the_entropy():
    # Entropy of this distribution lies between the surprisal of the 2nd and the 1st token: the most
    # likely token is *not* the most typical one, which is what sets typical sampling apart.
    probs = torch.tensor([0.4, 0.15, 0.15, 0.15, 0.15])
    logits = torch.log(probs)
    keep = kept(sampling.typical_filter(logits, 0.3))
    assert 0 not in keep and len(keep) >= 1
    assert kept(sampling.typical_filter(logits, 1.0)) == set(range(5))


def test_temperature_towards_zero_equals_greedy(logits):
    settings = text.TextSettings(temperature=1e-4, top_k=0, top_p=1.0, repetition_penalty=1.0)
    greedy = text.TextSettings(greedy=True, repetition_penalty=1.0)
    generator = torch.Generator().manual_seed(1)
    picks = {sampling.choose_token(sampling.process_logits(logits, [], settings), settings, generator) for _ in range(20)}
    assert picks == {int(torch.argmax(logits))}
    assert sampling.choose_token(sampling.process_logits(logits, [], greedy), greedy, generator) == int(torch.argmax(logits))


def test_temperature_flattens_and_sharpens(logits):
    def entropy(x):
        p = torch.softmax(x, -1)
        return -(p * p.log()).sum().item()

    assert entropy(sampling.apply_temperature(logits, 2.0)) > entropy(logits) > entropy(sampling.apply_temperature(logits, 0.5))


def test_repetition_penalty_lowers_a_repeated_token(logits):
    for token in (int(torch.argmax(logits)), int(torch.argmin(logits))):  # a positive and a negative logit
        before = torch.softmax(logits, -1)[token]
        after = torch.softmax(sampling.apply_repetition_penalty(logits, [token, token], 1.5), -1)[token]
        assert after < before


def test_repetition_window_only_looks_back_that_far(logits):
    token = int(torch.argmax(logits))
    history = [token] + [1] * 10
    near = sampling.process_logits(
        logits,
        history,
        text.TextSettings(repetition_penalty=2.0, repetition_window=5, temperature=1.0, top_k=0, top_p=1.0),
    )
    far = sampling.process_logits(
        logits,
        history,
        text.TextSettings(repetition_penalty=2.0, repetition_window=0, temperature=1.0, top_k=0, top_p=1.0),
    )
    assert near[token] == logits[token]
    assert far[token] < logits[token]


def test_presence_and_frequency_penalties(logits):
    out = sampling.apply_presence_frequency_penalty(logits, [3, 3, 3, 7], presence=0.5, frequency=0.25)
    assert math.isclose(out[3].item(), logits[3].item() - 0.5 - 0.75, rel_tol=1e-5)
    assert math.isclose(out[7].item(), logits[7].item() - 0.5 - 0.25, rel_tol=1e-5)
    assert out[0] == logits[0]


def test_inspector_lists_top_candidates_before_and_after(logits):
    settings = text.TextSettings(top_k=3, temperature=1.0, top_p=1.0, repetition_penalty=1.0)
    final = sampling.process_logits(logits, [], settings)
    data = sampling.inspect_candidates(logits, final, lambda ids: f"<{ids[0]}>")
    assert len(data["before"]) == 10 and len(data["after"]) == 10
    assert sum(c["p"] for c in data["after"][:3]) == pytest.approx(1.0, abs=1e-3)
    assert all(c["p"] == 0 for c in data["after"][3:])
    assert data["before"][0]["id"] == data["after"][0]["id"] == int(torch.argmax(logits))


def test_settings_from_params_and_presets():
    settings = text.TextSettings.from_params({"temperature": 0.5, "stop": "\n\n", "unknown": 1})
    assert settings.temperature == 0.5 and settings.stop == ("\n\n",)
    for preset in text.PRESETS.values():
        text.TextSettings.from_params(preset)
    with pytest.raises(UserError):
        text.TextSettings.from_params({"top_p": 0})
