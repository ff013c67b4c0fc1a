"""A checkpoint a real ComfyUI recognises, for the ComfyUI contract suite (tests/comfyui/) on a developer's machine.

ComfyUI's model detection (comfy/model_detection.py) reads a configuration off the key names and shapes and matches
it against fixed ones (supported_models.py), so a tiny model is not recognised: this writes a full-size Stable
Diffusion 1.5 architecture (UNet 320/640/1280/1280 with 768-wide cross-attention, the SD VAE, a CLIP ViT-L/14 text
encoder) with RANDOM weights, in the original (LDM) single-file layout, fp16 (about 2 GB). Built with diffusers and
transformers classes, converted to LDM key names the way diffusers' own convert_diffusers_to_original script maps
them. It generates noise, quickly enough at 64 x 64 on a CPU. Also a rank-4 LoRA in kohya's naming for it.

    python scripts/make_comfyui_checkpoint.py MODELS_DIR
writes MODELS_DIR/checkpoints/sd15-random.safetensors and MODELS_DIR/loras/sd15-random-lora.safetensors.
Never commit the files: they are big and mean nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

CHECKPOINT = "sd15-random.safetensors"
LORA = "sd15-random-lora.safetensors"


def unet_layer_map() -> list[tuple[str, str]]:
    """(LDM prefix, diffusers prefix) of the UNet's blocks."""
    pairs = [("time_embed.0.", "time_embedding.linear_1."), ("time_embed.2.", "time_embedding.linear_2."),
             ("input_blocks.0.0.", "conv_in."), ("out.0.", "conv_norm_out."), ("out.2.", "conv_out."),
             ("middle_block.1.", "mid_block.attentions.0.")]
    for i in range(4):
        for j in range(2):
            pairs.append((f"input_blocks.{3 * i + j + 1}.0.", f"down_blocks.{i}.resnets.{j}."))
            if i < 3:
                pairs.append((f"input_blocks.{3 * i + j + 1}.1.", f"down_blocks.{i}.attentions.{j}."))
        for j in range(3):
            pairs.append((f"output_blocks.{3 * i + j}.0.", f"up_blocks.{i}.resnets.{j}."))
            if i > 0:
                pairs.append((f"output_blocks.{3 * i + j}.1.", f"up_blocks.{i}.attentions.{j}."))
        if i < 3:
            pairs.append((f"input_blocks.{3 * (i + 1)}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
            pairs.append((f"output_blocks.{3 * i + 2}.{1 if i == 0 else 2}.", f"up_blocks.{i}.upsamplers.0."))
    for j in range(2):
        pairs.append((f"middle_block.{2 * j}.", f"mid_block.resnets.{j}."))
    return pairs


RESNET_PARTS = [("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("out_layers.0.", "norm2."),
                ("out_layers.3.", "conv2."), ("emb_layers.1.", "time_emb_proj."), ("skip_connection.", "conv_shortcut.")]


def convert_unet(state: dict) -> dict:
    converted = {}
    layers = unet_layer_map()
    for key, value in state.items():
        new = key
        for ldm, hf in layers:
            if new.startswith(hf):
                new = ldm + new[len(hf):]
                break
        if "resnets" in key:
            for ldm, hf in RESNET_PARTS:
                new = new.replace(hf, ldm)
        converted["model.diffusion_model." + new] = value
    return converted


def convert_vae(state: dict) -> dict:
    pairs = [("nin_shortcut", "conv_shortcut"), ("norm_out", "conv_norm_out"), ("mid.attn_1.", "mid_block.attentions.0.")]
    for i in range(4):
        for j in range(2):
            pairs.append((f"encoder.down.{i}.block.{j}.", f"encoder.down_blocks.{i}.resnets.{j}."))
        if i < 3:
            pairs.append((f"down.{i}.downsample.", f"down_blocks.{i}.downsamplers.0."))
            pairs.append((f"up.{3 - i}.upsample.", f"up_blocks.{i}.upsamplers.0."))
        for j in range(3):
            pairs.append((f"decoder.up.{3 - i}.block.{j}.", f"decoder.up_blocks.{i}.resnets.{j}."))
    for i in range(2):
        pairs.append((f"mid.block_{i + 1}.", f"mid_block.resnets.{i}."))
    attention = [("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."), ("proj_out.", "to_out.0.")]
    converted = {}
    for key, value in state.items():
        new = key
        for ldm, hf in pairs:
            new = new.replace(hf, ldm)
        if "attentions" in key:
            for ldm, hf in attention:
                new = new.replace(hf, ldm)
            if new.endswith(("q.weight", "k.weight", "v.weight", "proj_out.weight")) and value.ndim == 2:
                value = value.reshape(*value.shape, 1, 1)  # the LDM VAE's attention projections are 1x1 convolutions
        converted["first_stage_model." + new] = value
    return converted


def build(models: Path, seed: int = 0) -> tuple[Path, Path]:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8)  # the defaults are SD 1.x's blocks
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                        num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                        hidden_act="quick_gelu", projection_dim=768))
    state = {**convert_unet(unet.state_dict()), **convert_vae(vae.state_dict())}
    state.update({"cond_stage_model.transformer." + k: v for k, v in clip.state_dict().items()
                  if not k.endswith("position_ids")})
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}
    (models / "checkpoints").mkdir(parents=True, exist_ok=True)
    (models / "loras").mkdir(parents=True, exist_ok=True)
    checkpoint = models / "checkpoints" / CHECKPOINT
    save_file(state, str(checkpoint))
    lora = {}
    for key, value in state.items():  # every attention projection of the UNet: a change a picture shows
        if key.startswith("model.diffusion_model.") and ".attn" in key and key.endswith(("to_q.weight", "to_v.weight")):
            name = "lora_unet_" + key[len("model.diffusion_model."):-len(".weight")].replace(".", "_")
            out_features, in_features = value.shape
            lora[f"{name}.lora_down.weight"] = (torch.randn(4, in_features) * 0.1).to(torch.float16)
            lora[f"{name}.lora_up.weight"] = (torch.randn(out_features, 4) * 0.1).to(torch.float16)
            lora[f"{name}.alpha"] = torch.tensor(4.0, dtype=torch.float16)
    lora_path = models / "loras" / LORA
    save_file(lora, str(lora_path))
    return checkpoint, lora_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, help="a ComfyUI models folder (checkpoints/ and loras/ are made in it)")
    args = parser.parse_args()
    for path in build(args.models):
        print(f"wrote {path} ({path.stat().st_size / 2**30:.2f} GiB)")


if __name__ == "__main__":
    main()
