"""LoRAs: they change the picture, leave no trace when removed, combine with weights, read the same from kohya and
PEFT files, are fused once while unchanged, and round-trip through an A1111 PNG with `Lora hashes`."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from PIL.PngImagePlugin import PngInfo

from studio.core.catalog import resolve
from studio.core.jobs import UserError
from studio.core.model_folders import forget_listing, set_added_folders
from studio.core.recipe import Recipe, a1111_parameters, parse_a1111_parameters
from studio.engine.image.generate import generate_artifacts
from studio.engine.image.lora import LoraSpec, apply_loras, lora_hash
from studio.engine.image.pipelines import load_image_pipeline
from studio.library.export import read_image_parameters
from tests.engine.conftest import cpu_device
from tests.engine.tiny_adapters import make_lora, save, save_peft_folder, to_kohya
from tests.engine.tiny_families import build_pipeline

RECIPE = Recipe("image", prompt="a red cat", seed=7, params={"steps": 2, "width": 64, "height": 64})


def with_prompt(recipe: Recipe, prompt: str) -> Recipe:
    return replace(recipe, prompt=prompt)


LAYER = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"


@pytest.fixture(scope="module")
def sd1(tmp_path_factory, one_torch_thread):
    root = tmp_path_factory.mktemp("lora-models")
    pipe = build_pipeline("sd1", root / "_scratch")
    folder = root / "models" / "tiny-sd1"
    pipe.save_pretrained(folder, safe_serialization=True)
    loras = root / "models" / "Lora"
    style, ink = make_lora(pipe, seed=1, strength=2.0), make_lora(pipe, seed=2, strength=2.0)
    save(style, loras / "style.safetensors")
    save(ink, loras / "ink.safetensors")
    save(to_kohya(style, alpha=4.0, rank=4), loras / "style-kohya.safetensors")
    return SimpleNamespace(root=root / "models", folder=folder, style=style, ink=ink)


@pytest.fixture
def bundle(sd1):
    set_added_folders([sd1.root])
    forget_listing()
    return load_image_pipeline(resolve(str(sd1.folder)), cpu_device())


def picture(bundle, prompt: str) -> np.ndarray:
    return np.asarray(generate_artifacts(bundle, with_prompt(RECIPE, prompt))[0].payload)


def test_a_lora_changes_the_picture_and_removing_it_gives_back_the_base_exactly(bundle):
    base = picture(bundle, "a red cat")
    styled = picture(bundle, "a red cat <lora:style:1>")
    assert np.abs(styled.astype(int) - base).mean() > 1
    assert np.array_equal(picture(bundle, "a red cat"), base)  # bit for bit: the base weights were put back


def _delta(lora: dict, layer: str):
    up, down = lora[f"unet.{layer}.lora_B.weight"], lora[f"unet.{layer}.lora_A.weight"]
    return up @ down  # alpha = rank: scale 1


def test_two_loras_combine_with_their_weights(bundle, sd1):
    import torch

    base = bundle.pipe.unet.get_submodule(LAYER).weight.detach().clone()
    both = picture(bundle, "a red cat <lora:style:0.5> <lora:ink:0.7>")
    fused = bundle.pipe.unet.get_submodule(LAYER).weight.detach()
    expected = base + 0.5 * _delta(sd1.style, LAYER) + 0.7 * _delta(sd1.ink, LAYER)
    assert torch.allclose(fused, expected, atol=1e-5)
    for single in ("a red cat <lora:style:0.5>", "a red cat <lora:ink:0.7>"):
        assert not np.array_equal(picture(bundle, single), both)


def test_kohya_and_peft_files_of_the_same_weights_give_the_same_picture(bundle):
    peft = picture(bundle, "a red cat <lora:style:0.8>")
    kohya = picture(bundle, "a red cat <lora:style-kohya:0.8>")
    assert np.abs(peft.astype(int) - kohya).max() <= 1


def test_unchanged_loras_are_fused_once_across_jobs(bundle):
    picture(bundle, "a red cat <lora:style:0.8>")
    picture(bundle, "a blue cat <lora:style:0.8>")
    assert bundle.lora.loads == 1
    picture(bundle, "a blue cat <lora:style:0.6>")
    assert bundle.lora.loads == 2  # a new weight is a new fusion


def test_a1111_png_with_lora_and_lora_hashes_round_trips(bundle, sd1, tmp_path):
    made = generate_artifacts(bundle, with_prompt(RECIPE, "<lora:style:0.8> a red cat"))[0]
    digest = lora_hash(sd1.root / "Lora" / "style.safetensors")
    assert made.recipe.params["loras"] == [{"name": "style", "weight": 0.8, "hash": digest}]
    text = a1111_parameters(made.recipe)
    assert f"Lora hashes: \"style: {digest}\"" in text
    png = tmp_path / "a1111.png"  # as A1111 writes it: the `parameters` text alone, no recipe of ours
    info = PngInfo()
    info.add_text("parameters", text)
    made.payload.save(png, pnginfo=info)
    parsed = read_image_parameters(png).recipe
    assert parsed.prompt == "<lora:style:0.8> a red cat" and parsed.params["lora_hashes"] == {"style": digest}
    again = generate_artifacts(bundle, parsed.with_params(width=64, height=64))[0]
    assert np.array_equal(np.asarray(again.payload), np.asarray(made.payload))


def test_a_renamed_lora_is_found_by_its_recorded_hash(bundle, sd1, tmp_path):
    made = generate_artifacts(bundle, with_prompt(RECIPE, "a red cat <lora:style:1>"))[0]
    parsed = parse_a1111_parameters(a1111_parameters(made.recipe)).recipe
    moved = tmp_path / "elsewhere"
    save(sd1.style, moved / "renamed.safetensors")
    set_added_folders([moved])
    forget_listing()
    again = generate_artifacts(bundle, parsed)[0]
    assert np.array_equal(np.asarray(again.payload), np.asarray(made.payload))
    assert any("renamed.safetensors" in note for note in again.info["notes"])


def test_an_unknown_lora_is_a_clear_error(bundle):
    with pytest.raises(UserError, match="'nowhere'.*not in your model folders"):
        picture(bundle, "a red cat <lora:nowhere:1>")


def test_the_built_in_model_takes_a_peft_lora_as_file_or_folder(tmp_path):
    """What 'train on your own folder' (issue 20) will save for the emoji model: both layouts load from the app's
    own LoRA folder by name, and the low-level call does the same."""
    from studio.core.model_folders import own_lora_folder

    bundle = load_image_pipeline(resolve("builtin:emoji-ldm"), cpu_device())
    lora = make_lora(bundle.pipe, seed=4, rank=4, alpha=8.0, strength=2.0, text_encoder=False)
    save(lora, own_lora_folder() / "emoji-style.safetensors")
    folder = save_peft_folder(lora, own_lora_folder() / "emoji-style-peft", rank=4, alpha=8.0)
    forget_listing()
    recipe = Recipe("image", prompt="red heart", seed=3, params={"steps": 4})
    base = np.asarray(generate_artifacts(bundle, recipe)[0].payload)
    as_file, as_folder = (np.asarray(generate_artifacts(bundle, with_prompt(recipe, f"red heart <lora:{name}:1>"))[0].payload)
                          for name in ("emoji-style", "emoji-style-peft"))
    assert np.abs(as_file.astype(int) - base).mean() > 1
    assert np.abs(as_file.astype(int) - as_folder).max() <= 1  # alpha/rank read from the folder's config
    assert np.array_equal(np.asarray(generate_artifacts(bundle, recipe)[0].payload), base)
    assert apply_loras(bundle, [LoraSpec.from_file(folder, 1.0)]) and bundle.lora.names == ("lora0",)
