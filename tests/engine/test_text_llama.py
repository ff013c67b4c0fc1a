"""GGUF through llama.cpp (llama-cpp-python): the built-in text-gpt as GGUF against its transformers folder, the
exporter, the file's context length and chat template, the runtime choice and its fallback."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("llama_cpp")

from studio import paths  # noqa: E402
from studio.core import catalog  # noqa: E402
from studio.core.gguf_file import context_length, read_metadata  # noqa: E402
from studio.core.jobs import UserError  # noqa: E402
from studio.core.recipe import Recipe  # noqa: E402
from studio.engine.text import llama  # noqa: E402
from studio.engine.text.generate import generate, generate_text  # noqa: E402
from studio.engine.text.settings import TextSettings  # noqa: E402

BUILTIN = "builtin:text-gpt"
# Prompts the built-in continues for 64 tokens without ending its entry (an end of text would stop both early).
PROMPTS = ("A hacker is", "In the beginning", "The Unix way")


def run(runtime: str, prompt: str, seed: int, **params) -> tuple[str, Recipe, dict]:
    recipe = Recipe(modality="text", prompt=prompt, model=BUILTIN, seed=seed,
                    params={"runtime": runtime, "max_new_tokens": 64, **params})
    return generate_text(recipe)


@pytest.mark.slow
@pytest.mark.parametrize("prompt", PROMPTS)
def test_the_builtin_gguf_and_its_folder_write_the_same_greedy_text(prompt):
    through_llama, recipe, info = run("llama.cpp", prompt, 0, greedy=True)
    through_transformers, other, other_info = run("transformers", prompt, 0, greedy=True)
    assert info["tokens"] == other_info["tokens"] == 64
    assert through_llama == through_transformers
    assert (recipe.params["runtime"], other.params["runtime"]) == ("llama.cpp", "transformers")
    assert recipe.model_hash != other.model_hash  # each recipe names the file that ran


@pytest.mark.slow
def test_a_seeded_sampled_run_repeats_exactly_and_matches_the_other_runtime():
    sampled = {"temperature": 1.0, "top_k": 40, "top_p": 0.95, "min_p": 0.02, "dry_multiplier": 0.8}
    first, _, _ = run("llama.cpp", "Love is", 7, **sampled)
    again, _, _ = run("llama.cpp", "Love is", 7, **sampled)
    other_seed, _, _ = run("llama.cpp", "Love is", 8, **sampled)
    assert first == again and first != other_seed
    assert run("transformers", "Love is", 7, **sampled)[0] == first  # our chain on both runtimes' logits


def test_auto_takes_llama_cpp_for_the_builtin_and_falls_back_without_it(monkeypatch):
    source = catalog.resolve(BUILTIN)
    assert llama.choose_runtime(source, "auto") == "llama.cpp"
    assert llama.choose_runtime(source, "transformers") == "transformers"
    monkeypatch.setattr(llama, "llama_available", lambda: False)
    assert llama.choose_runtime(source, "auto") == "transformers"
    with pytest.raises(UserError, match="llama-cpp-python is not installed"):
        llama.choose_runtime(source, "llama.cpp")
    markov = catalog.resolve("builtin:text-markov")
    assert llama.choose_runtime(markov, "auto") == "auto"  # the n-gram model has its own loop


def test_the_exporter_writes_the_committed_file(tmp_path):
    from studio.training.text_gguf import export_gguf

    folder = paths.builtin_model_dir("text-gpt")
    written = export_gguf(folder, tmp_path / "again.gguf")
    committed = folder / "text-gpt.gguf"
    assert hashlib.sha256(written.read_bytes()).digest() == hashlib.sha256(committed.read_bytes()).digest()
    assert committed.stat().st_size < 20 * 2**20


def test_context_length_and_chat_template_come_from_the_file(tmp_path):
    from studio.training.text_gguf import export_gguf

    template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}<assistant>"
    path = export_gguf(paths.builtin_model_dir("text-gpt"), tmp_path / "chat.gguf", chat_template=template)
    metadata = read_metadata(path)
    assert context_length(metadata) == 256 and metadata["tokenizer.chat_template"] == template
    model = llama.load_for_runtime(catalog.resolve(str(path)), "cpu", "float32", False, "llama.cpp")
    assert model.max_context == 256 and model.chat_template == template
    prompt, _ = model.render_chat([{"role": "user", "content": "Hi"}])
    assert prompt == "<user>Hi\n<assistant>"
    result = generate(model, "", TextSettings(mode="chat", messages=({"role": "user", "content": "Hi"},),
                                              max_new_tokens=5, greedy=True), seed=0)
    assert result.prompt == prompt


def test_any_gguf_file_is_recognised_by_its_bytes_and_a_fake_is_refused(tmp_path):
    source = catalog.resolve(str(paths.builtin_model_dir("text-gpt") / "text-gpt.gguf"))
    assert source.kind == "gguf" and llama.choose_runtime(source) == "llama.cpp"
    with pytest.raises(UserError, match="only llama.cpp"):
        llama.choose_runtime(source, "transformers")
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 not a gguf at all")
    with pytest.raises(catalog.CorruptModelError, match="GGUF magic"):
        catalog.resolve(str(fake))
    truncated = tmp_path / "short.gguf"
    truncated.write_bytes((paths.builtin_model_dir("text-gpt") / "text-gpt.gguf").read_bytes()[:40])
    with pytest.raises(catalog.CorruptModelError, match="ends early"):
        catalog.resolve(str(truncated))
    hostile = tmp_path / "huge.gguf"
    hostile.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + (0).to_bytes(8, "little") + (2**40).to_bytes(8, "little"))
    with pytest.raises(catalog.CorruptModelError, match="metadata keys"):
        catalog.resolve(str(hostile))


def test_the_llama_path_keeps_the_inspector_and_banned_strings():
    model = llama.load_for_runtime(catalog.resolve(BUILTIN), "cpu", "float32", False, "llama.cpp")
    free = generate(model, "A hacker is", TextSettings(greedy=True, max_new_tokens=40, inspect=True), seed=0)
    assert len(free.inspector) == 40 and len(free.inspector[0]["before"]) == 10
    word = free.text.split()[2]
    banned = generate(model, "A hacker is", TextSettings(greedy=True, max_new_tokens=40, banned_strings=(word,)), 0)
    assert word.lower() not in banned.text.lower()
    assert banned.text[:3] == free.text[:3]


def test_continuing_reuses_what_llama_cpp_already_read():
    model = llama.load_for_runtime(catalog.resolve(BUILTIN), "cpu", "float32", False, "llama.cpp")
    ids = model.encode("A hacker is a person who")
    model.start(ids)
    model.start(ids + model.encode(" enjoys"))
    assert model.llm.n_tokens == len(ids) + len(model.encode(" enjoys"))
    state, logits = model.start(ids[:3])  # a fork: back to a shorter prefix
    assert model.llm.n_tokens == 3 and logits.shape[0] == model.vocab_size()


def quantize(source: Path, out: Path, kind: str) -> Path:
    """As llama.cpp's llama-quantize makes them (its C function, through llama-cpp-python)."""
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind}")
    assert llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), ctypes.byref(params)) == 0
    return out


@pytest.mark.parametrize("kind", ["Q8_0", "Q4_0"])
def test_a_quantized_gguf_loads_and_writes(tmp_path, kind):
    f16_path = paths.builtin_model_dir("text-gpt") / "text-gpt.gguf"
    path = quantize(f16_path, tmp_path / f"text-gpt-{kind}.gguf", kind)
    assert path.stat().st_size < 0.75 * f16_path.stat().st_size
    quantized = llama.load_for_runtime(catalog.resolve(str(path)), "cpu", "float32", False, "llama.cpp")
    full = llama.load_for_runtime(catalog.resolve(BUILTIN), "cpu", "float32", False, "llama.cpp")
    settings = TextSettings(greedy=True, max_new_tokens=12, inspect=True)
    small, f16 = generate(quantized, "A hacker is", settings, 0), generate(full, "A hacker is", settings, 0)
    assert len(small.token_ids) == 12 and small.token_ids[0] == f16.token_ids[0]
    assert abs(small.inspector[0]["before"][0]["p"] - f16.inspector[0]["before"][0]["p"]) < 0.05
