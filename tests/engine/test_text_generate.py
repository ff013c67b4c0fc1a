"""The text sampling loop, the loader and the worker task, on a tiny random GPT-2 and a scripted model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from studio import paths  # noqa: E402
from studio.core import catalog  # noqa: E402
from studio.core.devices import DeviceChoice  # noqa: E402
from studio.core.jobs import Cancelled, Job, Progress, TaskContext  # noqa: E402
from studio.core.recipe import Recipe  # noqa: E402
from studio.engine.text import generate as text  # noqa: E402
from studio.engine.text import models  # noqa: E402

CORPUS = ["The quick brown fox jumps over the lazy dog.", "A hacker is a person who enjoys exploring systems."]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    """A random 1-layer GPT-2 with a byte-level tokenizer, saved as safetensors like any user model."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from studio.training.text import build_tokenizer

    folder = tmp_path_factory.mktemp("tiny-gpt")
    tokenizer = build_tokenizer(CORPUS, 257)  # 256 bytes + <|endoftext|>: plain byte-level
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=48,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_folder) -> models.HFTextModel:
    return models.load_text_model(catalog.resolve(str(tiny_folder)), "cpu", "float32")


def sampling(**changes) -> text.TextSettings:
    return text.TextSettings(
        **{"max_new_tokens": 20, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0, **changes}
    )


class ScriptedModel(models.TextModel):
    """Always puts its mass on the next character of a fixed script: makes the loop's behaviour exact."""

    script = "hello world. bye now, friends and foes"

    def __init__(self) -> None:
        self.eos_id = 0
        self.max_context = 10_000

    def encode(self, s):
        return [ord(c) for c in s]

    def decode(self, ids):
        return "".join(chr(i) for i in ids)

    def _logits(self, position):
        logits = torch.full((128,), -20.0)
        logits[ord(self.script[position]) if position < len(self.script) else 0] = 20.0
        return logits

    def start(self, ids):
        return 0, self._logits(0)

    def step(self, state, token_id):
        return state + 1, self._logits(state + 1)


def test_same_seed_same_text_different_seed_different_text(tiny):
    first = text.generate(tiny, "The ", sampling(), seed=1).text
    again = text.generate(tiny, "The ", sampling(), seed=1).text
    other = text.generate(tiny, "The ", sampling(), seed=2).text
    assert first == again
    assert first != other


def test_greedy_with_the_kv_cache_matches_model_generate(tiny):
    prompt = "The quick"
    ours = text.generate(tiny, prompt, sampling(greedy=True, max_new_tokens=12), seed=0)
    ids = torch.tensor([tiny.encode(prompt)])
    theirs = tiny.model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tiny.eos_id)
    reference = theirs[0, ids.shape[1] :].tolist()
    if tiny.eos_id in reference:
        reference = reference[: reference.index(tiny.eos_id)]
    assert ours.token_ids == reference


def test_a_trailing_space_is_healed_for_bpe_models(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from studio.training.text import build_tokenizer

    tokenizer = build_tokenizer(CORPUS * 3, 300)  # a few merges such as "Ġthe"
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=16, n_layer=1, n_head=2))
    bpe = models.HFTextModel(model.eval(), tokenizer)
    assert bpe.space_led_tokens()
    for seed in range(3):
        result = text.generate(bpe, "The ", sampling(max_new_tokens=3), seed=seed)
        assert result.token_ids[0] in bpe.space_led_tokens()
        assert not result.text.startswith(" ")


def test_context_is_cropped_instead_of_failing(tiny):
    # n_positions is 48: prompt + output well beyond it must not raise GPT-2's IndexError
    result = text.generate(tiny, "x" * 100, sampling(max_new_tokens=80, greedy=True), seed=0)
    assert result.finish_reason in ("length", "eos")


def test_max_new_tokens_is_respected(tiny):
    result = text.generate(tiny, "A", sampling(max_new_tokens=7), seed=3)
    assert len(result.token_ids) <= 7
    scripted = text.generate(ScriptedModel(), "", sampling(max_new_tokens=5), seed=0)
    assert scripted.text == "hello" and scripted.finish_reason == "length"


def test_stop_sequences_end_generation_and_are_cut():
    result = text.generate(ScriptedModel(), "", sampling(max_new_tokens=100, stop=(" bye", ". ")), seed=0)
    assert result.text == "hello world"
    assert result.finish_reason == "stop"
    kept = text.generate(ScriptedModel(), "", sampling(max_new_tokens=100, stop=(". ",), include_stop=True), seed=0)
    assert kept.text == "hello world. "


def test_end_of_text_ends_generation():
    result = text.generate(ScriptedModel(), "", sampling(max_new_tokens=500), seed=0)
    assert result.text == ScriptedModel.script and result.finish_reason == "eos"


def test_stop_sequence_never_flashes_in_the_stream():
    previews: list[Progress] = []
    text.generate(ScriptedModel(), "", sampling(max_new_tokens=100, stop=("world",)), seed=0, report=previews.append)
    assert all("wor" not in p.preview for p in previews)
    assert previews[-1].preview == "hello "


def test_streaming_previews_arrive_in_order_and_end_with_the_final_text(tiny):
    previews: list[Progress] = []
    result = text.generate(tiny, "The ", sampling(max_new_tokens=15), seed=5, report=previews.append)
    steps = [p.step for p in previews]
    assert steps == sorted(steps)
    assert previews[-1].preview == result.text
    scripted: list[Progress] = []
    final = text.generate(ScriptedModel(), "", sampling(max_new_tokens=12), seed=0, report=scripted.append)
    texts = [p.preview for p in scripted]
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:], strict=False))  # each preview extends the one before
    assert texts[-1] == final.text == "hello world."


def test_cancel_stops_within_one_token():
    previews: list[Progress] = []
    with pytest.raises(Cancelled):
        text.generate(
            ScriptedModel(),
            "",
            sampling(max_new_tokens=100),
            seed=0,
            report=previews.append,
            cancelled=lambda: len(previews) >= 3,
        )
    assert len(previews) == 3


def test_inspector_records_every_token(tiny):
    result = text.generate(tiny, "The ", sampling(max_new_tokens=4, inspect=True, top_k=5), seed=0)
    assert len(result.inspector) >= len(result.token_ids)
    first = result.inspector[0]
    assert len(first["before"]) == 10
    assert sum(c["p"] > 0 for c in first["after"]) == 5
    scripted = text.generate(ScriptedModel(), "", sampling(max_new_tokens=8, inspect=True, stop=(" w",)), seed=0)
    spans = [scripted.text[e["start"] : e["end"]] for e in scripted.inspector]
    assert spans[:5] == list("hello") and "".join(spans) == scripted.text == "hello"


def test_chat_mode_uses_a_transcript_without_a_template():
    prompt, stops = models.TextModel().render_chat([{"role": "user", "content": "Hi"}])
    assert prompt == "User: Hi\nAssistant:" and "\nUser:" in stops


def test_chat_mode_uses_the_chat_template_when_present(tiny):
    tiny.tokenizer.chat_template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<assistant>"
    tiny.chat_template = tiny.tokenizer.chat_template
    try:
        result = text.generate(
            tiny, "", sampling(mode="chat", messages=({"role": "user", "content": "Hi"},), max_new_tokens=3), seed=0
        )
        assert result.prompt == "<user>Hi<assistant>"
    finally:
        tiny.tokenizer.chat_template = tiny.chat_template = None


def test_a_pickle_only_folder_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    torch.save({"w": torch.zeros(2)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(catalog.UnsafeModelError):
        models.load_text_model(catalog.resolve(str(tmp_path)))


class _Cache:
    def __init__(self) -> None:
        self.loads = 0

    def get(self, slot, key, loader):
        self.loads += 1
        return loader()


def test_generate_task_returns_a_complete_recipe_that_regenerates(tiny_folder):
    previews: list[Progress] = []
    ctx = TaskContext(
        report=previews.append, cancelled=lambda: False, models=_Cache(), device=DeviceChoice("cpu", "float32", "CPU")
    )
    recipe = Recipe("text", prompt="The ", model=str(tiny_folder), seed=-1, params={"max_new_tokens": 10, "top_k": 5})
    artifact = text.generate_task(Job("text.generate", recipe), ctx).artifacts[0]
    made = artifact.recipe
    assert made.seed >= 0 and made.model_hash and made.device == "cpu" and made.dtype == "float32"
    assert made.params["top_k"] == 5 and made.params["temperature"] == text.TextSettings().temperature
    assert artifact.modality == "text" and artifact.payload == previews[-1].preview
    assert set(artifact.info) >= {"prompt", "tokens_per_s", "first_token_s"}
    again = text.generate_task(Job("text.generate", made), ctx).artifacts[0]
    assert again.payload == artifact.payload


@pytest.mark.slow
def test_the_builtin_model_loads_through_the_generic_loader_and_writes():
    folder = paths.builtin_model_dir("text-gpt")
    if not (folder / "model.safetensors").exists():
        pytest.skip("models/text-gpt is not exported yet (python -m studio.training.text export)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoTokenizer.from_pretrained(folder)
    AutoModelForCausalLM.from_pretrained(folder)
    model = models.load_text_model(catalog.resolve("builtin:text-gpt"))
    result = text.generate(model, "The ", sampling(max_new_tokens=40, temperature=0.8, top_k=40), seed=0)
    assert len(result.text.strip()) > 10
    assert sum(ch.isalpha() or ch.isspace() for ch in result.text) / len(result.text) > 0.7


def tiny_rnn_folder(tmp_path):
    """A random 1-layer GRU over text-gpt's tokenizer, saved as a studio-rnn folder (fp16 safetensors)."""
    import shutil

    from studio.core import rnn

    gpt = paths.builtin_model_dir("text-gpt")
    folder = tmp_path / "tiny-rnn"
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(gpt / name, folder / name)
    vocab = json.loads((gpt / "config.json").read_text())["vocab_size"]
    torch.manual_seed(0)
    rnn.RNNLanguageModel(rnn.RNNConfig(vocab, width=16, layers=1, cell="gru")).save(folder, extra={"eos_token_id": 0})
    return folder


def test_a_recurrent_model_loads_through_the_generic_loader_and_streams_reproducibly(tmp_path):
    folder = tiny_rnn_folder(tmp_path)
    source = catalog.resolve(str(folder))
    assert source.kind == "rnn"
    model = models.load_text_model(source)
    settings = text.TextSettings(max_new_tokens=12, temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0)
    streamed: list[Progress] = []
    first = text.generate(model, "The cat", settings, seed=7, report=streamed.append)
    again = text.generate(model, "The cat", settings, seed=7)
    assert first.text == again.text and first.text and len(first.token_ids) == 12
    steps = [p.step for p in streamed]
    assert steps == sorted(steps) and steps[-1] == 12 and streamed[-1].preview.endswith(first.text)
    assert text.generate(model, "The cat", settings, seed=8).text != first.text  # the seed matters
