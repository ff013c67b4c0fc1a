"""Tiny random Stable Diffusion pipelines for tests, saved the way a user's model folder is.

`build_tiny_sd_folder(path)` writes a diffusers folder (model_index.json, unet/, vae/,
text_encoder/, tokenizer/, scheduler/) with safetensors weights, a few hundred kB in all,
built like diffusers' own `get_dummy_components()`. Tests then load it through the same code
path a user's folder takes. `write_ldm_checkpoint(folder, file)` turns such a folder into an
original-layout (LDM / A1111 / Civitai style) single-file checkpoint: diffusers converts LDM
to diffusers but not back, so the key mapping lives here (small SD-shaped models only).
"""

from __future__ import annotations

from pathlib import Path

# The CLIP tokenizer's byte -> printable character table (same as GPT-2's).
_SPECIAL = ["<|startoftext|>", "<|endoftext|>"]


def _bytes_to_unicode() -> list[str]:
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def tiny_clip_vocab() -> dict[str, int]:
    """A character-level CLIP BPE vocabulary (no merges): every prompt tokenizes, nothing downloads."""
    chars = _bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars] + _SPECIAL
    return {t: i for i, t in enumerate(tokens)}


def _tiny_components(seed: int, unet_in_channels: int):
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    # SD's own pattern at two levels: cross-attention at the high resolution, none at the bottom,
    # so the LDM key layout below matches real SD1 checkpoints block for block.
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=unet_in_channels,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=(2, 4),
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=32,
        sample_size=32,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return unet, vae, scheduler, CLIPTextConfig, CLIPTextModel, CLIPTokenizer


def build_tiny_sd_folder(path: Path, *, seed: int = 0, inpaint: bool = False) -> Path:
    """Write a tiny random StableDiffusion(Inpaint)Pipeline folder to `path` and return it.

    Images are 32x32 at the model's native size (VAE factor 2, latents 16x16). `inpaint=True`
    gives a 9-channel UNet (latents + mask + masked image), like SD's inpainting checkpoints.
    """
    import torch
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    path = Path(path)
    unet, vae, scheduler, CLIPTextConfig, CLIPTextModel, CLIPTokenizer = _tiny_components(seed, 9 if inpaint else 4)
    # transformers 5 takes the vocabulary itself (older versions took vocab.json / merges.txt paths);
    # without model_max_length tokenizing raises OverflowError.
    tokenizer = CLIPTokenizer(vocab=tiny_clip_vocab(), merges=[], model_max_length=77)
    vocab_size = len(tokenizer.get_vocab())
    torch.manual_seed(seed + 1)
    text_config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        layer_norm_eps=1e-5,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|startoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )
    text_encoder = CLIPTextModel(text_config)
    pipeline_class = StableDiffusionInpaintPipeline if inpaint else StableDiffusionPipeline
    pipe = pipeline_class(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(path, safe_serialization=True)
    return path


def build_tiny_inpaint_sd_folder(path: Path, *, seed: int = 0) -> Path:
    return build_tiny_sd_folder(path, seed=seed, inpaint=True)


# --- diffusers -> original (LDM) key names ------------------------------------------------------

_UNET_FIXED = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
    "add_embedding.linear_1.": "label_emb.0.0.",  # SDXL's size/crop embedding
    "add_embedding.linear_2.": "label_emb.0.2.",
}
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


def _unet_prefixes(config: dict) -> list[tuple[str, str, str]]:
    """(diffusers prefix, LDM prefix, kind) for every block of an SD-shaped UNet."""
    per_level = config["layers_per_block"]
    levels = len(config["block_out_channels"])
    out: list[tuple[str, str, str]] = [(ours, theirs, "plain") for ours, theirs in _UNET_FIXED.items()]
    for b in range(levels):
        attends = "CrossAttn" in config["down_block_types"][b]
        for j in range(per_level):
            index = 1 + b * (per_level + 1) + j
            out.append((f"down_blocks.{b}.resnets.{j}.", f"input_blocks.{index}.0.", "resnet"))
            if attends:
                out.append((f"down_blocks.{b}.attentions.{j}.", f"input_blocks.{index}.1.", "plain"))
        if b < levels - 1:
            out.append(
                (f"down_blocks.{b}.downsamplers.0.conv.", f"input_blocks.{(b + 1) * (per_level + 1)}.0.op.", "plain")
            )
    out += [
        ("mid_block.resnets.0.", "middle_block.0.", "resnet"),
        ("mid_block.attentions.0.", "middle_block.1.", "plain"),
        ("mid_block.resnets.1.", "middle_block.2.", "resnet"),
    ]
    for b in range(levels):
        attends = "CrossAttn" in config["up_block_types"][b]
        for j in range(per_level + 1):
            index = b * (per_level + 1) + j
            out.append((f"up_blocks.{b}.resnets.{j}.", f"output_blocks.{index}.0.", "resnet"))
            if attends:
                out.append((f"up_blocks.{b}.attentions.{j}.", f"output_blocks.{index}.1.", "plain"))
        if b < levels - 1:
            last = b * (per_level + 1) + per_level
            out.append(
                (f"up_blocks.{b}.upsamplers.0.conv.", f"output_blocks.{last}.{2 if attends else 1}.conv.", "plain")
            )
    return out


def _rename(key: str, prefixes: list[tuple[str, str, str]], resnet_names: dict[str, str]) -> str:
    for diffusers_prefix, ldm_prefix, kind in prefixes:
        if key.startswith(diffusers_prefix):
            rest = key[len(diffusers_prefix) :]
            if kind == "resnet":
                head, _, tail = rest.partition(".")
                rest = f"{resnet_names.get(head, head)}.{tail}"
            return ldm_prefix + rest
    raise KeyError(f"no LDM name for {key}")


def unet_to_ldm(state: dict, config: dict) -> dict:
    prefixes = _unet_prefixes(config)
    return {"model.diffusion_model." + _rename(k, prefixes, _UNET_RESNET): v for k, v in state.items()}


_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def vae_to_ldm(state: dict, config: dict) -> dict:
    levels = len(config["block_out_channels"])
    prefixes: list[tuple[str, str, str]] = [
        ("encoder.conv_norm_out.", "encoder.norm_out.", "plain"),
        ("decoder.conv_norm_out.", "decoder.norm_out.", "plain"),
    ]
    for part in ("encoder", "decoder"):
        prefixes += [
            (f"{part}.mid_block.resnets.0.", f"{part}.mid.block_1.", "resnet"),
            (f"{part}.mid_block.resnets.1.", f"{part}.mid.block_2.", "resnet"),
            (f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1.", "attention"),
        ]
    for i in range(levels):
        prefixes.append((f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block.", "vae_resnet"))
        prefixes.append((f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample.", "plain"))
        # the LDM decoder counts its levels from the bottom
        prefixes.append((f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{levels - 1 - i}.block.", "vae_resnet"))
        prefixes.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{levels - 1 - i}.upsample.", "plain"))
    out = {}
    for key, value in state.items():
        new = key
        for diffusers_prefix, ldm_prefix, kind in prefixes:
            if key.startswith(diffusers_prefix):
                rest = key[len(diffusers_prefix) :]
                if kind == "attention":
                    for ours, theirs in _VAE_ATTENTION.items():
                        if rest.startswith(ours + "."):
                            rest = theirs + rest[len(ours) :]
                            break
                    if value.ndim == 2:  # LDM's attention projections are 1x1 convolutions
                        value = value[:, :, None, None]
                new = ldm_prefix + rest
                break
        new = new.replace("conv_shortcut", "nin_shortcut")
        out["first_stage_model." + new] = value
    return out


def write_ldm_checkpoint(folder: Path, out_file: Path, *, dtype=None) -> Path:
    """Write a diffusers SD1-style folder as one original-layout .safetensors checkpoint."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextModel

    folder = Path(folder)
    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    vae = AutoencoderKL.from_pretrained(folder / "vae")
    text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder")
    tensors = {}
    tensors.update(unet_to_ldm(unet.state_dict(), dict(unet.config)))
    tensors.update(vae_to_ldm(vae.state_dict(), dict(vae.config)))
    # Original checkpoints nest CLIP under `text_model.`; transformers >= 5.6 flattened that away.
    for key, value in text_encoder.state_dict().items():
        nested = key if key.startswith("text_model.") else "text_model." + key
        tensors["cond_stage_model.transformer." + nested] = value
    tensors = {k: (v.to(dtype) if dtype is not None else v).contiguous() for k, v in tensors.items()}
    save_file(tensors, str(out_file))
    return Path(out_file)


def build_tiny_sdxl_folder(path: Path, *, seed: int = 0) -> Path:
    """A tiny random StableDiffusionXLPipeline folder (two text encoders, size/crop conditioning)."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    path = Path(path)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=8 * 6 + 32,  # six size/crop numbers + the pooled text embedding
        cross_attention_dim=64,  # both encoders' hidden states side by side
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        sample_size=32,
        scaling_factor=0.13025,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading"
    )
    tokenizers = [CLIPTokenizer(vocab=tiny_clip_vocab(), merges=[], model_max_length=77) for _ in range(2)]
    ids = {t: tokenizers[0].convert_tokens_to_ids(t) for t in _SPECIAL}
    config = CLIPTextConfig(
        vocab_size=len(tokenizers[0].get_vocab()),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=32,
        bos_token_id=ids["<|startoftext|>"],
        eos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    torch.manual_seed(seed + 1)
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(config),
        text_encoder_2=CLIPTextModelWithProjection(config),
        tokenizer=tokenizers[0],
        tokenizer_2=tokenizers[1],
        unet=unet,
        scheduler=scheduler,
    )
    pipe.save_pretrained(path, safe_serialization=True)
    return path
