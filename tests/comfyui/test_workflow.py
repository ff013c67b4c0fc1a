"""Recipes as ComfyUI workflows, without a server: the graph's nodes and values, sampler names there and back, LoRA
tags, batches, the editor's graph, and the text-to-audio graphs."""

from __future__ import annotations

import json

import pytest

from studio.backends.comfyui.info import ServerInfo
from studio.backends.comfyui.ui_graph import check_ui_workflow, ui_workflow
from studio.backends.comfyui.workflow import (
    SAMPLERS,
    Uploads,
    audio_kind,
    audio_plan,
    find_lora,
    image_plan,
    split_loras,
)
from studio.core.jobs import UserError
from studio.core.recipe import Recipe
from studio.library.foreign import read_comfyui
from tests.comfyui.double_nodes import node_definitions

MODELS = {"checkpoints": ["sd15.safetensors", "ace_step_v1_3.5b.safetensors", "stable-audio-open-1.0.safetensors"],
          "loras": ["styles/ink.safetensors", "Detail.safetensors"], "vae": [], "controlnet": [],
          "upscale_models": [], "text_encoders": ["t5_base.safetensors"]}
DEFINITIONS = node_definitions(MODELS, ["start.png"])


def recipe(**params) -> Recipe:
    values = {"width": 96, "height": 64, "steps": 12, "guidance": 6.5, "scheduler": "dpmpp_2m_karras", **params}
    return Recipe("image", prompt=values.pop("prompt", "a red fox"), negative_prompt="blurry",
                  model="sd15.safetensors", seed=values.pop("seed", 42), params=values)


def classes(graph: dict) -> list[str]:
    return [node["class_type"] for node in graph.values()]


def test_text_to_image_graph_carries_every_setting():
    plan = image_plan(recipe(clip_skip=2), MODELS["loras"])
    graph = plan.graph
    sampler = graph[plan.samplers[0]]["inputs"]
    assert (sampler["seed"], sampler["steps"], sampler["cfg"]) == (42, 12, 6.5)
    assert (sampler["sampler_name"], sampler["scheduler"], sampler["denoise"]) == ("dpmpp_2m", "karras", 1.0)
    latent = next(n["inputs"] for n in graph.values() if n["class_type"] == "EmptyLatentImage")
    assert (latent["width"], latent["height"], latent["batch_size"]) == (96, 64, 1)
    skip = next(n["inputs"] for n in graph.values() if n["class_type"] == "CLIPSetLastLayer")
    assert skip["stop_at_clip_layer"] == -2
    texts = sorted(n["inputs"]["text"] for n in graph.values() if n["class_type"] == "CLIPTextEncode")
    assert texts == ["a red fox", "blurry"]
    assert "CLIPSetLastLayer" not in classes(image_plan(recipe(clip_skip=1), []).graph)


def test_guidance_from_a_later_step_is_ours_and_the_recipes_say_it_was_not_run():
    plan = image_plan(recipe(guidance_start=0.3), [])
    assert plan.graph[plan.samplers[0]]["inputs"]["cfg"] == 6.5  # KSampler guides every step
    assert "guidance_start" not in plan.recipes[0].params and plan.notes
    assert not image_plan(recipe(), []).notes


def test_a_batch_is_one_chain_per_picture_with_consecutive_seeds():
    plan = image_plan(recipe(batch_count=3), [])
    seeds = [plan.graph[node]["inputs"]["seed"] for node in plan.samplers]
    assert seeds == [42, 43, 44] and classes(plan.graph).count("SaveImage") == 3
    assert [plan.recipes[i].seed for i in range(3)] == seeds
    assert all(plan.recipes[i].param("batch_count") == 1 for i in range(3))
    assert classes(plan.graph).count("CheckpointLoaderSimple") == 1  # shared: loaded once


@pytest.mark.parametrize("ours", sorted(SAMPLERS))
def test_our_sampler_names_go_to_comfyui_and_come_back(ours):
    graph = image_plan(recipe(scheduler=ours), []).graph
    parsed = read_comfyui({"prompt": json.dumps(graph)})
    assert parsed.recipe.param("scheduler") == ours, parsed.notes
    assert parsed.recipe.seed == 42 and parsed.recipe.param("steps") == 12 and parsed.recipe.model == "sd15.safetensors"


def test_lora_tags_become_loaders_and_leave_the_text():
    assert split_loras("a fox <lora:ink:0.6> in snow <lora:Detail>") == ("a fox in snow", [("ink", 0.6), ("Detail", 1.0)])
    plan = image_plan(recipe(prompt="a fox <lora:ink:0.6>", loras=[{"name": "detail", "weight": -0.5}]), MODELS["loras"])
    loaders = [n["inputs"] for n in plan.graph.values() if n["class_type"] == "LoraLoader"]
    assert [(x["lora_name"], x["strength_model"], x["strength_clip"]) for x in loaders] == [
        ("styles/ink.safetensors", 0.6, 0.6), ("Detail.safetensors", -0.5, -0.5)]
    sampler = plan.graph[plan.samplers[0]]["inputs"]
    last_lora = [k for k, n in plan.graph.items() if n["class_type"] == "LoraLoader"][-1]
    assert sampler["model"] == [last_lora, 0]  # the sampler uses the model with every LoRA applied
    assert find_lora("ink.safetensors", MODELS["loras"]) == "styles/ink.safetensors"
    with pytest.raises(UserError, match="'missing' is not on this server"):
        image_plan(recipe(prompt="<lora:missing:1>"), MODELS["loras"])


def test_img2img_and_inpaint_start_from_the_uploads():
    img2img = image_plan(recipe(mode="img2img", init_image="/home/me/start.png", strength=0.4), [],
                         Uploads(init_image="latent-studio-abc.png"))
    assert "EmptyLatentImage" not in classes(img2img.graph)
    assert img2img.graph[img2img.samplers[0]]["inputs"]["denoise"] == 0.4
    assert "/home/me" not in json.dumps(img2img.graph)  # the server sees the upload's name, not the user's path
    inpaint = image_plan(recipe(mode="inpaint", init_image="a.png", mask_image="m.png"), [],
                         Uploads("latent-studio-abc.png", "latent-studio-def.png"))
    loaded = next(n["inputs"]["image"] for n in inpaint.graph.values() if n["class_type"] == "LoadImage")
    assert loaded == "latent-studio-def.png" and "SetLatentNoiseMask" in classes(inpaint.graph)
    assert inpaint.graph[inpaint.samplers[0]]["inputs"]["denoise"] == 1.0
    with pytest.raises(UserError, match="needs a starting image"):
        image_plan(recipe(mode="img2img"), [])


def test_the_editors_graph_links_every_input_and_reads_back():
    plan = image_plan(recipe(prompt="a fox <lora:ink:0.6>", clip_skip=2), MODELS["loras"])
    workflow = ui_workflow(plan.graph, DEFINITIONS)
    assert check_ui_workflow(workflow, DEFINITIONS) == []
    assert len(workflow["nodes"]) == len(plan.graph) and workflow["last_node_id"] == len(plan.graph)
    sampler = next(n for n in workflow["nodes"] if n["type"] == "KSampler")
    assert sampler["widgets_values"] == [42, "fixed", 12, 6.5, "dpmpp_2m", "karras", 1.0]
    parsed = read_comfyui({"workflow": json.dumps(workflow)})  # the editor's graph alone is readable too
    assert parsed.recipe.seed == 42 and parsed.recipe.param("width") == 96 and parsed.recipe.prompt == "a fox"


def test_audio_graphs_need_the_servers_nodes():
    info = ServerInfo.read({"system": {"comfyui_version": "0.3.64"}, "devices": []}, DEFINITIONS)
    nodes, encoders = set(info.nodes), MODELS["text_encoders"]
    assert audio_kind("ace_step_v1_3.5b.safetensors", nodes, encoders) == "ace_step"
    assert audio_kind("stable-audio-open-1.0.safetensors", nodes, encoders) is None  # no ConditioningStableAudio
    assert audio_kind("stable-audio-open-1.0.safetensors", nodes | {"EmptyLatentAudio", "ConditioningStableAudio"},
                      encoders) == "stable_audio"
    assert audio_kind("sd15.safetensors", nodes, encoders) is None
    music = Recipe("music", prompt="lofi piano", model="ace_step_v1_3.5b.safetensors", seed=3,
                   params={"duration": 12.0, "guidance": 4.0})
    plan = audio_plan(music, "ace_step", encoders)
    assert {"TextEncodeAceStepAudio", "EmptyAceStepLatentAudio", "SaveAudio"} <= set(classes(plan.graph))
    seconds = next(n["inputs"]["seconds"] for n in plan.graph.values() if n["class_type"] == "EmptyAceStepLatentAudio")
    assert seconds == 12.0 and plan.recipes[0].param("steps") == 50
    stable = audio_plan(music, "stable_audio", encoders)
    assert next(n["inputs"]["clip_name"] for n in stable.graph.values() if n["class_type"] == "CLIPLoader") == \
        "t5_base.safetensors"
    assert [m.medium for m in info.models("box")] == ["image", "music", "image"]
