"""Loading image models: single-file checkpoints, hub ids, refused and broken files, memory plans."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from studio.core.catalog import CorruptModelError, ModelSource, UnsafeModelError, resolve
from studio.core.hub import _download_progress_class
from studio.core.jobs import UserError
from studio.core.model_files import checkpoint_facts
from studio.core.recipe import Recipe
from studio.engine.image.generate import generate_artifacts, generate_images
from studio.engine.image.pipelines import GiB, adapt_memory_to_size, load_image_pipeline, plan_memory
from tests.engine.conftest import cpu_device
from tests.engine.tiny_models import write_ldm_checkpoint

RECIPE = Recipe("image", prompt="a boat", seed=3, params={"steps": 2, "width": 32, "height": 32, "scheduler": "ddim"})


@pytest.fixture(scope="module")
def ldm_checkpoint(tiny_sd_folder, tmp_path_factory):
    return write_ldm_checkpoint(tiny_sd_folder, tmp_path_factory.mktemp("ckpt") / "tiny-sd1.safetensors")


def detect_checkpoint_family(path):
    return checkpoint_facts(path).family


def test_single_file_checkpoint_loads_with_a_local_config(ldm_checkpoint, tiny_sd_folder, tiny_bundle):
    assert detect_checkpoint_family(ldm_checkpoint) == "sd1"
    bundle = load_image_pipeline(resolve(str(ldm_checkpoint)), cpu_device(), config=tiny_sd_folder)
    assert bundle.family == "sd1" and bundle.source.kind == "single_file"
    for name in ("unet", "vae", "text_encoder"):
        ours, theirs = getattr(bundle.pipe, name).state_dict(), getattr(tiny_bundle.pipe, name).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(ours[k].equal(theirs[k]) for k in ours), name
    same = [np.asarray(generate_images(b, RECIPE)[0]) for b in (bundle, tiny_bundle)]
    assert np.array_equal(*same)


def test_single_file_whose_vocabulary_is_not_clips_asks_for_its_tokenizer(ldm_checkpoint, tmp_path):
    # the tiny folder's text encoder has a character vocabulary: the CLIP tokenizer that ships does not fit it
    started = time.perf_counter()
    with pytest.raises(UserError, match="vocabulary of .* tokens, not CLIP's 49,408"):
        load_image_pipeline(resolve(str(ldm_checkpoint)), cpu_device(), hub_cache=tmp_path)
    assert time.perf_counter() - started < 5  # offline: no network wait


def test_download_progress_reaches_the_report():
    events = []
    bar = _download_progress_class(events.append)(total=4 * GiB, unit="B")
    bar.update(GiB)
    bar.close()
    assert (events[-1].step, events[-1].total) == (GiB, 4 * GiB) and "1.0 GB of 4.0 GB" in events[-1].message


def test_family_detection_from_header_only(tmp_path):
    import torch
    from safetensors.torch import save_file

    conv_in = "model.diffusion_model.input_blocks.0.0.weight"
    xl_key = "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias"
    save_file({conv_in: torch.zeros(8, 4, 1, 1), xl_key: torch.zeros(2)}, str(tmp_path / "xl.safetensors"))
    save_file({conv_in: torch.zeros(8, 9, 1, 1)}, str(tmp_path / "inpaint.safetensors"))
    sd2_key = "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"
    save_file({conv_in: torch.zeros(8, 4, 1, 1), sd2_key: torch.zeros(2, 1024)}, str(tmp_path / "sd2.safetensors"))
    save_file({"lora_unet_down.weight": torch.zeros(2)}, str(tmp_path / "lora.safetensors"))
    assert detect_checkpoint_family(tmp_path / "xl.safetensors") == "sdxl"
    assert detect_checkpoint_family(tmp_path / "inpaint.safetensors") == "sd1_inpaint"
    assert detect_checkpoint_family(tmp_path / "sd2.safetensors") == "sd2"
    with pytest.raises(UserError, match="is a LoRA, not a model on its own"):
        detect_checkpoint_family(tmp_path / "lora.safetensors")


def test_pickle_named_safetensors_is_refused(tmp_path):
    import torch

    fake = tmp_path / "model.safetensors"
    torch.save({"weight": torch.zeros(2)}, fake)
    with pytest.raises(UnsafeModelError, match="pickle"):
        resolve(str(fake))
    with pytest.raises(UnsafeModelError):
        load_image_pipeline(ModelSource("single_file", fake, str(fake), "model"), cpu_device())


def test_folder_with_only_pickle_weights_is_refused(tiny_sd_folder, tmp_path):
    import torch

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_sd_folder, folder)
    for weights in folder.rglob("*.safetensors"):
        torch.save({"w": torch.zeros(1)}, weights.with_suffix(".bin"))
        weights.unlink()
    with pytest.raises(UnsafeModelError, match="pickle"):
        load_image_pipeline(resolve(str(folder)), cpu_device())


def test_truncated_checkpoint_gives_a_clear_error_quickly(ldm_checkpoint, tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(ldm_checkpoint.read_bytes()[: ldm_checkpoint.stat().st_size // 2])
    started = time.perf_counter()
    with pytest.raises(CorruptModelError, match="broken.safetensors") as error:
        load_image_pipeline(ModelSource("single_file", broken, str(broken), "broken"), cpu_device(), config=tmp_path)
    assert "truncated" in str(error.value)
    assert time.perf_counter() - started < 1


def test_truncated_weights_in_a_folder_name_the_file(tiny_sd_folder, tmp_path):
    folder = tmp_path / "cut"
    shutil.copytree(tiny_sd_folder, folder)
    unet = folder / "unet" / "diffusion_pytorch_model.safetensors"
    unet.write_bytes(unet.read_bytes()[:1000])
    with pytest.raises(CorruptModelError, match="diffusion_pytorch_model.safetensors"):
        load_image_pipeline(resolve(str(folder)), cpu_device())


def _fake_hub_cache(cache, repo_id: str, folder):
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return repo


def test_hub_id_loads_from_the_local_cache(tiny_sd_folder, tmp_path, tiny_bundle):
    _fake_hub_cache(tmp_path, "someone/tiny-sd", tiny_sd_folder)
    source = resolve("someone/tiny-sd")
    assert source.kind == "hub"
    bundle = load_image_pipeline(source, cpu_device(), hub_cache=tmp_path)
    assert bundle.model_hash == tiny_bundle.model_hash  # same weights, same hash
    assert np.array_equal(*[np.asarray(generate_images(b, RECIPE)[0]) for b in (bundle, tiny_bundle)])


def test_hub_id_missing_offline_is_a_user_error(tmp_path):
    started = time.perf_counter()
    with pytest.raises(UserError, match="HF_HUB_OFFLINE"):
        load_image_pipeline(resolve("someone/not-here"), cpu_device(), hub_cache=tmp_path)
    assert time.perf_counter() - started < 5


def test_inpaint_only_model_draws_from_nothing(tmp_path, one_torch_thread):
    from tests.engine.tiny_models import build_tiny_inpaint_sd_folder

    folder = build_tiny_inpaint_sd_folder(tmp_path / "tiny-inpaint")
    bundle = load_image_pipeline(resolve(str(folder)), cpu_device())
    assert bundle.inpaint_only and bundle.family == "sd1_inpaint"
    first, again = (np.asarray(generate_images(bundle, RECIPE)[0]) for _ in range(2))
    assert first.shape == (32, 32, 3) and np.array_equal(first, again)


# --- memory plan (fake numbers: no GPU needed) ------------------------------------------------

SD15_FP16 = int(2.0 * GiB)
SD15_UNET_FP16 = int(1.6 * GiB)


def test_memory_plan_roomy_gpu_takes_no_fallback():
    plan = plan_memory(SD15_FP16, SD15_UNET_FP16, "cuda", free_bytes=12 * GiB)
    assert plan.offload is None and not plan.attention_slicing and plan.reasons == ()


def test_memory_plan_tight_gpu_slices():
    plan = plan_memory(SD15_FP16, SD15_UNET_FP16, "cuda", free_bytes=int(3.2 * GiB))
    assert plan.attention_slicing and plan.vae_tiling and plan.offload is None
    assert "3.2 GB free" in plan.reasons[0]


def test_memory_plan_small_gpu_offloads_the_model():
    plan = plan_memory(SD15_FP16, SD15_UNET_FP16, "cuda", free_bytes=int(2.8 * GiB))
    assert plan.offload == "model" and "offload" in plan.reasons[0]


def test_memory_plan_tiny_gpu_streams_layers():
    plan = plan_memory(SD15_FP16, SD15_UNET_FP16, "cuda", free_bytes=1 * GiB)
    assert plan.offload == "sequential" and "much slower" in plan.reasons[0]


def test_memory_plan_grows_with_image_size():
    small = plan_memory(SD15_FP16, SD15_UNET_FP16, "cuda", free_bytes=4 * GiB, width=512, height=512)
    large = plan_memory(SD15_FP16, SD15_UNET_FP16, "cuda", free_bytes=4 * GiB, width=1024, height=1024)
    assert small.offload is None and not small.vae_tiling
    assert large.vae_tiling


def test_memory_plan_cpu_and_mps():
    assert plan_memory(SD15_FP16, SD15_UNET_FP16, "cpu", None, 16 * GiB, dtype="float32") == plan_memory(
        0, 0, "cpu", None
    )
    assert plan_memory(SD15_FP16, SD15_UNET_FP16, "mps", None, 16 * GiB).attention_slicing
    assert not plan_memory(SD15_FP16, SD15_UNET_FP16, "mps", None, 96 * GiB).attention_slicing
    assert "swapping" in plan_memory(SD15_FP16 * 2, SD15_UNET_FP16, "cpu", None, 4 * GiB, dtype="float32").reasons[0]


def test_sdxl_folder_runs_every_mode(tmp_path, one_torch_thread):
    from PIL import Image

    from tests.engine.tiny_models import build_tiny_sdxl_folder

    bundle = load_image_pipeline(resolve(str(build_tiny_sdxl_folder(tmp_path / "tiny-sdxl"))), cpu_device())
    assert bundle.family == "sdxl"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "init.png")
    Image.new("L", (32, 32), 255).save(tmp_path / "mask.png")
    modes = {
        "txt2img": {"clip_skip": 2, "variation_seed": 3, "variation_strength": 0.3},
        "img2img": {"init_image": str(tmp_path / "init.png"), "strength": 0.5},
        "inpaint": {"init_image": str(tmp_path / "init.png"), "mask_image": str(tmp_path / "mask.png")},
    }
    for mode, params in modes.items():
        art = generate_artifacts(bundle, RECIPE.with_params(**params))[0]
        assert art.recipe.params["mode"] == mode and art.payload.size == (32, 32)
        assert np.array_equal(np.asarray(art.payload), np.asarray(generate_images(bundle, art.recipe)[0]))
        assert "XL" in type(bundle.pipeline_for(mode)).__name__
    # Variety anneals SDXL's pooled embedding with the prompt's: it varies the picture, and its recipe remakes it
    plain = np.asarray(generate_artifacts(bundle, RECIPE)[0].payload)
    varied = generate_artifacts(bundle, RECIPE.with_params(variety=0.5))[0]
    assert varied.recipe.params["variety"] == 0.5 and not np.array_equal(plain, np.asarray(varied.payload))
    assert np.array_equal(np.asarray(varied.payload), np.asarray(generate_images(bundle, varied.recipe)[0]))


def test_a_large_image_switches_on_tiling_for_the_loaded_model(tiny_sd_folder, tmp_path, monkeypatch):
    from dataclasses import replace

    monkeypatch.setenv("LATENT_STUDIO_CACHE", str(tmp_path))
    bundle = load_image_pipeline(resolve(str(tiny_sd_folder)), cpu_device())
    assert adapt_memory_to_size(bundle, 1024, 1024, free_bytes=2 * GiB) == []  # CPU: nothing to do
    bundle = replace(bundle, device="cuda", fallbacks=[])  # what a GPU bundle would hold; the calls work on CPU too
    assert adapt_memory_to_size(bundle, 512, 512, free_bytes=8 * GiB) == []
    (sentence,) = adapt_memory_to_size(bundle, 2048, 2048, free_bytes=8 * GiB)
    assert "VAE tiling" in sentence and "2048x2048" in sentence and bundle.fallbacks == [sentence]
    assert bundle.memory.vae_tiling and bundle.pipe.vae.use_tiling
    assert adapt_memory_to_size(bundle, 2048, 2048, free_bytes=8 * GiB) == []  # once is enough
