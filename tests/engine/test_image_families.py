"""Every image family, as a diffusers folder and as an original-layout single file: detected from its tensors,
loaded with no network and no Hugging Face cache, and drawing a 64-px picture in 2 steps."""

from __future__ import annotations

import shutil
import socket

import numpy as np
import pytest

from studio.core.catalog import resolve
from studio.core.jobs import UserError
from studio.core.model_files import checkpoint_facts, describe_file
from studio.core.recipe import Recipe
from studio.engine.image.generate import generate_artifacts
from studio.engine.image.pipelines import load_image_pipeline
from tests.engine.conftest import cpu_device
from tests.engine.tiny_families import FAMILIES, FLUX_FAMILIES, build_family

RECIPE = Recipe("image", prompt="a red cat", seed=5, params={"steps": 2, "width": 64, "height": 64})


@pytest.fixture(scope="module")
def family_files(tmp_path_factory, one_torch_thread):
    root = tmp_path_factory.mktemp("families")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LATENT_STUDIO_CACHE", str(root / "build-cache"))
        return {family: build_family(family, root / family) for family in FAMILIES}


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Any connection attempt fails the test; the Hugging Face cache is an empty folder."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network use: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))


def _picture(bundle) -> np.ndarray:
    artifact = generate_artifacts(bundle, RECIPE)[0]
    assert artifact.recipe.params["steps"] == 2 and artifact.payload.size == (64, 64)
    return np.asarray(artifact.payload)


@pytest.mark.parametrize("family", FAMILIES)
def test_single_file_is_detected_loads_offline_and_draws_what_its_folder_draws(family, family_files, no_network):
    folder, single = family_files[family]
    facts = describe_file(single)
    assert facts.kind == "checkpoint" and facts.family == family
    from_file = load_image_pipeline(resolve(str(single)), cpu_device())
    from_folder = load_image_pipeline(resolve(str(folder)), cpu_device())
    assert from_file.family == from_folder.family == family
    picture = _picture(from_file)
    assert picture.std() > 0  # a picture, not a flat fill
    assert np.array_equal(picture, _picture(from_folder))  # same weights, same configuration, same picture


def test_flux_file_alone_names_the_parts_it_needs(family_files, tmp_path):
    _, single = family_files["flux_dev"]
    alone = tmp_path / "lonely" / "flux1-dev.safetensors"
    alone.parent.mkdir()
    shutil.copy(single, alone)
    assert checkpoint_facts(alone).missing == ("vae", "clip_l", "t5xxl")
    with pytest.raises(UserError) as error:
        load_image_pipeline(resolve(str(alone)), cpu_device())
    message = str(error.value)
    for part in ("VAE", "CLIP-L text encoder", "T5-XXL text encoder", "T5 tokenizer"):
        assert part in message
    assert "FLUX.1 dev" in message


def test_flux_parts_are_matched_by_shape_not_name(family_files, tmp_path):
    _, single = family_files["flux_schnell"]
    models = single.parent.parent
    renamed = tmp_path / "models"
    shutil.copytree(models, renamed)
    (renamed / "vae" / "ae.safetensors").rename(renamed / "vae" / "x1.safetensors")
    (renamed / "text_encoders" / "clip_l.safetensors").rename(renamed / "text_encoders" / "y2.safetensors")
    bundle = load_image_pipeline(resolve(str(renamed / "diffusion_models" / single.name)), cpu_device())
    assert bundle.family == "flux_schnell" and any("x1.safetensors" in line for line in bundle.fallbacks)


def test_unknown_layout_says_what_was_recognised(tmp_path):
    import torch
    from safetensors.torch import save_file

    odd = tmp_path / "mystery.safetensors"
    save_file({"backbone.stem.conv.weight": torch.zeros(4, 3, 3, 3), "backbone.stage1.0.weight": torch.zeros(4),
               "head.fc.weight": torch.zeros(2, 4)}, str(odd))
    with pytest.raises(UserError) as error:
        load_image_pipeline(resolve(str(odd)), cpu_device())
    message = str(error.value)
    assert "not an image model this app knows" in message and "backbone" in message and "head" in message


@pytest.mark.parametrize("family", FLUX_FAMILIES)
def test_flux_families_differ_only_by_guidance_input(family, family_files):
    facts = checkpoint_facts(family_files[family][1])
    assert facts.parts == ("transformer",) and facts.family == family


@pytest.mark.parametrize("family", ["sd3", "flux_schnell"])
def test_transformer_families_draw_from_a_picture_and_repaint_a_mask(family, family_files, tmp_path):
    from PIL import Image

    bundle = load_image_pipeline(resolve(str(family_files[family][1])), cpu_device())
    Image.new("RGB", (64, 64), (200, 40, 40)).save(tmp_path / "init.png")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    mask.save(tmp_path / "mask.png")
    for mode, params in (("img2img", {"init_image": str(tmp_path / "init.png"), "strength": 0.6}),
                         ("inpaint", {"init_image": str(tmp_path / "init.png"), "mask_image": str(tmp_path / "mask.png"),
                                      "strength": 0.9})):
        artifact = generate_artifacts(bundle, RECIPE.with_params(**params))[0]
        assert artifact.recipe.params["mode"] == mode and artifact.payload.size == (64, 64)
        assert ("Img2Img" if mode == "img2img" else "Inpaint") in type(bundle.pipeline_for(mode)).__name__
        if mode == "inpaint":  # outside the mask the picture is the input's, exactly
            assert np.asarray(artifact.payload)[0, 0].tolist() == [200, 40, 40]
