"""The text training code runs on a tiny slice (the real run takes hours and is not run here)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from studio.training import text as training  # noqa: E402
from studio.training import text_data  # noqa: E402

FALLBACK = [
    "Real programmers don't comment their code. If it was hard to write, it should be hard to understand.",
    "kludge: n. A clever programming trick intended to solve a particular nasty case in an expedient way.",
    "You will be awarded some great honor.",
] * 4


def tiny_texts() -> list[str]:
    """A few real entries when the Debian packages are installed, a stand-in otherwise (CI)."""
    entries = text_data.load_entries()
    return [e.text for e in entries[:40]] if entries else FALLBACK


def test_corpus_cleaning_and_split_are_deterministic():
    raw = "First cookie.\n%\nSecond cookie,  \n\tindented.\n%\n"
    assert [text_data.clean_text(t) for t in raw.split("\n%\n")][:2] == ["First cookie.", "Second cookie,\n\tindented."]
    assert not text_data.looks_like_prose("  /\\_/\\  \n ( o.o ) \n  > ^ <")
    entries = [text_data.Entry("x", f"entry number {i}") for i in range(400)]
    train, held = text_data.split_entries(entries)
    assert not set(train) & set(held) and len(train) + len(held) == 400
    assert 5 <= len(held) <= 40  # about 5 %
    assert text_data.split_entries(entries) == (train, held)


def test_a_few_training_steps_lower_the_loss_and_evaluate():
    texts = tiny_texts()
    tokenizer = training.build_tokenizer(texts, 300)
    stream = training.encode_stream(tokenizer, texts)
    model = training.build_model(len(tokenizer), layers=1, width=32, heads=2, context=32, dropout=0.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    fixed = training.random_batch(stream, 8, 32, rng)
    losses = [training.train_step(model, optimizer, fixed, 3e-3) for _ in range(8)]
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]
    bpb = training.held_out_bits_per_byte(model, stream[:300], training.bytes_per_token(tokenizer), 32)
    assert math.isfinite(bpb) and 0 < bpb < 20
    assert training.sample_text(model, tokenizer, "The ", new_tokens=5).startswith("The ")


def test_byte_tokenizer_round_trips_any_text():
    tokenizer = training.build_tokenizer(FALLBACK, 257)
    assert len(tokenizer) == 257
    sample = "naïve café — 100% ☃\n\ttab"
    ids = tokenizer(sample, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(sample.encode("utf-8"))
    assert tokenizer.decode(ids) == sample
    assert (training.bytes_per_token(tokenizer)[ids] == 1).all()


def test_learning_rate_warms_up_then_decays():
    rates = [training.learning_rate(s, 1e-3, 10, 100) for s in (0, 9, 10, 55, 100, 200)]
    assert rates[0] < rates[1] == pytest.approx(1e-3)
    assert rates[2] > rates[3] > rates[4] == pytest.approx(1e-4) == rates[5]
