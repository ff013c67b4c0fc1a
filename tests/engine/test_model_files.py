"""What a .safetensors file is, read from its header: kinds, families, parts, dtype — never from the file's name."""

from __future__ import annotations

import pytest

from studio.core.model_files import checkpoint_facts, classify_header

LDM = "model.diffusion_model."


def raw(entries: dict, dtype: str = "F16") -> dict:
    return {name: {"dtype": dtype, "shape": list(shape), "data_offsets": [0, 0]} for name, shape in entries.items()}


@pytest.mark.parametrize(("entries", "kind", "family"), [
    ({LDM + "input_blocks.0.0.weight": (320, 4, 3, 3), LDM + "input_blocks.1.1.proj_in.weight": (320, 320, 1, 1)},
     "checkpoint", "sd1"),
    ({LDM + "input_blocks.0.0.weight": (320, 4, 3, 3), LDM + "input_blocks.1.1.proj_in.weight": (320, 320)},
     "checkpoint", "sd2"),
    ({LDM + "input_blocks.0.0.weight": (320, 9, 3, 3), LDM + "label_emb.0.0.weight": (1280, 2816)},
     "checkpoint", "sdxl_inpaint"),
    ({LDM + "joint_blocks.0.x_block.attn.qkv.weight": (4, 2)}, "checkpoint", "sd3"),
    ({LDM + "joint_blocks.0.x_block.attn.qkv.weight": (4, 2), LDM + "joint_blocks.0.x_block.attn.ln_q.weight": (2,)},
     "checkpoint", "sd35_large"),
    ({"joint_blocks.0.x_block.attn.qkv.weight": (4, 2), "joint_blocks.0.x_block.attn2.qkv.weight": (4, 2)},
     "checkpoint", "sd35_medium"),
    ({"double_blocks.0.img_attn.qkv.weight": (6, 2), "img_in.weight": (2, 64), "final_layer.linear.weight": (64, 2)},
     "checkpoint", "flux_schnell"),
    ({"double_blocks.0.img_attn.qkv.weight": (6, 2), "img_in.weight": (2, 384), "final_layer.linear.weight": (64, 2),
      "guidance_in.in_layer.weight": (2, 2)}, "checkpoint", "flux_fill"),
    ({"lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": (4, 768)}, "lora", "sdxl"),
    ({"unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (4, 1024)}, "lora", "sd2"),
    ({"transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight": (4, 3072)}, "lora", "flux_dev"),
    ({"emb_params": (3, 768)}, "embedding", "sd1"),
    ({"clip_l": (2, 768), "clip_g": (2, 1280)}, "embedding", "sdxl"),
    ({"encoder.down.0.block.0.conv1.weight": (128, 128, 3, 3), "decoder.conv_in.weight": (512, 16, 3, 3)}, "vae", ""),
    ({"text_model.embeddings.token_embedding.weight": (49408, 768)}, "text_encoder", ""),
    ({"shared.weight": (32128, 4096), "encoder.block.0.layer.0.SelfAttention.q.weight": (4096, 4096)},
     "text_encoder", ""),
    ({"control_model.time_embed.0.weight": (4, 4)}, "controlnet", ""),
    ({"conv_first.weight": (64, 3, 3, 3), "body.0.rdb1.conv1.weight": (32, 64, 3, 3)}, "upscaler", ""),
])
def test_kind_and_family_come_from_the_tensors(entries, kind, family):
    facts = classify_header(raw(entries))
    assert (facts.kind, facts.family) == (kind, family)


def test_a_checkpoints_parts_and_what_it_lacks():
    facts = classify_header(raw({"double_blocks.0.img_attn.qkv.weight": (6, 2), "guidance_in.in_layer.weight": (2, 2),
                                 "vae.decoder.conv_in.weight": (8, 16, 3, 3)}))
    assert facts.family == "flux_dev" and facts.parts == ("transformer", "vae")
    assert facts.missing == ("clip_l", "t5xxl")


def test_the_dtype_is_the_one_most_bytes_are_in():
    entries = raw({"a": (10,)}, "BF16") | raw({"b": (1,)}, "F32")
    entries["a"]["data_offsets"], entries["b"]["data_offsets"] = [0, 20], [20, 24]
    assert classify_header(entries).dtype == "bf16 + fp32"


def test_a_file_named_like_a_model_is_still_read_for_what_it_is(tmp_path):
    import torch
    from safetensors.torch import save_file

    lying = tmp_path / "sd_xl_base_1.0.safetensors"  # the name says SDXL; the tensors say LoRA
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(2, 4)}, str(lying))
    with pytest.raises(Exception, match="is a LoRA, not a model on its own"):
        checkpoint_facts(lying)
