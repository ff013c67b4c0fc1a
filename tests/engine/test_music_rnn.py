"""The music RNN through the generic music loader (studio/engine/music/models.py, kind "rnn"): a tiny random
studio-rnn folder with music_vocab.json loads offline, composes under the grammar, and the same seed gives the
same notes; the recurrent state read in one pass and then stepped matches one pass over the whole sequence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from studio.core import catalog, rnn  # noqa: E402
from studio.core.jobs import Job, UserError  # noqa: E402
from studio.core.recipe import Recipe  # noqa: E402
from studio.engine.music.generate import generate, generate_task  # noqa: E402
from studio.engine.music.models import load_music_model  # noqa: E402
from studio.engine.music.piece import MusicPiece, Note  # noqa: E402
from studio.engine.music.tokenizer import MusicTokenizer  # noqa: E402
from tests.engine.test_music import context  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """One torch thread: deterministic CPU kernels, and no fight with the trainings for the cores."""


@pytest.fixture(scope="module")
def tiny_music_rnn(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    tok = MusicTokenizer()
    folder = tmp_path_factory.mktemp("tiny-music-rnn")
    net = rnn.RNNLanguageModel(rnn.RNNConfig(vocab_size=len(tok), width=24, layers=2))
    net.save(folder, extra={"bos_token_id": tok.bos_id, "eos_token_id": tok.eos_id, "pad_token_id": tok.pad_id})
    tok.save(folder)
    return folder


def music_recipe(model: Path, seed: int = 11, **params) -> Recipe:
    return Recipe(modality="music", prompt="lively folk reel in G major", model=str(model), seed=seed,
                  params={"bars": 3, **params})


def test_a_music_rnn_folder_resolves_and_loads_offline(tiny_music_rnn, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = catalog.resolve(str(tiny_music_rnn))
    assert source.kind == "rnn"
    model = load_music_model(source)
    assert model.kind == "rnn" and model.dtype == "float32" and not model.net.training
    assert model.context > 100_000, "the state carries the past: nothing is cropped"


def test_priming_then_stepping_matches_one_pass(tiny_music_rnn):
    model = load_music_model(str(tiny_music_rnn))
    tok = model.tokenizer
    ids = tok.encode_piece(MusicPiece([Note(60 + i % 5, i * 0.5, 0.5) for i in range(12)], key="C major"))[:30]
    state = model.start([])
    stepped = [model.next_logits(state, ids[:10])] + [model.next_logits(state, [t]) for t in ids[10:]]
    with torch.inference_mode():
        whole = torch.log_softmax(model.net(torch.tensor([ids]))[0][0], -1).double().numpy()
    np.testing.assert_allclose(np.stack(stepped), whole[9:], atol=1e-4)
    model.reset_cache(state, [])
    np.testing.assert_allclose(model.next_logits(state, ids[:5]), whole[4], atol=1e-4)


def test_same_seed_same_notes_under_the_grammar(tiny_music_rnn):
    model = load_music_model(str(tiny_music_rnn))
    first = generate(model, music_recipe(tiny_music_rnn, temperature=1.2, top_k=20, top_p=0.95, voices=2))
    assert first.piece.notes, "a random model under the grammar still writes notes"
    again = generate(model, first.recipe)
    assert again.piece.notes == first.piece.notes
    other = generate(model, music_recipe(tiny_music_rnn, seed=12, temperature=1.2, top_k=20, top_p=0.95, voices=2))
    assert other.piece.notes != first.piece.notes
    events = first.tokens[5:]
    assert events.count(model.tokenizer.bar_id) == 3
    assert all(n.voice < 2 for n in first.piece.notes)
    assert first.recipe.dtype == "float32" and first.recipe.params["key_used"] == "G major"


def test_the_task_streams_previews_and_continues_a_piece(tiny_music_rnn):
    reports: list = []
    result = generate_task(Job(kind="music.generate", recipe=music_recipe(tiny_music_rnn)), context(reports))
    (artifact,) = result.artifacts
    assert reports and reports[-1].preview == artifact.payload.notes
    prefix = MusicPiece([Note(62 + i % 3, i * 1.0, 1.0) for i in range(8)], key="D minor", programs=[0] * 4)
    model = load_music_model(str(tiny_music_rnn))
    continued = generate(model, music_recipe(tiny_music_rnn), prefix=prefix)
    assert continued.piece.notes[:8] == prefix.notes and len(continued.piece.notes) > 8


def test_a_text_rnn_folder_is_not_a_music_model(tmp_path):
    rnn.RNNLanguageModel(rnn.RNNConfig(vocab_size=20, width=8, layers=1)).save(tmp_path)
    with pytest.raises(UserError, match="music_vocab.json"):
        load_music_model(str(tmp_path))


def test_the_built_in_music_rnn_when_present():
    try:
        source = catalog.resolve("builtin:music-rnn")
    except UserError:
        pytest.skip("models/music-rnn is not exported yet")
    model = load_music_model(source)
    result = generate(model, music_recipe(Path("builtin:music-rnn"), seed=3))
    assert result.piece.notes and result.piece.key == "G major"
