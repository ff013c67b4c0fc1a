"""The "<medium>.compare" tasks (studio/engine/{text,music}/compare.py): a family's run is exactly the medium's
own generation (same text, same notes for the same recipe), and its surprise is the model's own -log2 P of what it
wrote, checked here against one plain forward pass of a tiny RNN."""

from __future__ import annotations

import math
import shutil

import pytest

torch = pytest.importorskip("torch")

from studio import paths  # noqa: E402
from studio.core import rnn  # noqa: E402
from studio.core.jobs import Job  # noqa: E402
from studio.core.recipe import Recipe  # noqa: E402
from studio.engine.music import compare as music_compare  # noqa: E402
from studio.engine.music.generate import generate_task as music_generate_task  # noqa: E402
from studio.engine.text import compare as text_compare  # noqa: E402
from studio.engine.text.generate import generate_task as text_generate_task  # noqa: E402
from tests.engine.test_music import context  # noqa: E402
from tests.engine.test_music_rnn import tiny_music_rnn  # noqa: E402, F401 (a fixture)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """One torch thread: deterministic, and the trainings keep their cores."""


@pytest.fixture(scope="module")
def tiny_text_rnn(tmp_path_factory):
    gpt = paths.builtin_model_dir("text-gpt")
    if not (gpt / "tokenizer.json").exists():
        pytest.skip("text-gpt's tokenizer is not installed")
    folder = tmp_path_factory.mktemp("tiny-text-rnn")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(gpt / name, folder / name)
    torch.manual_seed(1)
    rnn.RNNLanguageModel(rnn.RNNConfig(vocab_size=2048, width=16, layers=1)).save(folder, extra={"eos_token_id": 0})
    return folder


def _mean_bits(net, ids: list[int], first: int) -> float:
    """Mean -log2 P(ids[t] | ids[:t]) for t >= first, from one forward pass."""
    with torch.inference_mode():
        logits, _ = net(torch.tensor([ids]))
    log_probs = torch.log_softmax(logits[0].double(), -1)
    bits = [-float(log_probs[t - 1, ids[t]]) / math.log(2.0) for t in range(first, len(ids))]
    return sum(bits) / len(bits)


def test_a_text_family_run_is_text_generate_and_its_surprise_is_the_models_own(tiny_text_rnn):
    recipe = Recipe(modality="text", prompt="The cat sat on", model=str(tiny_text_rnn), seed=4,
                    params={"max_new_tokens": 25, "temperature": 1.3, "top_k": 0, "repetition_penalty": 1.0})
    value = text_compare.compare_task(Job("text.compare", recipe, args={"family": "RNN"}), context([])).value
    plain = text_generate_task(Job("text.generate", recipe), context([])).artifacts[0]
    assert value["text"] == plain.payload and value["family"] == "RNN" and value["tokens_per_s"] > 0
    net = rnn.load(tiny_text_rnn)
    from tokenizers import Tokenizer

    prompt_ids = Tokenizer.from_file(str(tiny_text_rnn / "tokenizer.json")).encode("The cat sat on").ids
    ids = prompt_ids + value["token_ids"]
    assert value["surprise_bits"] == pytest.approx(_mean_bits(net, ids, len(prompt_ids)), abs=1e-3)
    assert value["prompt_bits_per_byte"] > 0 and value["bits_per_byte"] > 0


def test_the_saved_text_comparison_is_one_page_with_every_column():
    recipe = Recipe(modality="text", prompt="Hi", model="builtin:text-gpt", seed=1,
                    params={"operation": "text.compare", "compare": {"families": [], "columns": []}})
    columns = [{"family": f, "model": f"builtin:{f}", "text": f"words of {f}", "tokens_per_s": 10.0,
                "surprise_bits": 2.0, "bits_per_byte": 1.0} for f in ("markov", "rnn", "gpt")]
    (artifact,) = text_compare.compare_task(Job("text.compare", recipe, args={"columns": columns}), context([])).artifacts
    assert artifact.modality == "text" and artifact.recipe is recipe
    assert all(f"words of {f}" in artifact.payload for f in ("markov", "rnn", "gpt"))


def test_a_music_family_run_is_music_generate_and_its_surprise_is_the_models_own(tiny_music_rnn):  # noqa: F811
    recipe = Recipe(modality="music", prompt="reel in G major", model=str(tiny_music_rnn), seed=9,
                    params={"bars": 2, "guidance": 3.0})
    value = music_compare.compare_task(Job("music.compare", recipe, args={"family": "RNN"}), context([])).value
    plain = music_generate_task(Job("music.generate", recipe), context([])).artifacts[0].payload
    assert music_compare.notes_of(value) == plain.notes and value["key"] == "G major"
    tokens = value["token_ids"]
    assert len(tokens) == value["tokens"] >= 6
    # every token after BOS, scored under the raw model (before the grammar and the sampling controls)
    assert value["surprise_bits"] == pytest.approx(_mean_bits(rnn.load(tiny_music_rnn), tokens, 1), abs=1e-3)


def test_the_saved_music_comparison_plays_the_three_pieces_one_after_another():
    recipe = Recipe(modality="music", prompt="tune", model="builtin:music-gpt", seed=1, params={})
    one = {"notes": [[60, 0.0, 1.0, 80, 0], [62, 3.0, 1.0, 80, 0]], "metre": "4/4", "key": "C major", "tempo": 100}
    (artifact,) = music_compare.compare_task(Job("music.compare", recipe, args={"columns": [one, one, one]}),
                                             context([])).artifacts
    starts = [n.start for n in artifact.payload.notes]
    assert starts == [0.0, 3.0, 8.0, 11.0, 16.0, 19.0]  # each family a bar after the last one ends
