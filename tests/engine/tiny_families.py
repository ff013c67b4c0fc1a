"""Tiny random models of every image family, saved as diffusers folders and as original-layout single files.

Built as diffusers' own tests build theirs (`get_dummy_components()`: a few channels, one or two blocks), but
with the shapes each family's rules fix (64-channel heads where the family has them, the CLIP text towers' real
49,408-token vocabulary so the tokenizer the app ships fits, CLIP-L narrower than OpenCLIP-G), and each family's
published scheduler. diffusers converts original checkpoints to its layout but not back, so the original key
names (LDM UNet/VAE, OpenCLIP, SD 3 MMDiT, FLUX) are written here, independently of the app's own converters.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.engine.tiny_models import unet_to_ldm, vae_to_ldm

UNET_FAMILIES = ("sd1", "sd2", "sdxl", "sdxl_inpaint")
SD3_FAMILIES = ("sd3", "sd35_medium", "sd35_large")
FLUX_FAMILIES = ("flux_dev", "flux_schnell")
FAMILIES = UNET_FAMILIES + SD3_FAMILIES + FLUX_FAMILIES
CLIP_L, CLIP_G, T5_WIDTH = 32, 64, 128  # CLIP-L narrower than OpenCLIP-G (the loaders tell them apart by width)


def _template(family: str) -> dict:
    from studio.engine.image.family_configs import family_template

    return family_template(family)["components"]


def clip_tokenizer(folder: Path, pad: str = "<|endoftext|>"):
    from transformers import CLIPTokenizer

    from studio.engine.image.family_configs import write_clip_vocab

    write_clip_vocab(folder)
    config = {"model_max_length": 77, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
              "unk_token": "<|endoftext|>", "pad_token": pad, "do_lower_case": True}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return CLIPTokenizer.from_pretrained(str(folder))


def t5_tokenizer(folder: Path | None = None):
    """A tiny sentencepiece-style (Unigram) T5 tokenizer: letters and word starts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import T5TokenizerFast

    letters = "abcdefghijklmnopqrstuvwxyz"
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(c, -3.0) for c in letters] + [("▁" + c, -2.5) for c in letters]
    backend = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer = T5TokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                                extra_ids=0, model_max_length=512)
    if folder is not None:
        tokenizer.save_pretrained(folder)
    return tokenizer


def tiny_clip(width: int, act: str, projection: bool, seed: int, layers: int = 2):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=49408, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                            num_attention_heads=max(1, width // 64), max_position_embeddings=77, hidden_act=act,
                            projection_dim=width, layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2, pad_token_id=1)
    torch.manual_seed(seed)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def tiny_t5(seed: int):
    import torch
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=60, d_model=T5_WIDTH, d_ff=64, d_kv=16, num_heads=2, num_layers=1,
                      relative_attention_num_buckets=8, feed_forward_proj="gated-gelu", is_encoder_decoder=False)
    torch.manual_seed(seed)
    return T5EncoderModel(config)


def tiny_vae(family: str, seed: int):
    import torch
    from diffusers import AutoencoderKL

    template = _template(family)["vae"]
    torch.manual_seed(seed)
    flow = template["latent_channels"] == 16
    return AutoencoderKL(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=template["latent_channels"],
                         norm_num_groups=32, layers_per_block=1, scaling_factor=template["scaling_factor"],
                         shift_factor=template.get("shift_factor"), use_quant_conv=not flow, use_post_quant_conv=not flow)


def family_scheduler(family: str):
    import diffusers

    config = _template(family)["scheduler"]
    return getattr(diffusers, config["_class_name"]).from_config(config)


# --- the pipelines ------------------------------------------------------------------------------------


def _unet(family: str, seed: int):
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    in_channels = 9 if family.endswith("inpaint") else 4
    if family == "sd1":
        return UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, in_channels=in_channels,
                                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=CLIP_L,
                                    attention_head_dim=8, norm_num_groups=32, sample_size=16)
    if family == "sd2":
        return UNet2DConditionModel(block_out_channels=(64, 128), layers_per_block=1, in_channels=in_channels,
                                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=CLIP_G,
                                    attention_head_dim=[1, 2], use_linear_projection=True, upcast_attention=True,
                                    norm_num_groups=32, sample_size=16)
    return UNet2DConditionModel(block_out_channels=(64, 128), layers_per_block=1, in_channels=in_channels,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=[1, 2],
                                transformer_layers_per_block=[1, 2], use_linear_projection=True,
                                addition_embed_type="text_time", addition_time_embed_dim=8,
                                projection_class_embeddings_input_dim=6 * 8 + CLIP_G,
                                cross_attention_dim=CLIP_L + CLIP_G, norm_num_groups=32, sample_size=16)


def _unet_pipeline(family: str, folder: Path, seed: int):
    import diffusers

    unet, vae = _unet(family, seed), tiny_vae(family, seed + 1)
    scheduler = family_scheduler(family)
    if family == "sd1":
        return diffusers.StableDiffusionPipeline(vae=vae, text_encoder=tiny_clip(CLIP_L, "quick_gelu", False, seed + 2),
                                                 tokenizer=clip_tokenizer(folder / "_vocab"), unet=unet,
                                                 scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                                 requires_safety_checker=False)
    if family == "sd2":
        return diffusers.StableDiffusionPipeline(vae=vae, text_encoder=tiny_clip(CLIP_G, "gelu", False, seed + 2),
                                                 tokenizer=clip_tokenizer(folder / "_vocab", "!"), unet=unet,
                                                 scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                                 requires_safety_checker=False)
    cls = diffusers.StableDiffusionXLInpaintPipeline if family.endswith("inpaint") else diffusers.StableDiffusionXLPipeline
    return cls(vae=vae, text_encoder=tiny_clip(CLIP_L, "quick_gelu", False, seed + 2),
               text_encoder_2=tiny_clip(CLIP_G, "gelu", True, seed + 3), tokenizer=clip_tokenizer(folder / "_vocab"),
               tokenizer_2=clip_tokenizer(folder / "_vocab2", "!"), unet=unet, scheduler=scheduler)


def _sd3_pipeline(family: str, folder: Path, seed: int):
    import torch
    from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline

    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=2, in_channels=16, num_layers=2, attention_head_dim=64, num_attention_heads=1,
        joint_attention_dim=T5_WIDTH, caption_projection_dim=64, pooled_projection_dim=CLIP_L + CLIP_G,
        out_channels=16, pos_embed_max_size=16, qk_norm=None if family == "sd3" else "rms_norm",
        dual_attention_layers=(0,) if family == "sd35_medium" else ())
    clip_l = tiny_clip(CLIP_L, "quick_gelu", True, seed + 2)
    with torch.no_grad():  # SD 3 files carry no CLIP-L projection; diffusers puts an identity there
        clip_l.text_projection.weight.copy_(torch.eye(CLIP_L))
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=family_scheduler(family), vae=tiny_vae(family, seed + 1),
        text_encoder=clip_l, tokenizer=clip_tokenizer(folder / "_vocab"),
        text_encoder_2=tiny_clip(CLIP_G, "gelu", True, seed + 3), tokenizer_2=clip_tokenizer(folder / "_vocab2", "!"),
        text_encoder_3=tiny_t5(seed + 4), tokenizer_3=t5_tokenizer())


def _flux_pipeline(family: str, folder: Path, seed: int):
    import torch
    from diffusers import FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=T5_WIDTH,
                                         pooled_projection_dim=CLIP_L, guidance_embeds=family == "flux_dev",
                                         axes_dims_rope=(4, 6, 6))
    return FluxPipeline(transformer=transformer, scheduler=family_scheduler(family), vae=tiny_vae(family, seed + 1),
                        text_encoder=tiny_clip(CLIP_L, "quick_gelu", False, seed + 2),
                        tokenizer=clip_tokenizer(folder / "_vocab"), text_encoder_2=tiny_t5(seed + 4),
                        tokenizer_2=t5_tokenizer())


def build_pipeline(family: str, scratch: Path, seed: int = 0):
    scratch.mkdir(parents=True, exist_ok=True)
    if family in UNET_FAMILIES:
        pipe = _unet_pipeline(family, scratch, seed)
    elif family in SD3_FAMILIES:
        pipe = _sd3_pipeline(family, scratch, seed)
    else:
        pipe = _flux_pipeline(family, scratch, seed)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --- original key names ------------------------------------------------------------------------------------


def clip_to_original(state: dict, prefix: str) -> dict:
    """transformers' CLIP (flattened or not) -> the nested `text_model.` layout single files carry."""
    out = {}
    for key, value in state.items():
        if key.endswith("position_ids"):
            continue
        nested = key if key.startswith(("text_model.", "text_projection")) else "text_model." + key
        out[prefix + nested] = value
    return out


_OPEN_CLIP = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
              "self_attn.out_proj": "attn.out_proj"}


def open_clip_to_original(state: dict, prefix: str, extra_layer: bool) -> dict:
    """transformers' CLIP -> OpenCLIP's layout (SD 2.x `cond_stage_model.model.`, SDXL `conditioner.embedders.1.model.`)."""
    import torch

    state = {k.removeprefix("text_model."): v for k, v in state.items() if not k.endswith("position_ids")}
    out = {prefix + "token_embedding.weight": state.pop("embeddings.token_embedding.weight"),
           prefix + "positional_embedding": state.pop("embeddings.position_embedding.weight"),
           prefix + "ln_final.weight": state.pop("final_layer_norm.weight"),
           prefix + "ln_final.bias": state.pop("final_layer_norm.bias")}
    if "text_projection.weight" in state:
        out[prefix + "text_projection"] = state.pop("text_projection.weight").T.contiguous()
    layers = sorted({int(k.split(".")[2]) for k in state if k.startswith("encoder.layers.")})
    for i in layers:
        src, dst = f"encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat([state.pop(f"{src}self_attn.{p}_proj.{kind}") for p in "qkv"])
            for ours, theirs in _OPEN_CLIP.items():
                out[f"{dst}{theirs}.{kind}"] = state.pop(f"{src}{ours}.{kind}")
    assert not state, f"unmapped CLIP keys: {sorted(state)[:5]}"
    if extra_layer:  # SD 2.x files carry the last layer its penultimate-layer reading skips
        last = f"{prefix}transformer.resblocks.{layers[-1]}."
        out.update({k.replace(last, f"{prefix}transformer.resblocks.{layers[-1] + 1}."): v.clone()
                    for k, v in list(out.items()) if k.startswith(last)})
    return out


def _swap(weight):
    import torch

    first, second = weight.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def sd3_to_original(state: dict, layers: int) -> dict:
    import torch

    s = dict(state)
    out = {"pos_embed": s.pop("pos_embed.pos_embed"), "x_embedder.proj.weight": s.pop("pos_embed.proj.weight"),
           "x_embedder.proj.bias": s.pop("pos_embed.proj.bias"), "final_layer.linear.weight": s.pop("proj_out.weight"),
           "final_layer.linear.bias": s.pop("proj_out.bias")}
    plain = {"time_text_embed.timestep_embedder.linear_1": "t_embedder.mlp.0",
             "time_text_embed.timestep_embedder.linear_2": "t_embedder.mlp.2",
             "time_text_embed.text_embedder.linear_1": "y_embedder.mlp.0",
             "time_text_embed.text_embedder.linear_2": "y_embedder.mlp.2", "context_embedder": "context_embedder"}
    block = {"attn.norm_q": "x_block.attn.ln_q", "attn.norm_k": "x_block.attn.ln_k",
             "attn.norm_added_q": "context_block.attn.ln_q", "attn.norm_added_k": "context_block.attn.ln_k",
             "attn.to_out.0": "x_block.attn.proj", "attn.to_add_out": "context_block.attn.proj",
             "attn2.norm_q": "x_block.attn2.ln_q", "attn2.norm_k": "x_block.attn2.ln_k",
             "attn2.to_out.0": "x_block.attn2.proj", "norm1.linear": "x_block.adaLN_modulation.1",
             "ff.net.0.proj": "x_block.mlp.fc1", "ff.net.2": "x_block.mlp.fc2",
             "ff_context.net.0.proj": "context_block.mlp.fc1", "ff_context.net.2": "context_block.mlp.fc2"}
    for kind in ("weight", "bias"):
        for ours, theirs in plain.items():
            out[f"{theirs}.{kind}"] = s.pop(f"{ours}.{kind}")
        out[f"final_layer.adaLN_modulation.1.{kind}"] = _swap(s.pop(f"norm_out.linear.{kind}"))
        for i in range(layers):
            d, o = f"transformer_blocks.{i}.", f"joint_blocks.{i}."
            out[f"{o}x_block.attn.qkv.{kind}"] = torch.cat([s.pop(f"{d}attn.to_{p}.{kind}") for p in "qkv"])
            out[f"{o}context_block.attn.qkv.{kind}"] = torch.cat([s.pop(f"{d}attn.add_{p}_proj.{kind}") for p in "qkv"])
            if f"{d}attn2.to_q.{kind}" in s:
                out[f"{o}x_block.attn2.qkv.{kind}"] = torch.cat([s.pop(f"{d}attn2.to_{p}.{kind}") for p in "qkv"])
            context_norm = s.pop(f"{d}norm1_context.linear.{kind}")
            out[f"{o}context_block.adaLN_modulation.1.{kind}"] = _swap(context_norm) if i == layers - 1 else context_norm
            for ours, theirs in block.items():
                if f"{d}{ours}.{kind}" in s:
                    out[f"{o}{theirs}.{kind}"] = s.pop(f"{d}{ours}.{kind}")
    assert not s, f"unmapped SD 3 keys: {sorted(s)[:5]}"
    return {"model.diffusion_model." + k: v for k, v in out.items()}


def flux_to_original(state: dict) -> dict:
    import torch

    s = dict(state)
    plain = {"time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
             "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
             "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
             "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
             "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
             "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
             "context_embedder": "txt_in", "x_embedder": "img_in", "proj_out": "final_layer.linear"}
    double = {"norm1.linear": "img_mod.lin", "norm1_context.linear": "txt_mod.lin", "ff.net.0.proj": "img_mlp.0",
              "ff.net.2": "img_mlp.2", "ff_context.net.0.proj": "txt_mlp.0", "ff_context.net.2": "txt_mlp.2",
              "attn.to_out.0": "img_attn.proj", "attn.to_add_out": "txt_attn.proj"}
    norms = {"attn.norm_q": "img_attn.norm.query_norm", "attn.norm_k": "img_attn.norm.key_norm",
             "attn.norm_added_q": "txt_attn.norm.query_norm", "attn.norm_added_k": "txt_attn.norm.key_norm"}
    out = {}
    doubles = sorted({int(k.split(".")[1]) for k in s if k.startswith("transformer_blocks.")})
    singles = sorted({int(k.split(".")[1]) for k in s if k.startswith("single_transformer_blocks.")})
    for kind in ("weight", "bias"):
        for ours, theirs in plain.items():
            if f"{ours}.{kind}" in s:
                out[f"{theirs}.{kind}"] = s.pop(f"{ours}.{kind}")
        out[f"final_layer.adaLN_modulation.1.{kind}"] = _swap(s.pop(f"norm_out.linear.{kind}"))
        for i in doubles:
            d, o = f"transformer_blocks.{i}.", f"double_blocks.{i}."
            out[f"{o}img_attn.qkv.{kind}"] = torch.cat([s.pop(f"{d}attn.to_{p}.{kind}") for p in "qkv"])
            out[f"{o}txt_attn.qkv.{kind}"] = torch.cat([s.pop(f"{d}attn.add_{p}_proj.{kind}") for p in "qkv"])
            for ours, theirs in double.items():
                out[f"{o}{theirs}.{kind}"] = s.pop(f"{d}{ours}.{kind}")
        for i in singles:
            d, o = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
            parts = [s.pop(f"{d}attn.to_{p}.{kind}") for p in "qkv"] + [s.pop(f"{d}proj_mlp.{kind}")]
            out[f"{o}linear1.{kind}"] = torch.cat(parts)
            out[f"{o}modulation.lin.{kind}"] = s.pop(f"{d}norm.linear.{kind}")
            out[f"{o}linear2.{kind}"] = s.pop(f"{d}proj_out.{kind}")
    for i in doubles:
        for ours, theirs in norms.items():
            out[f"double_blocks.{i}.{theirs}.scale"] = s.pop(f"transformer_blocks.{i}.{ours}.weight")
    for i in singles:
        out[f"single_blocks.{i}.norm.query_norm.scale"] = s.pop(f"single_transformer_blocks.{i}.attn.norm_q.weight")
        out[f"single_blocks.{i}.norm.key_norm.scale"] = s.pop(f"single_transformer_blocks.{i}.attn.norm_k.weight")
    assert not s, f"unmapped FLUX keys: {sorted(s)[:5]}"
    return out


def _save(tensors: dict, path: Path) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().clone().contiguous() for k, v in tensors.items()}, str(path))
    return path


def write_single_file(family: str, pipe, root: Path) -> Path:
    """The pipeline as the file(s) an artist would have: all-in-one for SD, transformer + parts for FLUX."""
    vae = vae_to_ldm(pipe.vae.state_dict(), dict(pipe.vae.config))
    if family in UNET_FAMILIES:
        tensors = unet_to_ldm(pipe.unet.state_dict(), dict(pipe.unet.config)) | vae
        if family == "sd1":
            tensors |= clip_to_original(pipe.text_encoder.state_dict(), "cond_stage_model.transformer.")
        elif family == "sd2":
            tensors |= open_clip_to_original(pipe.text_encoder.state_dict(), "cond_stage_model.model.", True)
        else:
            tensors |= clip_to_original(pipe.text_encoder.state_dict(), "conditioner.embedders.0.transformer.")
            tensors |= open_clip_to_original(pipe.text_encoder_2.state_dict(), "conditioner.embedders.1.model.", False)
        return _save(tensors, root / f"{family}.safetensors")
    if family in SD3_FAMILIES:
        tensors = sd3_to_original(pipe.transformer.state_dict(), pipe.transformer.config.num_layers) | vae
        clip_l = {k: v for k, v in pipe.text_encoder.state_dict().items() if not k.startswith("text_projection")}
        tensors |= clip_to_original(clip_l, "text_encoders.clip_l.transformer.")
        tensors |= clip_to_original(pipe.text_encoder_2.state_dict(), "text_encoders.clip_g.transformer.")
        tensors |= {"text_encoders.t5xxl.transformer." + k: v for k, v in pipe.text_encoder_3.state_dict().items()}
        t5_tokenizer(root / "t5_tokenizer")
        return _save(tensors, root / f"{family}.safetensors")
    models = root / "ComfyUI" / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models.parent / "main.py").write_text("# a ComfyUI install's layout (models/ beside its code)\n")
    _save({k.removeprefix("first_stage_model."): v for k, v in vae.items()}, models / "vae" / "ae.safetensors")
    _save(clip_to_original(pipe.text_encoder.state_dict(), ""), models / "text_encoders" / "clip_l.safetensors")
    _save(pipe.text_encoder_2.state_dict(), models / "text_encoders" / "t5xxl_fp16.safetensors")
    t5_tokenizer(models / "text_encoders" / "t5_tokenizer")
    return _save(flux_to_original(pipe.transformer.state_dict()), models / "diffusion_models" / f"{family}.safetensors")


def build_family(family: str, root: Path, seed: int = 0) -> tuple[Path, Path]:
    """(diffusers folder, single file) of one family's tiny random model under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    pipe = build_pipeline(family, root / "_scratch", seed)
    folder = root / f"{family}-diffusers"
    pipe.save_pretrained(folder, safe_serialization=True)
    (folder / "README.md").write_text(json.dumps({"family": family, "seed": seed}))
    return folder, write_single_file(family, pipe, root / "single")
