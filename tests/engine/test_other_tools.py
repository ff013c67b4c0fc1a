"""Other tools' files (issue 15, items 14-21): NovelAI, ComfyUI, InvokeAI, Fooocus and A1111 metadata read as a
recipe, sampler names through one alias table, 64-bit seeds kept whole, and A1111 text written as A1111 writes it.

The fixtures are written the way each tool writes its PNGs (tEXt chunks named and laid out as in the tools'
own writers): NovelAI (Title/Description/Software/Source/Comment), ComfyUI (`prompt` API graph + `workflow`),
InvokeAI 3.x/4.x (`invokeai_metadata`) and 2.x (`sd-metadata`).
"""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from studio.core.recipe import (
    SEED_LIMIT,
    Recipe,
    RecipeError,
    a1111_parameters,
    map_sampler,
    parse_a1111_parameters,
    parse_seed,
)
from studio.library.export import read_image_parameters

BIG_SEED = 6952411511246973023  # > 2**53: a float keeps ...2928


def png_with(tmp_path, name, chunks):
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    path = tmp_path / name
    Image.new("RGB", (8, 8), "white").save(path, pnginfo=info)
    return path


# --- 14: NovelAI -----------------------------------------------------------------------------------------------

NOVELAI_COMMENT = {
    "prompt": "1girl, solo, masterpiece, best quality, cherry blossoms",
    "steps": 28, "height": 1216, "width": 832, "scale": 5.5, "uncond_scale": 1.0, "cfg_rescale": 0.0,
    "seed": 3054123873, "n_samples": 1, "hide_debug_overlay": False, "noise_schedule": "native",
    "legacy_v3_extend": False, "reference_information_extracted_multiple": [], "reference_strength_multiple": [],
    "sampler": "k_euler_ancestral", "controlnet_strength": 1.0, "controlnet_model": None,
    "dynamic_thresholding": False, "dynamic_thresholding_percentile": 0.999, "dynamic_thresholding_mimic_scale": 10.0,
    "sm": False, "sm_dyn": False, "skip_cfg_below_sigma": 0.0, "lora_unet_weights": None, "lora_clip_weights": None,
    "strength": 0.7, "noise": 0.2, "uc": "lowres, bad anatomy, bad hands, worst quality",
    "request_type": "Img2ImgRequest", "signed_hash": "d2FzIGhlcmU=",
}


def novelai_png(tmp_path, comment=None, name="nai.png"):
    comment = NOVELAI_COMMENT if comment is None else comment
    return png_with(tmp_path, name, {
        "Title": "AI generated image",
        "Description": comment.get("prompt", "1girl, from the description chunk"),
        "Software": "NovelAI",
        "Source": "Stable Diffusion XL C1E1DE52",
        "Generation time": "5.3",
        "Comment": json.dumps(comment),
    })


def test_a_novelai_png_is_read_as_novelai_not_as_fooocus(tmp_path):
    parsed = read_image_parameters(novelai_png(tmp_path))
    recipe = parsed.recipe
    assert parsed.source == "NovelAI"
    assert recipe.prompt == NOVELAI_COMMENT["prompt"]
    assert recipe.negative_prompt == NOVELAI_COMMENT["uc"]
    assert recipe.params["guidance"] == 5.5 and recipe.params["steps"] == 28
    assert recipe.params["scheduler"] == "euler_a"
    assert recipe.params["strength"] == 0.7
    assert (recipe.params["width"], recipe.params["height"]) == (832, 1216)
    assert recipe.seed == 3054123873
    assert recipe.model == "", "NovelAI's model is not here: the user's model is kept"
    assert parsed.unknown["noise"] == "0.2" and "Stable Diffusion XL" in parsed.unknown["Source"]


def test_a_novelai_comment_without_a_prompt_uses_the_description_or_says_so(tmp_path):
    v4 = {k: v for k, v in NOVELAI_COMMENT.items() if k != "prompt"}
    v4["v4_prompt"] = {"caption": {"base_caption": "a fox in snow", "char_captions": []}, "use_coords": False}
    parsed = read_image_parameters(novelai_png(tmp_path, v4, "v4.png"))
    assert parsed.recipe.prompt == "a fox in snow"
    bare = {k: v for k, v in NOVELAI_COMMENT.items() if k != "prompt"}
    path = png_with(tmp_path, "bare.png", {"Software": "NovelAI", "Comment": json.dumps(bare)})
    parsed = read_image_parameters(path)
    assert parsed.recipe.prompt == ""
    assert any("prompt box is left as it was" in note for note in parsed.notes)


# --- 15: a JSON object we don't know ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ['{"foo": 1}', '{"prompt": "x", "cfg": 3}', "{}"])
def test_an_unknown_json_layout_is_a_clear_error_not_an_empty_recipe(text, tmp_path):
    with pytest.raises(RecipeError, match="JSON layout this app does not know"):
        parse_a1111_parameters(text)
    path = png_with(tmp_path, "odd.png", {"parameters": text})
    with pytest.raises(RecipeError, match="does not know"):
        read_image_parameters(path)


# --- 16: 64-bit seeds ---------------------------------------------------------------------------------------------


def test_parse_seed_keeps_every_digit_and_refuses_what_is_no_seed():
    assert parse_seed(str(BIG_SEED)) == BIG_SEED and parse_seed(BIG_SEED) == BIG_SEED
    assert parse_seed("4.0") == 4 and parse_seed(str(SEED_LIMIT)) == SEED_LIMIT
    for bad in ("4.5", "-1", str(SEED_LIMIT + 1), "nan", "inf", "x", True):
        with pytest.raises(ValueError):
            parse_seed(bad)


def test_a_64_bit_seed_round_trips_through_a1111_text_fooocus_json_and_our_recipe():
    text = f"cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: {BIG_SEED}, Size: 512x512"
    recipe = parse_a1111_parameters(text).recipe
    assert recipe.seed == BIG_SEED
    assert parse_a1111_parameters(a1111_parameters(recipe)).recipe.seed == BIG_SEED
    assert Recipe.from_json(recipe.to_json()).seed == BIG_SEED
    fooocus = {"prompt": "cat", "seed": str(BIG_SEED), "base_model": "x.safetensors", "guidance_scale": 4}
    assert parse_a1111_parameters(json.dumps(fooocus)).recipe.seed == BIG_SEED
    top = parse_a1111_parameters(text.replace(str(BIG_SEED), str(SEED_LIMIT))).recipe
    assert top.seed == SEED_LIMIT
    variation = parse_a1111_parameters(text + f", Variation seed: {BIG_SEED}, Variation seed strength: 0.1")
    assert variation.recipe.params["variation_seed"] == BIG_SEED


def test_the_cpu_generator_takes_every_64_bit_seed():
    """torch.Generator.manual_seed takes -2**63 .. 2**64 - 1 (2**64 raises); the CPU Mersenne Twister seeds from
    the low 32 bits, so seeds >= 2**32 give the noise of seed % 2**32 (A1111's CPU noise does the same)."""
    from studio.engine.image.generate import seed_noise

    for seed in (BIG_SEED, 2**63, SEED_LIMIT):
        noise = seed_noise(seed, (1, 4, 2, 2))
        assert noise.shape == (1, 4, 2, 2)
    assert seed_noise(BIG_SEED, (4,)).tolist() == seed_noise(BIG_SEED % 2**32, (4,)).tolist()


# --- 17 + 18: schedules and the sampler alias table ---------------------------------------------------------------


@pytest.mark.parametrize("sampler, schedule, ours, noted", [
    ("k_euler_ancestral", None, "euler_a", False),  # NovelAI
    ("k_euler", "native", "euler", False),
    ("k_dpmpp_2m", "karras", "dpmpp_2m_karras", False),
    ("dpmpp_2m", "karras", "dpmpp_2m_karras", False),  # ComfyUI / Fooocus pair
    ("dpmpp_2m_sde_gpu", "karras", "dpmpp_2m_karras", True),  # Fooocus' default: nearest we have
    ("euler_ancestral", "normal", "euler_a", False),
    ("uni_pc_bh2", "normal", "unipc", False),
    ("DPM++ 2M Karras", None, "dpmpp_2m_karras", False),  # A1111 before 1.9
    ("DPM++ 2M", "Karras", "dpmpp_2m_karras", False),
    ("DPM++ 2M", "Automatic", "dpmpp_2m", False),
    ("Euler a", None, "euler_a", False),
    ("PLMS", None, "pndm", False),
    ("dpmpp_2m_k", None, "dpmpp_2m_karras", False),  # InvokeAI
    ("lms_k", None, "lms", True),  # no Karras LMS here: the schedule is kept and said
    ("k_lms", None, "lms", False),
    ("DPM++ SDE", "Karras", "dpmpp_2m_karras", True),
    ("ddim_v3", None, "ddim", False),
    ("frobnicate", None, "euler_a", True),
])
def test_other_tools_sampler_names_map_to_ours(sampler, schedule, ours, noted):
    from studio.engine.image.schedulers import SCHEDULERS

    choice = map_sampler(sampler, schedule)
    assert choice.scheduler == ours and ours in SCHEDULERS
    assert bool(choice.notes) == noted, choice.notes


def test_every_alias_names_a_scheduler_we_have():
    from studio.core.recipe import NEAREST_SAMPLER, SAMPLER_ALIASES
    from studio.engine.image.schedulers import SCHEDULERS

    assert set(SAMPLER_ALIASES.values()) | set(NEAREST_SAMPLER.values()) <= set(SCHEDULERS)


def test_an_unknown_sampler_says_what_was_chosen_instead():
    parsed = parse_a1111_parameters("x\nSteps: 20, Sampler: Restart Plus, CFG scale: 7, Seed: 1, Size: 64x64")
    assert parsed.recipe.params["scheduler"] == "euler_a"
    assert any("Restart Plus" in note and "Euler a" in note for note in parsed.notes)


@pytest.mark.parametrize("schedule", ["Exponential", "SGM Uniform", "Polyexponential", "Align Your Steps"])
def test_an_unsupported_schedule_type_is_kept_shown_and_written_back(schedule):
    text = f"x\nSteps: 20, Sampler: DPM++ 2M, Schedule type: {schedule}, CFG scale: 7, Seed: 1, Size: 64x64"
    parsed = parse_a1111_parameters(text)
    assert parsed.recipe.params["scheduler"] == "dpmpp_2m"
    assert parsed.unknown["Schedule type"] == schedule
    assert any(schedule in note for note in parsed.notes)
    written = a1111_parameters(parsed.recipe, extra=parsed.unknown)
    assert f"Schedule type: {schedule}" in written
    assert parse_a1111_parameters(written).unknown["Schedule type"] == schedule


def test_fooocus_karras_schedule_is_mapped_or_kept():
    base = {"prompt": "a", "base_model": "m.safetensors", "guidance_scale": 4, "seed": "1"}
    karras = parse_a1111_parameters(json.dumps({**base, "sampler": "dpmpp_2m", "scheduler": "karras"}))
    assert karras.recipe.params["scheduler"] == "dpmpp_2m_karras"
    kept = parse_a1111_parameters(json.dumps({**base, "sampler": "euler", "scheduler": "karras"}))
    assert kept.recipe.params["scheduler"] == "euler" and kept.unknown["scheduler"] == "karras"
    assert "Schedule type: karras" in a1111_parameters(kept.recipe, extra={"Schedule type": kept.unknown["scheduler"]})


# --- 19: Fooocus hash and clip skip; unquoted Hashes ----------------------------------------------------------------


def test_fooocus_base_model_hash_and_clip_skip_are_mapped():
    fooocus = {
        "adm_guidance": "(1.5, 0.8, 0.3)", "base_model": "juggernautXL_v8Rundiffusion", "base_model_hash": "aeb7e9e689",
        "clip_skip": 2, "full_negative_prompt": ["(worst quality)"], "full_prompt": ["a tree"], "guidance_scale": 4,
        "loras": [], "metadata_scheme": "fooocus", "negative_prompt": "", "performance": "Speed", "prompt": "a tree",
        "prompt_expansion": "a tree, magical", "refiner_model": "None", "resolution": "(1152, 896)",
        "sampler": "dpmpp_2m_sde_gpu", "scheduler": "karras", "seed": str(BIG_SEED), "sharpness": 2, "steps": 30,
        "styles": "['Fooocus V2']", "vae": "Default (model)", "version": "Fooocus v2.5.5",
    }
    parsed = parse_a1111_parameters(json.dumps(fooocus))
    assert parsed.source == "Fooocus"
    assert parsed.recipe.model_hash == "aeb7e9e689" and parsed.recipe.params["clip_skip"] == 2
    assert parsed.recipe.seed == BIG_SEED and parsed.recipe.params["scheduler"] == "dpmpp_2m_karras"
    assert "base_model_hash" not in parsed.unknown and "clip_skip" not in parsed.unknown


def test_an_unquoted_hashes_object_is_not_cut_at_its_first_comma():
    text = ('x\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64, '
            'Hashes: {"model": "6ce0161689", "lora:detail": "62b1e0b1"}, Version: f2.0.1')
    parsed = parse_a1111_parameters(text)
    assert json.loads(parsed.unknown["Hashes"]) == {"model": "6ce0161689", "lora:detail": "62b1e0b1"}
    assert parsed.unknown["Version"] == "f2.0.1"


# --- 20: ComfyUI and InvokeAI -------------------------------------------------------------------------------------

# ComfyUI's default graph as its SaveImage node writes it: `prompt` is the API graph, `workflow` the editor's.
COMFY_PROMPT = {
    "3": {"inputs": {"seed": BIG_SEED, "steps": 20, "cfg": 8, "sampler_name": "dpmpp_2m_sde_gpu",
                     "scheduler": "karras", "denoise": 1, "model": ["10", 0], "positive": ["6", 0],
                     "negative": ["7", 0], "latent_image": ["5", 0]}, "class_type": "KSampler",
          "_meta": {"title": "KSampler"}},
    "4": {"inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}, "class_type": "CheckpointLoaderSimple",
          "_meta": {"title": "Load Checkpoint"}},
    "5": {"inputs": {"width": 512, "height": 768, "batch_size": 2}, "class_type": "EmptyLatentImage",
          "_meta": {"title": "Empty Latent Image"}},
    "6": {"inputs": {"text": "beautiful scenery nature glass bottle landscape, purple galaxy bottle,",
                     "clip": ["10", 1]}, "class_type": "CLIPTextEncode", "_meta": {"title": "CLIP Text Encode (Prompt)"}},
    "7": {"inputs": {"text": ["11", 0], "clip": ["10", 1]}, "class_type": "CLIPTextEncode",
          "_meta": {"title": "CLIP Text Encode (Prompt)"}},
    "8": {"inputs": {"samples": ["3", 0], "vae": ["4", 2]}, "class_type": "VAEDecode", "_meta": {"title": "VAE Decode"}},
    "9": {"inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}, "class_type": "SaveImage",
          "_meta": {"title": "Save Image"}},
    "10": {"inputs": {"lora_name": "detail.safetensors", "strength_model": 0.8, "strength_clip": 0.8,
                      "model": ["4", 0], "clip": ["4", 1]}, "class_type": "LoraLoader", "_meta": {"title": "Load LoRA"}},
    "11": {"inputs": {"value": "text, watermark"}, "class_type": "PrimitiveString", "_meta": {"title": "String"}},
}
COMFY_WORKFLOW = {
    "last_node_id": 9, "last_link_id": 9,
    "nodes": [
        {"id": 3, "type": "KSampler", "inputs": [{"name": "model", "type": "MODEL", "link": 1},
                                                {"name": "positive", "type": "CONDITIONING", "link": 4},
                                                {"name": "negative", "type": "CONDITIONING", "link": 6},
                                                {"name": "latent_image", "type": "LATENT", "link": 2}],
         "widgets_values": [BIG_SEED, "randomize", 20, 8, "euler", "normal", 1]},
        {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["v1-5-pruned-emaonly.safetensors"]},
        {"id": 5, "type": "EmptyLatentImage", "widgets_values": [512, 512, 1]},
        {"id": 6, "type": "CLIPTextEncode", "widgets_values": ["a glass bottle"]},
        {"id": 7, "type": "CLIPTextEncode", "widgets_values": ["text, watermark"]},
    ],
    "links": [[1, 4, 0, 3, 0, "MODEL"], [2, 5, 0, 3, 3, "LATENT"], [4, 6, 0, 3, 1, "CONDITIONING"],
              [6, 7, 0, 3, 2, "CONDITIONING"]],
    "version": 0.4,
}


def test_a_comfyui_png_restores_the_sampler_node_and_what_it_is_wired_to(tmp_path):
    path = png_with(tmp_path, "comfy.png", {"prompt": json.dumps(COMFY_PROMPT), "workflow": json.dumps(COMFY_WORKFLOW)})
    parsed = read_image_parameters(path)
    recipe = parsed.recipe
    assert parsed.source == "ComfyUI"
    assert recipe.seed == BIG_SEED
    assert recipe.params["steps"] == 20 and recipe.params["guidance"] == 8
    assert recipe.params["scheduler"] == "dpmpp_2m_karras"
    assert any("dpmpp_2m_sde_gpu" in note for note in parsed.notes)
    assert recipe.prompt.startswith("beautiful scenery") and recipe.negative_prompt == "text, watermark"
    assert (recipe.params["width"], recipe.params["height"], recipe.params["batch_size"]) == (512, 768, 2)
    assert recipe.model == "v1-5-pruned-emaonly.safetensors"  # through the LoRA loader
    assert "strength" not in recipe.params  # denoise 1 is plain text-to-image
    assert any("ComfyUI" in note for note in parsed.notes)
    assert any("LoraLoader" in note for note in parsed.notes), "what was left out is named"


def test_comfyui_ksampler_advanced_noise_seed_and_denoise():
    from studio.library.foreign import read_comfyui

    graph = json.loads(json.dumps(COMFY_PROMPT))
    graph["3"]["inputs"]["denoise"] = 0.55
    parsed = read_comfyui({"prompt": json.dumps(graph)})
    assert parsed.recipe.params["strength"] == 0.55
    inputs = {k: v for k, v in graph["3"]["inputs"].items() if k not in ("seed", "denoise")}
    graph["3"] = {"class_type": "KSamplerAdvanced", "inputs": {**inputs, "add_noise": "enable", "noise_seed": SEED_LIMIT,
                                                              "start_at_step": 0, "end_at_step": 10000,
                                                              "return_with_leftover_noise": "disable"}}
    parsed = read_comfyui({"prompt": json.dumps(graph)})
    assert parsed.recipe.seed == SEED_LIMIT and parsed.recipe.params["steps"] == 20


def test_a_comfyui_png_with_only_the_editor_workflow(tmp_path):
    path = png_with(tmp_path, "wf.png", {"workflow": json.dumps(COMFY_WORKFLOW)})
    parsed = read_image_parameters(path)
    assert parsed.source == "ComfyUI" and parsed.recipe.seed == BIG_SEED
    assert parsed.recipe.prompt == "a glass bottle" and parsed.recipe.negative_prompt == "text, watermark"
    assert parsed.recipe.params["scheduler"] == "euler" and parsed.recipe.params["width"] == 512
    assert parsed.recipe.model == "v1-5-pruned-emaonly.safetensors"


INVOKE_3 = {"app_version": "3.3.0post3", "generation_mode": "txt2img", "positive_prompt": "landscape",
            "negative_prompt": "low quality", "width": 768, "height": 432, "seed": 356120443, "rand_device": "cpu",
            "cfg_scale": 7.5, "steps": 50, "scheduler": "dpmpp_2m_sde_k", "clip_skip": 0,
            "model": {"model_name": "amixx_3Prunedfp16", "base_model": "sd-1", "model_type": "main"},
            "controlnets": [], "ipAdapters": [], "t2iAdapters": [], "loras": [],
            "vae": {"model_name": "sd-vae-ft-mse", "base_model": "sd-1"}}
INVOKE_4 = {"generation_mode": "sdxl_txt2img", "positive_prompt": "a red fox, winter forest", "negative_prompt": "blurry",
            "width": 1024, "height": 1024, "seed": 3478128711, "rand_device": "cpu", "cfg_scale": 6.5,
            "cfg_rescale_multiplier": 0, "steps": 30, "scheduler": "euler_a",
            "model": {"key": "a1b2", "hash": "blake3:0f3c", "name": "Juggernaut XL v9", "base": "sdxl", "type": "main"},
            "positive_style_prompt": "", "negative_style_prompt": "", "app_version": "4.2.4"}
INVOKE_2 = {"model": "stable diffusion", "model_weights": "stable-diffusion-1.5", "model_hash": "cc6cb27103",
            "app_id": "invoke-ai/InvokeAI", "app_version": "2.2.5",
            "image": {"prompt": [{"prompt": "a castle on a cliff [fog, blurry]", "weight": 1.0}], "steps": 30,
                      "cfg_scale": 7.5, "threshold": 0, "perlin": 0, "height": 512, "width": 640, "seed": 1234,
                      "seamless": False, "hires_fix": False, "type": "txt2img", "postprocessing": None,
                      "sampler": "k_lms", "variations": []}}


@pytest.mark.parametrize("chunk, data, expected", [
    ("invokeai_metadata", INVOKE_3, dict(prompt="landscape", negative="low quality", seed=356120443, steps=50,
                                         guidance=7.5, scheduler="dpmpp_2m_karras", size=(768, 432),
                                         model="amixx_3Prunedfp16")),
    ("invokeai_metadata", INVOKE_4, dict(prompt="a red fox, winter forest", negative="blurry", seed=3478128711,
                                         steps=30, guidance=6.5, scheduler="euler_a", size=(1024, 1024),
                                         model="Juggernaut XL v9")),
    ("sd-metadata", INVOKE_2, dict(prompt="a castle on a cliff", negative="fog, blurry", seed=1234, steps=30,
                                   guidance=7.5, scheduler="lms", size=(640, 512), model="stable-diffusion-1.5")),
])
def test_an_invokeai_png_restores_its_settings(tmp_path, chunk, data, expected):
    parsed = read_image_parameters(png_with(tmp_path, "invoke.png", {chunk: json.dumps(data)}))
    recipe = parsed.recipe
    assert parsed.source == "InvokeAI" and any("InvokeAI" in note for note in parsed.notes)
    assert (recipe.prompt, recipe.negative_prompt, recipe.seed) == (expected["prompt"], expected["negative"],
                                                                     expected["seed"])
    assert recipe.params["steps"] == expected["steps"] and recipe.params["guidance"] == expected["guidance"]
    assert recipe.params["scheduler"] == expected["scheduler"]
    assert (recipe.params["width"], recipe.params["height"]) == expected["size"]
    assert recipe.model == expected["model"]


def test_a_png_with_no_settings_still_says_so(tmp_path):
    with pytest.raises(RecipeError, match="holds no generation settings"):
        read_image_parameters(png_with(tmp_path, "plain.png", {"Author": "me"}))


# --- 21: quote as A1111 does ------------------------------------------------------------------------------------


def test_a1111_text_quotes_only_what_a1111_would_and_the_builtin_model_reads_back():
    recipe = Recipe("image", prompt="p", seed=1, model="builtin:emoji-ldm",
                    params=dict(steps=4, scheduler="euler", guidance=3, width=64, height=64))
    text = a1111_parameters(recipe)
    assert "Model: emoji-ldm," in text and '"' not in text.splitlines()[-1]
    assert parse_a1111_parameters(text).recipe.model == "builtin:emoji-ldm"
    other = a1111_parameters(Recipe("image", prompt="p", seed=1, model="C:/models/a, b.safetensors",
                                    params=dict(steps=4)))
    assert 'Model: "C:/models/a, b.safetensors"' in other
    plain = a1111_parameters(Recipe("image", prompt="p", seed=1, model='my "best" model', params=dict(steps=4)))
    assert 'Model: my "best" model,' in plain  # A1111's quote() leaves a value without , : or newline as it is
    assert parse_a1111_parameters(plain).recipe.model == 'my "best" model'


def test_the_builtin_names_recipe_reads_agree_with_the_catalog():
    from studio.core import catalog
    from studio.core.recipe import _builtin_models

    assert _builtin_models() == catalog.builtin_names()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["nai", "comfy", "workflow", "invoke", "sd"]), st.data())
def test_fuzz_damaged_foreign_metadata_gives_a_recipe_or_a_recipe_error(kind, data):
    """Each fixture with one value swapped for any JSON value: a recipe or a RecipeError, nothing else."""
    from studio.library.foreign import read_foreign

    base = {"nai": NOVELAI_COMMENT, "comfy": COMFY_PROMPT, "workflow": COMFY_WORKFLOW, "invoke": INVOKE_4,
            "sd": INVOKE_2}[kind]
    doc = json.loads(json.dumps(base))
    target = doc
    for _ in range(data.draw(st.integers(0, 3))):
        if isinstance(target, dict) and target:
            key = data.draw(st.sampled_from(sorted(target)))
            if isinstance(target[key], (dict, list)) and target[key]:
                target = target[key]
                continue
        break
    if isinstance(target, dict) and target:
        target[data.draw(st.sampled_from(sorted(target)))] = data.draw(json_values)
    elif isinstance(target, list) and target:
        target[data.draw(st.integers(0, len(target) - 1))] = data.draw(json_values)
    chunk = {"nai": "Comment", "comfy": "prompt", "workflow": "workflow", "invoke": "invokeai_metadata",
             "sd": "sd-metadata"}[kind]
    chunks = {chunk: json.dumps(doc)}
    if kind == "nai":
        chunks["Software"] = "NovelAI"
    try:
        parsed = read_foreign(chunks)
    except RecipeError:
        return
    assert parsed is None or isinstance(parsed.recipe, Recipe)


def test_an_unmapped_schedule_from_a_dropped_file_is_written_back_by_what_is_made_from_it(tmp_path, tiny_bundle):
    """Read (kept in the recipe), restored into the panel's values, carried by the engine into the output's recipe,
    and written back into the new PNG's A1111 text."""
    import io

    from studio import media
    from studio.engine.image.generate import generate_artifacts
    from studio.library.export import png_bytes
    from studio.state import PanelState

    dropped = tmp_path / "a1111.png"
    info = PngInfo()
    info.add_text("parameters", "a cat\nSteps: 2, Sampler: DPM++ 2M, Schedule type: Exponential, CFG scale: 7, "
                                "Seed: 3, Size: 64x64, ADetailer model: face_yolov8n.pt, Lora hashes: \"x: abc\"")
    Image.new("RGB", (64, 64)).save(dropped, pnginfo=info)
    recipe = read_image_parameters(dropped).recipe
    assert recipe.params["kept"]["Schedule type"] == "Exponential"
    panel = PanelState("image", media.panel_defaults("image"))
    panel.restore(recipe)
    assert panel.get("kept")["Schedule type"] == "Exponential"
    made = generate_artifacts(tiny_bundle, panel.recipe(seed=3))[0]
    written = Image.open(io.BytesIO(png_bytes(made.payload, made.recipe))).text["parameters"]
    assert "Schedule type: Exponential" in written and "ADetailer model: face_yolov8n.pt" in written
    # a LoRA hash is read as what the file's LoRAs were (to find them), not kept: this picture used no LoRA
    assert "Lora hashes" not in written
