"""A1111's prompt syntax: weights, BREAK, long prompts, embeddings — parsed as A1111 parses them and encoded
the way its pictures were made."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from studio.core.catalog import resolve
from studio.core.jobs import UserError
from studio.core.model_folders import forget_listing, set_added_folders
from studio.core.recipe import Recipe
from studio.engine.image.conditioning import a1111_prompt_embeds, chunk_prompt
from studio.engine.image.embeddings import load_embedding
from studio.engine.image.generate import generate_artifacts
from studio.engine.image.pipelines import load_image_pipeline
from studio.engine.image.prompts import extract_loras, parse_attention, plain_text
from tests.engine.conftest import cpu_device
from tests.engine.tiny_adapters import save_embedding
from tests.engine.tiny_families import CLIP_G, CLIP_L, build_pipeline

# --- parsing (A1111's own examples, from modules/prompt_parser.py) ---------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [("a ", 1.0), ("house", 1.5730000000000004), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55),
      (", sun, ", 1.1), ("sky", 1.4641000000000006), (".", 1.1)]),
    ("a cat BREAK a dog", [("a cat", 1.0), ("BREAK", -1.0), ("a dog", 1.0)]),
])
def test_attention_is_parsed_as_a1111_does(text, expected):
    assert parse_attention(text) == expected


def test_lora_tags_come_out_of_the_prompt_with_their_weights():
    text, tags, notes = extract_loras("a cat <lora:ink:0.6>, <LORA:style>  <lora:bad:x>")
    assert [(t.name, t.weight) for t in tags] == [("ink", 0.6), ("style", 1.0), ("bad", 1.0)]
    assert "<" not in text and any("not a number" in n for n in notes)


def test_plain_text_drops_weights_for_models_that_take_none():
    assert plain_text("a (red:1.4) [cat] BREAK on a mat") == "a red cat on a mat"


# --- encoding ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipes(tmp_path_factory, one_torch_thread):
    root = tmp_path_factory.mktemp("prompt-models")
    return SimpleNamespace(sd1=build_pipeline("sd1", root / "sd1"), sdxl=build_pipeline("sdxl", root / "sdxl"))


def _distance(a, b) -> float:
    return float((a - b).norm())


@pytest.mark.parametrize(("arch", "negative"), [("sd", "blurry"), ("sdxl", "blurry"), ("sdxl", "")])
def test_a_plain_prompt_encodes_exactly_as_diffusers_does(pipes, arch, negative):
    import torch

    pipe = pipes.sd1 if arch == "sd" else pipes.sdxl
    ours = a1111_prompt_embeds(pipe, arch, "a red cat on a mat", negative, 0, {})
    with torch.inference_mode():
        theirs = pipe.encode_prompt("a red cat on a mat", device="cpu", num_images_per_prompt=1,
                                    do_classifier_free_guidance=True, negative_prompt=negative or None)
    assert torch.equal(ours["prompt_embeds"], theirs[0]) and torch.equal(ours["negative_prompt_embeds"], theirs[1])
    if arch == "sdxl":
        assert torch.equal(ours["pooled_prompt_embeds"], theirs[2])


def test_a_stronger_weight_moves_the_conditioning_further(pipes):
    def cond(prompt):
        return a1111_prompt_embeds(pipes.sd1, "sd", prompt, "", 0, {})["prompt_embeds"]

    plain = cond("a red cat")
    little, much = _distance(cond("a (red:1.1) cat"), plain), _distance(cond("a (red:1.5) cat"), plain)
    assert 0 < little < much
    assert _distance(cond("a [red] cat"), plain) > 0


def test_a_150_token_prompt_is_not_truncated(pipes):
    words = " ".join(["red", "cat", "blue", "sky"] * 37) + " tail"
    chunks = chunk_prompt(pipes.sd1.tokenizer, words)
    assert len(chunks) == 2 and all(len(c.tokens) == 77 for c in chunks)
    long = a1111_prompt_embeds(pipes.sd1, "sd", words, "", 0, {})
    assert long["prompt_embeds"].shape[1] == 154
    assert long["negative_prompt_embeds"].shape == long["prompt_embeds"].shape  # padded with empty chunks
    changed = a1111_prompt_embeds(pipes.sd1, "sd", words[: -len("tail")] + "moon", "", 0, {})
    assert _distance(changed["prompt_embeds"][:, 77:], long["prompt_embeds"][:, 77:]) > 0  # its end is read


def test_break_closes_a_chunk(pipes):
    assert len(chunk_prompt(pipes.sd1.tokenizer, "a cat BREAK a dog")) == 2
    assert len(chunk_prompt(pipes.sd1.tokenizer, "a cat, a dog")) == 1


def test_commas_move_the_last_words_to_the_next_chunk(pipes):
    words = ["cat"] * 70 + [","] + ["dog"] * 10  # the chunk fills 4 tokens after the comma
    chunks = chunk_prompt(pipes.sd1.tokenizer, " ".join(words))
    dog = pipes.sd1.tokenizer("dog", add_special_tokens=False)["input_ids"][0]
    assert dog not in chunks[0].tokens and chunks[1].tokens[1:11].count(dog) == 10


# --- embeddings ----------------------------------------------------------------------------------------------------


@pytest.fixture
def sd1_bundle(pipes, tmp_path):
    folder = tmp_path / "models" / "tiny-sd1"
    pipes.sd1.save_pretrained(folder, safe_serialization=True)
    set_added_folders([tmp_path / "models"])
    forget_listing()
    return load_image_pipeline(resolve(str(folder)), cpu_device())


def test_an_embeddings_vectors_are_used_in_prompt_and_negative(sd1_bundle, tmp_path):
    import torch

    from studio.engine.image.prompt_plan import plan_prompt

    embeddings = tmp_path / "models" / "embeddings"
    save_embedding(embeddings / "wizardstyle.safetensors", width=CLIP_L, count=3, seed=1)
    forget_listing()
    recipe = Recipe("image", prompt="a wizardstyle cat", negative_prompt="wizardstyle", seed=1,
                    params={"steps": 2, "width": 64, "height": 64})
    plan = plan_prompt(sd1_bundle, recipe)
    assert list(plan.embeddings) == ["wizardstyle"]
    used = a1111_prompt_embeds(sd1_bundle.pipe, "sd", plan.prompt, plan.negative, 0, plan.embeddings)
    literal = a1111_prompt_embeds(sd1_bundle.pipe, "sd", plan.prompt, plan.negative, 0, {})
    assert _distance(used["prompt_embeds"], literal["prompt_embeds"]) > 0
    assert _distance(used["negative_prompt_embeds"], literal["negative_prompt_embeds"]) > 0
    # other vectors under the same name: another conditioning (the file's vectors are what is used)
    other = load_embedding(save_embedding(tmp_path / "other" / "wizardstyle.safetensors", width=CLIP_L, count=3, seed=2))
    swapped = a1111_prompt_embeds(sd1_bundle.pipe, "sd", plan.prompt, "", 0, {"wizardstyle": other})
    assert _distance(swapped["prompt_embeds"], used["prompt_embeds"]) > 0
    made = generate_artifacts(sd1_bundle, recipe)[0]
    assert made.recipe.params["embeddings"] == [{"name": "wizardstyle", "hash": plan.embeddings["wizardstyle"].hash}]
    plain = generate_artifacts(sd1_bundle, replace(recipe, prompt="a cat", negative_prompt=""))[0]
    assert not np.array_equal(np.asarray(made.payload), np.asarray(plain.payload))
    assert torch.is_tensor(plan.embeddings["wizardstyle"].vectors[""])


def test_pt_embeddings_load_through_weights_only_and_code_is_refused(tmp_path):
    import pickle

    import torch

    path = tmp_path / "oldstyle.pt"
    torch.save({"string_to_param": {"*": torch.randn(2, CLIP_L)}, "name": "oldstyle", "step": 500}, path)
    assert load_embedding(path).count == 2

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    hostile = tmp_path / "hostile.pt"
    hostile.write_bytes(pickle.dumps({"string_to_param": {"*": Payload()}}))
    with pytest.raises(UserError, match="refused by the safe loader"):
        load_embedding(hostile)


def test_an_sdxl_embedding_gives_each_tower_its_own_vectors(pipes, tmp_path):
    embedding = load_embedding(save_embedding(tmp_path / "xlstyle.safetensors", width=0, count=2,
                                              sdxl_widths=(CLIP_L, CLIP_G)))
    used = a1111_prompt_embeds(pipes.sdxl, "sdxl", "a xlstyle cat", "", 0, {"xlstyle": embedding})
    literal = a1111_prompt_embeds(pipes.sdxl, "sdxl", "a xlstyle cat", "", 0, {})
    for part in (slice(0, CLIP_L), slice(CLIP_L, CLIP_L + CLIP_G)):  # both towers' halves change
        assert _distance(used["prompt_embeds"][..., part], literal["prompt_embeds"][..., part]) > 0


def test_an_embedding_for_another_family_is_a_clear_error(pipes, tmp_path):
    wrong = load_embedding(save_embedding(tmp_path / "wide.safetensors", width=1024, count=1))
    with pytest.raises(UserError, match="made for another model family"):
        a1111_prompt_embeds(pipes.sd1, "sd", "a wide cat", "", 0, {"wide": wrong})
