"""Recipe JSON and the AUTOMATIC1111 `parameters` text: round trips, real-world strings, fuzzing."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.core.recipe import Recipe, RecipeError, a1111_parameters, parse_a1111_parameters

# Written after the conventions of A1111 1.x, Forge, Fooocus (A1111 scheme) and Civitai copies.
REAL_WORLD = [
    (
        "masterpiece, best quality, 1girl, (smile:1.2), <lora:detail:0.6>\n"
        "Negative prompt: lowres, bad anatomy, (worst quality:1.4)\n"
        "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234567890, "
        "Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.9.4",
        dict(steps=28, scheduler="dpmpp_2m_karras", guidance=7, width=512, height=768),
        1234567890,
    ),
    (
        "a castle on a hill\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 512x512, Model hash: 81761151",
        dict(steps=20, scheduler="euler_a", guidance=7.5, width=512, height=512),
        42,
    ),
    (  # the old single-field Karras sampler name
        "portrait photo\nNegative prompt: blurry\nSteps: 30, Sampler: DPM++ 2M Karras, CFG scale: 5, Seed: 9, Size: 768x768",
        dict(steps=30, scheduler="dpmpp_2m_karras", guidance=5),
        9,
    ),
    (  # img2img with denoising strength and a variation seed
        "cat\nSteps: 25, Sampler: DDIM, CFG scale: 6, Seed: 5, Size: 512x512, Denoising strength: 0.45, "
        "Variation seed: 77, Variation seed strength: 0.2",
        dict(strength=0.45, variation_seed=77, variation_strength=0.2, scheduler="ddim"),
        5,
    ),
    (  # a JSON-quoted value with commas and colons (A1111 quotes these)
        'sunset\nSteps: 20, Sampler: UniPC, CFG scale: 7, Seed: 3, Size: 512x512, '
        'Lora hashes: "detail: 62b1e0b1, style: 1a2b3c4d", TI hashes: "easynegative: c74b4e810b03"',
        dict(scheduler="unipc"),
        3,
    ),
    (  # Fooocus-style extra keys survive as unknown
        "forest, cinematic\nNegative prompt: \nSteps: 30, Sampler: dpmpp_2m_sde_gpu, CFG scale: 4, Seed: 11, "
        "Size: 1152x896, Sharpness: 2, Performance: Speed, Fooocus V2 Expansion: forest, magical",
        dict(steps=30, guidance=4, width=1152, height=896),
        11,
    ),
    (  # multi-line prompt
        "line one,\nline two,\nline three\nSteps: 10, Sampler: Euler, CFG scale: 3, Seed: 1, Size: 64x64",
        dict(steps=10, scheduler="euler"),
        1,
    ),
    (  # multi-line negative prompt
        "p\nNegative prompt: first\nsecond\nSteps: 10, Sampler: Euler, CFG scale: 3, Seed: 1, Size: 64x64",
        dict(steps=10),
        1,
    ),
    (  # Civitai copy with Clip skip and hires keys
        "dragon\nSteps: 35, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 8, Seed: 100, Size: 512x512, "
        "Clip skip: 2, Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent, Denoising strength: 0.5",
        dict(clip_skip=2, strength=0.5, scheduler="dpmpp_2m_karras"),
        100,
    ),
    (  # LCM model
        "a fox\nSteps: 4, Sampler: LCM, CFG scale: 1, Seed: 8, Size: 512x512",
        dict(steps=4, scheduler="lcm", guidance=1),
        8,
    ),
    (  # Windows line endings
        "boat\r\nNegative prompt: rain\r\nSteps: 12, Sampler: Heun, CFG scale: 2, Seed: 4, Size: 256x256",
        dict(steps=12, scheduler="heun"),
        4,
    ),
    (  # Seed given as a float by some tools
        "x\nSteps: 12, Sampler: PLMS, CFG scale: 2, Seed: 4.0, Size: 256x256",
        dict(scheduler="pndm"),
        4,
    ),
]


@pytest.mark.parametrize("text, expected, seed", REAL_WORLD)
def test_real_world_parameters_parse(text, expected, seed):
    parsed = parse_a1111_parameters(text)
    for key, value in expected.items():
        assert parsed.recipe.params[key] == value, key
    assert parsed.recipe.seed == seed


def test_prompts_negative_and_unknown_keys_are_kept():
    parsed = parse_a1111_parameters(REAL_WORLD[0][0])
    assert parsed.recipe.prompt.startswith("masterpiece") and "<lora:detail:0.6>" in parsed.recipe.prompt
    assert parsed.recipe.negative_prompt == "lowres, bad anatomy, (worst quality:1.4)"
    assert parsed.recipe.model == "v1-5-pruned-emaonly"
    assert parsed.recipe.model_hash == "6ce0161689"
    assert parsed.unknown == {"Version": "v1.9.4"}
    fooocus = parse_a1111_parameters(REAL_WORLD[5][0])
    assert fooocus.unknown["Fooocus V2 Expansion"] == "forest"  # value ran to the next comma
    assert fooocus.unknown["Sharpness"] == "2"
    lora = parse_a1111_parameters(REAL_WORLD[4][0])
    assert lora.recipe.params["lora_hashes"] == {"detail": "62b1e0b1", "style": "1a2b3c4d"}
    assert 'Lora hashes: "detail: 62b1e0b1, style: 1a2b3c4d"' in a1111_parameters(lora.recipe)  # written back


def test_multiline_negative_prompt():
    parsed = parse_a1111_parameters(REAL_WORLD[7][0])
    assert parsed.recipe.prompt == "p"
    assert parsed.recipe.negative_prompt == "first\nsecond"


def test_fewer_than_three_pairs_is_prompt_text():
    parsed = parse_a1111_parameters("a photo of: a cat, Steps: 20")
    assert parsed.recipe.prompt == "a photo of: a cat, Steps: 20"
    assert parsed.recipe.params == {}


def test_fooocus_json_scheme():
    text = '{"prompt": "a tree", "negative_prompt": "", "steps": 30, "guidance_scale": 4.0, "seed": "77", "resolution": "(1024, 1024)", "sampler": "dpmpp_2m", "scheduler": "karras", "base_model": "juggernaut.safetensors", "sharpness": 2}'
    parsed = parse_a1111_parameters(text)
    assert parsed.recipe.prompt == "a tree" and parsed.recipe.seed == 77
    assert parsed.recipe.params["width"] == 1024 and parsed.recipe.params["scheduler"] == "dpmpp_2m_karras"
    assert parsed.recipe.model == "juggernaut.safetensors"
    assert parsed.unknown == {"sharpness": "2"}


def full_recipe(**changes):
    base = dict(
        modality="image",
        prompt='a "quoted", colon: prompt\nsecond line',
        negative_prompt="blurry, dark",
        model="builtin:emoji-ldm",
        model_hash="0123456789",
        seed=4242,
        params=dict(steps=20, guidance=7.5, width=64, height=48, scheduler="dpmpp_2m_karras", strength=0.6,
                    variation_seed=9, variation_strength=0.25, guidance_start=0.3, variety=0.35),
        device="cpu",
        dtype="float32",
        parents=(3, 4),
    )
    base.update(changes)
    return Recipe(**base)


def test_json_round_trip():
    recipe = full_recipe()
    assert Recipe.from_json(recipe.to_json()) == recipe


def test_a1111_write_then_parse_round_trip():
    recipe = full_recipe()
    parsed = parse_a1111_parameters(a1111_parameters(recipe)).recipe
    assert parsed.prompt == recipe.prompt
    assert parsed.negative_prompt == recipe.negative_prompt
    assert parsed.seed == recipe.seed
    assert parsed.model == recipe.model and parsed.model_hash == recipe.model_hash
    for key, value in recipe.params.items():
        assert parsed.params[key] == value, key


@pytest.mark.parametrize("bad", ["", "[]", '{"studio_recipe": 99}', '{"studio_recipe": 1, "modality": "smell"}',
                                 '{"studio_recipe": 1, "modality": "image", "seed": "x"}', "not json"])
def test_bad_recipe_json_is_a_clear_error(bad):
    with pytest.raises(RecipeError):
        Recipe.from_json(bad)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_fuzz_any_text_gives_a_recipe_or_a_recipe_error(text):
    try:
        parsed = parse_a1111_parameters(text)
    except RecipeError:
        return
    assert isinstance(parsed.recipe, Recipe)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=8),
                  st.text(max_size=12)), min_size=0, max_size=6),
    st.text(max_size=40),
)
def test_fuzz_parameter_lines(pairs, prompt):
    line = ", ".join(f"{k}: {v}" for k, v in pairs)
    try:
        parse_a1111_parameters(f"{prompt}\n{line}")
    except RecipeError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60), st.text(max_size=30), st.integers(0, 2**32 - 1), st.integers(1, 150),
       st.floats(0, 30, allow_nan=False).map(lambda g: round(g, 2)))
def test_fuzz_write_parse_round_trip(prompt, negative, seed, steps, guidance):
    prompt = prompt.replace("\r", "")
    negative = negative.replace("\r", "").replace("\n", " ")
    if prompt.strip() != prompt or "Negative prompt:" in prompt or "\n" in prompt:
        prompt = prompt.strip().replace("\n", " ").replace("Negative prompt:", "")
    recipe = Recipe("image", prompt=prompt, negative_prompt=negative.strip(), seed=seed,
                    params=dict(steps=steps, guidance=guidance, width=64, height=64, scheduler="euler"))
    parsed = parse_a1111_parameters(a1111_parameters(recipe)).recipe
    assert parsed.seed == seed and parsed.params["steps"] == steps
    assert float(parsed.params["guidance"]) == guidance


@pytest.mark.parametrize("suffix", [".mid", ".midi", ".wav", ".flac", ".mp4", ".gif", ".png", ".json", ".md"])
def test_a_damaged_file_of_any_kind_gives_a_recipe_error_naming_it(tmp_path, suffix):
    from studio.library.export import recipe_from_file

    damaged = tmp_path / f"damaged{suffix}"
    damaged.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(RecipeError, match="damaged"):
        recipe_from_file(damaged)


def test_a_prompt_starting_with_a_brace_is_a1111_text_not_broken_json():
    parsed = parse_a1111_parameters("{red|blue} car, {\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 7, Size: 512x512")
    assert parsed.recipe.prompt == "{red|blue} car, {"
    assert parsed.recipe.negative_prompt == "blurry" and parsed.recipe.seed == 7
    assert parse_a1111_parameters("{").recipe.prompt == "{"
