"""The text training code runs on a tiny slice (the real run takes hours and is not run here)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from studio.data import text as text_data  # noqa: E402
from studio.training import text_model, text_tokens  # noqa: E402

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
    tokenizer = text_tokens.build_tokenizer(texts, 300)
    stream = text_tokens.encode_stream(tokenizer, texts)
    model = text_model.build_model(len(tokenizer), layers=1, width=32, heads=2, context=32, dropout=0.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    fixed = text_tokens.random_batch(stream, 8, 32, rng)
    losses = [text_model.train_step(model, optimizer, fixed, 3e-3) for _ in range(8)]
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]
    bpb = text_model.held_out_bits_per_byte(model, stream[:300], text_tokens.bytes_per_token(tokenizer), 32)
    assert math.isfinite(bpb) and 0 < bpb < 20
    assert text_model.sample_text(model, tokenizer, "The ", new_tokens=5).startswith("The ")


def test_byte_tokenizer_round_trips_any_text():
    tokenizer = text_tokens.build_tokenizer(FALLBACK, 257)
    assert len(tokenizer) == 257
    sample = "naïve café — 100% ☃\n\ttab"
    ids = tokenizer(sample, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(sample.encode("utf-8"))
    assert tokenizer.decode(ids) == sample
    assert (text_tokens.bytes_per_token(tokenizer)[ids] == 1).all()


def test_learning_rate_warms_up_then_decays():
    rates = [text_model.learning_rate(s, 1e-3, 10, 100) for s in (0, 9, 10, 55, 100, 200)]
    assert rates[0] < rates[1] == pytest.approx(1e-3)
    assert rates[2] > rates[3] > rates[4] == pytest.approx(1e-4) == rates[5]


def _dictd_number(value: int) -> str:
    digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    text = ""
    while True:
        text = digits[value % 64] + text
        value //= 64
        if not value:
            return text


def test_dictd_definitions_read_through_the_index_once_per_definition(tmp_path):
    import gzip

    definitions = ["LIAR, n.  A lawyer with a roving commission.\n\n", "kludge\n\n   <jargon> A clever trick.\n\n"]
    data = "00-database-info\nheader\n" + "".join(definitions)
    first = data.index(definitions[0])
    second = data.index(definitions[1])
    index_lines = [
        f"00databaseinfo\t{_dictd_number(0)}\t{_dictd_number(first)}",  # dictd's header: skipped
        f"liar\t{_dictd_number(first)}\t{_dictd_number(len(definitions[0]))}",
        f"kludge\t{_dictd_number(second)}\t{_dictd_number(len(definitions[1]))}",
        f"kluge\t{_dictd_number(second)}\t{_dictd_number(len(definitions[1]))}",  # an alias of the same definition
    ]
    (tmp_path / "toy.index").write_text("\n".join(index_lines) + "\n")
    with gzip.open(tmp_path / "toy.dict.dz", "wt") as handle:
        handle.write(data)
    assert text_data.dictd_definitions("toy", tmp_path) == definitions
    assert text_data.dictd_definitions("absent", tmp_path) == []


def test_only_the_named_fortune_sets_are_read(tmp_path):
    (tmp_path / "wisdom").write_text("Look before you leap.\n%\nHe who hesitates is lost.\n%\n")
    (tmp_path / "mario.geral").write_text("Um texto em outra língua.\n%\n")  # another package's set
    entries = text_data.fortune_entries(tmp_path, sets=["wisdom", "absent"])
    assert [e.text for e in entries] == ["Look before you leap.", "He who hesitates is lost."]
    assert {e.source for e in entries} == {"fortunes/wisdom"}


def test_training_refuses_a_partial_corpus_and_names_the_packages(monkeypatch, tmp_path):
    monkeypatch.setattr(text_data, "DICTD_DIR", tmp_path)  # no dictionaries here
    assert {"dict-devil", "dict-foldoc"} <= set(text_data.missing_packages())
    with pytest.raises(SystemExit, match="apt-get install .*dict-devil dict-foldoc"):
        text_tokens.require_full_corpus()


def test_train_resumes_and_exports_on_a_tiny_corpus(tmp_path, monkeypatch):
    """The whole command: a new run, a resume that goes on from its checkpoint, an export that loads as transformers."""
    from argparse import Namespace

    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from studio.training import text as text_training
    from studio.training import text_export

    entries = [text_data.Entry(f"fortunes/set{i % 3}", f"{text} ({i})") for i, text in enumerate(FALLBACK * 20)]
    monkeypatch.setattr(text_data, "load_entries", lambda: entries)
    monkeypatch.setattr(text_data, "missing_packages", lambda: [])
    run_dir = tmp_path / "runs" / "text-gpt"
    args = Namespace(run_dir=str(run_dir), vocab_size=280, layers=1, width=16, heads=2, context=16, dropout=0.0,
                     batch=4, lr=3e-3, warmup=2, max_steps=3, minutes=0, threads=1, seed=0, log_every=1,
                     eval_minutes=10, checkpoint_minutes=10, fresh=True)
    text_training.train(args)
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)["state"]
    assert state["step"] == 3 and len(state["history"]) == 1 and state["tokens"] == 3 * 4 * 16
    first_best = json.loads((run_dir / "best.json").read_text())
    text_training.train(Namespace(**{**vars(args), "max_steps": 5}))  # goes on from step 3
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)["state"]
    assert state["step"] == 5 and [h["step"] for h in state["history"]] == [3, 5]
    assert json.loads((run_dir / "settings.json").read_text())["width"] == 16
    assert "resumed from" in (run_dir / "train.log").read_text()
    assert json.loads((run_dir / "best.json").read_text())["step"] in (first_best["step"], 5)

    text_export.export(Namespace(run_dir=str(run_dir), out=str(tmp_path / "model")))
    out = tmp_path / "model"
    assert {t.dtype for t in load_file(str(out / "model.safetensors")).values()} == {torch.float16}
    training_json = json.loads((out / "training.json").read_text())
    assert training_json["step"] == 5 and set(training_json["by_source"]) == {"all", "fortunes"}
    assert "text-gpt" in (out / "MODEL_CARD.md").read_text() and (out / "loss_curve.png").exists()
    model = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    assert model.config.n_embd == 16
