"""The recurrent built-ins (studio/core/rnn.py, studio/training/{rnn,text_rnn,music_rnn}.py) on tiny slices:
training lowers nothing in particular but must resume exactly, files are fp16 safetensors, sampling is seeded."""

from __future__ import annotations

import gzip
import json
import math
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from studio.core import rnn  # noqa: E402
from studio.training import rnn as loop  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """One torch thread, as the trainers run: CPU kernels are then deterministic (resume gives the same loss)."""


@pytest.fixture(params=rnn.CELLS)
def tiny(request) -> rnn.RNNLanguageModel:
    torch.manual_seed(0)
    return rnn.RNNLanguageModel(rnn.RNNConfig(vocab_size=50, width=16, layers=2, cell=request.param)).eval()


def test_stepping_token_by_token_gives_the_same_logits_as_one_pass(tiny):
    ids = torch.randint(0, 50, (2, 9))
    with torch.inference_mode():
        whole, _ = tiny(ids)
        logits, state = tiny.prime(ids[0, :4].tolist())
        stepped = [logits]
        for token in ids[0, 4:].tolist():
            logits, state = tiny.step(token, state)
            stepped.append(logits)
        batched, _ = tiny.step(ids[:, 0], None)
    torch.testing.assert_close(torch.stack(stepped), whole[0, 3:], rtol=1e-5, atol=1e-5)
    assert stepped[0].shape == (50,) and batched.shape == (2, 50)
    torch.testing.assert_close(batched, whole[:, 0])


def test_save_and_load_round_trip_as_fp16_safetensors(tiny, tmp_path):
    from safetensors import safe_open

    from studio.core import catalog

    tiny.save(tmp_path, extra={"eos_token_id": 3})
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "studio-rnn" and config["eos_token_id"] == 3 and config["cell"] == tiny.config.cell
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    catalog.check_weights_folder(tmp_path)  # safetensors, not a pickle
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as weights:
        assert {weights.get_tensor(k).dtype for k in weights.keys()} == {torch.float16}
        assert "head.weight" not in weights.keys()  # tied to the embedding: stored once
    loaded = rnn.load(tmp_path)
    assert rnn.is_rnn_folder(tmp_path) and loaded.config == tiny.config and not loaded.training
    assert loaded.head.weight is loaded.embed.weight
    halved = rnn.RNNLanguageModel(tiny.config)
    halved.load_weights({k: v.half() for k, v in tiny.weights().items()})
    ids = torch.randint(0, 50, (1, 12))
    with torch.inference_mode():
        torch.testing.assert_close(loaded(ids)[0], halved.eval()(ids)[0])  # exactly the fp16 weights
        assert (loaded(ids)[0] - tiny(ids)[0]).abs().max() < 0.05  # and close to the fp32 model


def test_the_same_seed_gives_the_same_tokens(tiny):
    first = rnn.sample(tiny, [1, 2, 3], 30, temperature=1.0, top_k=0, seed=7)
    assert first == rnn.sample(tiny, [1, 2, 3], 30, temperature=1.0, top_k=0, seed=7)
    assert first != rnn.sample(tiny, [1, 2, 3], 30, temperature=1.0, top_k=0, seed=8)
    assert len(first) == 30 and all(0 <= t < 50 for t in first)
    assert rnn.sample(tiny, [1], 5, top_k=1, seed=1) == rnn.sample(tiny, [1], 5, top_k=1, seed=2)  # top-1 is greedy


def test_a_folder_of_another_model_type_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    assert not rnn.is_rnn_folder(tmp_path)
    with pytest.raises(ValueError, match="studio-rnn"):
        rnn.load(tmp_path)


# --- training: a few steps, then the same next step after a resume -----------------------------------------------


def resumes_exactly(tmp_path, config: rnn.RNNConfig, schedule: loop.Schedule, task: loop.Task) -> list[float]:
    """Run A trains 4 steps in one sitting; run B trains 2, stops, and a new Trainer resumes it from the checkpoint."""
    timers = loop.Timers(eval_minutes=1e9, checkpoint_minutes=1e9, export_minutes=1e9, log_every=1)
    straight = loop.Trainer(tmp_path / "a", config, schedule, task, timers).train()
    loop.Trainer(tmp_path / "b", config, schedule, task, timers).train(steps=2)
    assert (tmp_path / "b" / "checkpoint.pt").exists() and (tmp_path / "b" / "best.safetensors").exists()
    resumed = loop.Trainer(tmp_path / "b", config, schedule, task, timers)
    assert resumed.state["step"] == 2
    after = resumed.train()
    assert [step for step, _ in straight] == [1, 2, 3, 4] and [step for step, _ in after] == [3, 4]
    assert after[0][1] == straight[2][1] and after[1][1] == straight[3][1]  # bit for bit
    assert all(math.isfinite(loss) for _, loss in straight)
    assert len(resumed.state["history"]) == 2  # held-out figures at the end of each sitting
    return [loss for _, loss in straight]


@pytest.fixture(scope="module")
def text_data():
    from transformers import AutoTokenizer

    from studio import paths
    from studio.data import text as corpus
    from studio.training import text_rnn, text_tokens

    gpt = paths.builtin_model_dir("text-gpt")
    if not (gpt / "tokenizer.json").exists():
        pytest.skip("needs text-gpt's tokenizer (models/text-gpt)")
    tokenizer = AutoTokenizer.from_pretrained(gpt, model_max_length=1_000_000)
    entries = corpus.load_entries()[:60] or [corpus.Entry("x", f"Cookie number {i} is a fortune.") for i in range(60)]
    stream = text_tokens.encode_stream(tokenizer, [e.text for e in entries])
    summary = corpus.corpus_summary(entries)
    return text_rnn.TextData(tokenizer, stream, stream[:300], text_tokens.bytes_per_token(tokenizer), summary, 16)


def test_text_rnn_trains_a_few_steps_and_resumes_with_the_same_next_loss(text_data, tmp_path):
    from studio.training import text_rnn

    config = rnn.RNNConfig(len(text_data.tokenizer), width=24, layers=2, cell="lstm", dropout=0.1)
    schedule = loop.Schedule(batch=4, context=16, lr=1e-2, warmup=2, max_steps=4, seed=3)
    losses = resumes_exactly(tmp_path, config, schedule, text_rnn.text_task(text_data))
    assert losses[0] == pytest.approx(math.log(len(text_data.tokenizer)), rel=0.1)  # starts near uniform
    model = loop.load_best(tmp_path / "b")
    assert 0 < text_rnn.held_out_bpb(model, text_data) < 20
    assert text_rnn.sample_text(model, text_data, "The", seed=1) == text_rnn.sample_text(model, text_data, "The", seed=1)


def test_text_rnn_exports_a_loadable_folder_with_a_card(text_data, tmp_path, monkeypatch):
    from studio.training import text_rnn

    config = rnn.RNNConfig(len(text_data.tokenizer), width=24, layers=1, cell="gru")
    schedule = loop.Schedule(batch=2, context=16, warmup=1, max_steps=2)
    loop.Trainer(tmp_path / "run", config, schedule, text_rnn.text_task(text_data), loop.Timers()).train()
    figures = {"gpt": 1.697, "gpt_params": 3.75e6, "markov_full": 2.044, "markov_shipped": 2.114}
    monkeypatch.setattr(text_rnn, "baselines", lambda run_dir, data: figures)  # the real ones score the full corpus
    text_rnn.export(tmp_path / "run", text_data, tmp_path / "text-rnn")
    out = tmp_path / "text-rnn"
    assert {"config.json", "model.safetensors", "tokenizer.json", "MODEL_CARD.md", "training.json"} <= {
        p.name for p in out.iterdir()}
    card = (out / "MODEL_CARD.md").read_text()
    assert "GNU Free Documentation License" in card and "| 1.697 |" in card and "| 2.114 |" in card
    model = rnn.load(out)
    assert model.config == config and rnn.read_config(out)["eos_token_id"] == text_data.eot
    assert json.loads((out / "training.json").read_text())["steps"] == 2


# --- music --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def music_data(tmp_path_factory):
    """A made-up corpus in the parsed-corpus format (no music21 parsing), tokenised by music-gpt's own code."""
    from studio.training import music as music_gpt

    folder = tmp_path_factory.mktemp("music")
    rng = np.random.default_rng(0)
    pieces = []
    for i in range(6):
        notes = [[int(60 + rng.integers(-5, 8)), 0.5 * k, 0.5, 80, 0] for k in range(64)]
        pieces.append({"id": f"test/{i}", "collection": "bach", "style": "chorale", "metre": "4/4", "tonic": 0,
                       "mode": "major", "tempo": 90.0, "notes": notes})
    corpus = folder / "corpus.jsonl.gz"
    with gzip.open(corpus, "wt", encoding="utf-8") as sink:
        sink.writelines(json.dumps(p) + "\n" for p in pieces)
    music_gpt.build_tokens(corpus, folder / "tokens.npz")
    return music_gpt.TokenData(folder / "tokens.npz")


def test_music_rnn_trains_a_few_steps_and_resumes_with_the_same_next_loss(music_data, tmp_path):
    from studio.training import music_rnn

    windows = [music_data.sequence(i)[:64] for i in range(3)]
    config = rnn.RNNConfig(len(music_data.tok), width=24, layers=2, cell="lstm", dropout=0.1)
    schedule = loop.Schedule(batch=2, context=511, lr=1e-2, warmup=2, max_steps=4, seed=5)
    resumes_exactly(tmp_path, config, schedule, music_rnn.music_task(music_data, windows))
    model = loop.load_best(tmp_path / "b")
    assert 0 < music_rnn.held_out_loss(model, windows) < math.log(len(music_data.tok)) + 1
    notes, ids = music_rnn.generate_notes(model, music_data.tok, music_rnn.KEY_PROMPTS[0], seed=4, bars=2)
    assert (notes, ids) == music_rnn.generate_notes(model, music_data.tok, music_rnn.KEY_PROMPTS[0], seed=4, bars=2)


def test_music_rnn_exports_a_loadable_folder_with_a_card(music_data, tmp_path, monkeypatch):
    from studio.engine.music.tokenizer import MusicTokenizer
    from studio.training import music_rnn

    monkeypatch.setenv("STUDIO_RUNS_DIR", str(tmp_path / "runs"))  # the card reads the token stats from there
    config = rnn.RNNConfig(len(music_data.tok), width=16, layers=1)
    schedule = loop.Schedule(batch=1, context=511, warmup=1, max_steps=1)
    task = music_rnn.music_task(music_data, [music_data.sequence(0)[:32]])
    loop.Trainer(tmp_path / "run", config, schedule, task, loop.Timers()).train()
    monkeypatch.setattr(music_rnn, "baselines", lambda run_dir, data, windows: {"gpt": 0.807, "ngram": 1.020,
                                                                                 "ngram_order": 7, "pieces": 1})
    monkeypatch.setattr(music_rnn, "CARD_PIECES", 2)
    monkeypatch.setattr(music_data, "held_out_windows", lambda limit: [music_data.sequence(0)[:32]])
    music_rnn.export(tmp_path / "run", music_data, tmp_path / "music-rnn")
    out = tmp_path / "music-rnn"
    card = (out / "MODEL_CARD.md").read_text()
    assert "NON-COMMERCIAL" in card and "| 0.8070 |" in card and "| 1.0200 |" in card and "In-key rate" in card
    assert MusicTokenizer.load(out).tokens == music_data.tok.tokens
    assert rnn.load(out).config == config
    shutil.rmtree(out)


def test_the_learning_rate_warms_up_holds_and_decays_to_a_tenth():
    schedule = loop.Schedule(lr=1e-2, warmup=10, max_steps=100, decay=0.2)
    rates = [loop.learning_rate(schedule, step) for step in range(101)]
    assert rates[0] == pytest.approx(1e-3) and rates[9] == rates[50] == 1e-2 and rates[80] == pytest.approx(1e-2)
    assert all(a >= b for a, b in zip(rates[80:], rates[81:], strict=False)) and rates[100] == pytest.approx(1e-3)
    # A recorded window (a time budget's) replaces the default one.
    assert loop.learning_rate(schedule, 30, {"start": 20, "steps": 10}) == pytest.approx(1e-3)


def test_a_time_budget_records_a_decay_window_that_ends_the_run(tmp_path):
    import time

    config = rnn.RNNConfig(vocab_size=20, width=8, layers=1)
    schedule = loop.Schedule(batch=2, context=8, warmup=1, max_steps=1000, decay=0.25)
    task = loop.Task("tiny", "nats/token", lambda step, s: torch.randint(0, 20, (s.batch, s.context + 1)),
                     lambda model: 1.0)
    trainer = loop.Trainer(tmp_path, config, schedule, task, loop.Timers(minutes=2))
    trainer.state["step"], trainer.losses = 10, [(i, 1.0) for i in range(10)]
    trainer.started = time.monotonic() - 100  # 100 s of a 120 s budget gone, at 10 steps per 100 s
    trainer.start_decay()
    assert trainer.state["decay"] == {"start": 10, "steps": 2} and trainer.end_step() == 12
    assert trainer.train() and trainer.state["step"] == 12
    assert loop.Trainer(tmp_path, config, schedule, task, loop.Timers()).state["decay"] == {"start": 10, "steps": 2}
