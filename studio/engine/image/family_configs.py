"""The diffusers configuration of a single-file checkpoint, made here: no download, no Hugging Face cache.

Each family's published architecture is shipped as data (`assets/families/<family>.json`: component configs,
scheduler config, tokenizer settings, each file naming its source). The numbers a checkpoint's own tensors fix —
widths, depths, channel counts, which levels attend — are then read from its shapes, so a pruned, merged or tiny
model gets the configuration that fits it, and a full-size one gets exactly the published one. What shapes cannot
say comes from the family's rules: attention heads are 64 channels wide in SD 2.x/SDXL/SD 3 and every CLIP text
tower; SD 1.x UNets have 8 heads; FLUX splits a head's rotary embedding 16/56/56 (a quarter/three-eighths/three-
eighths in narrower heads).

The CLIP BPE vocabulary (vocab.json + merges.txt, 49,408 tokens) is built from OpenAI's
`bpe_simple_vocab_16e6.txt.gz` as shipped, under the MIT licence, in the `clip-anytorch` package (assets/clip/).
The T5 tokenizer (SD 3, FLUX) is not shipped: it comes from files beside the checkpoint (`core/companions.py`).
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import math
import re
from pathlib import Path

from studio import paths
from studio.core.jobs import UserError

LDM = "model.diffusion_model."
CLIP_VOCAB_SIZE = 49408  # OpenAI CLIP's BPE: 256 bytes x 2 + 48,894 merges + 2 special tokens
HEAD_WIDTH = 64  # attention head width of SD 2.x/SDXL/SD 3 and of every CLIP text tower


def family_template(family: str) -> dict:
    path = paths.assets_dir() / "families" / f"{family}.json"
    if not path.is_file():
        raise UserError(f"no configuration ships for the {family} family ({path.name} is missing from assets/)")
    return json.loads(path.read_text(encoding="utf-8"))


class Shapes:
    """Tensor name -> shape, from a header or a loaded state dict."""

    def __init__(self, shapes: dict[str, list[int]]):
        self.shapes = shapes

    @classmethod
    def of(cls, tensors: dict) -> Shapes:
        return cls({k: list(v.shape) if hasattr(v, "shape") else list(v["shape"]) for k, v in tensors.items()})

    def __contains__(self, key: str) -> bool:
        return key in self.shapes

    def __getitem__(self, key: str) -> list[int]:
        return self.shapes[key]

    def numbers(self, pattern: str) -> list[int]:
        """The distinct block numbers in names matching `pattern` (a regex with one group), sorted."""
        regex = re.compile(pattern)
        return sorted({int(m.group(1)) for k in self.shapes if (m := regex.match(k))})

    def has_prefix(self, prefix: str) -> bool:
        return any(k.startswith(prefix) for k in self.shapes)


# --- UNet and VAE (original LDM names) -----------------------------------------------------------------


def _unet_levels(s: Shapes) -> list[list[dict]]:
    """Input blocks grouped into levels (split at the downsamplers): each resnet's width, attention and depth."""
    levels: list[list[dict]] = [[]]
    for n in s.numbers(rf"{re.escape(LDM)}input_blocks\.(\d+)\."):
        if n == 0:
            continue
        if f"{LDM}input_blocks.{n}.0.op.weight" in s:
            levels.append([])
            continue
        width = s[f"{LDM}input_blocks.{n}.0.out_layers.3.weight"][0]
        depth = len(s.numbers(rf"{re.escape(LDM)}input_blocks\.{n}\.1\.transformer_blocks\.(\d+)\."))
        levels[-1].append({"width": width, "depth": depth})
    return [level for level in levels if level]


def unet_config(template: dict, s: Shapes, family: str) -> dict:
    config = copy.deepcopy(template)
    levels = _unet_levels(s)
    widths = [level[0]["width"] for level in levels]
    attends = [level[0]["depth"] > 0 for level in levels]
    config["in_channels"] = s[LDM + "input_blocks.0.0.weight"][1]
    config["out_channels"] = s[LDM + "out.2.weight"][0]
    config["block_out_channels"] = widths
    config["layers_per_block"] = len(levels[0])
    config["down_block_types"] = ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attends]
    config["up_block_types"] = ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attends)]
    depths = [max(1, level[0]["depth"]) for level in levels]
    config["transformer_layers_per_block"] = depths if len(set(depths)) > 1 else depths[0]
    cross = next(k for k in s.shapes if k.startswith(LDM) and k.endswith("attn2.to_k.weight"))
    config["cross_attention_dim"] = s[cross][1]
    proj_in = next(k for k in s.shapes if k.startswith(LDM) and k.endswith(".proj_in.weight"))
    config["use_linear_projection"] = len(s[proj_in]) == 2
    if not family.startswith("sd1"):  # 64-channel heads; SD 1.x keeps its 8 heads at every width
        config["attention_head_dim"] = [max(1, w // HEAD_WIDTH) for w in widths]
    if LDM + "label_emb.0.0.weight" in s:
        inputs = s[LDM + "label_emb.0.0.weight"][1]
        pooled = _pooled_width(s)
        config["projection_class_embeddings_input_dim"] = inputs
        config["addition_time_embed_dim"] = (inputs - pooled) // 6  # six size/crop numbers + the pooled text
    return config


def _pooled_width(s: Shapes) -> int:
    for key in ("conditioner.embedders.1.model.text_projection", "text_encoders.clip_g.transformer.text_projection.weight"):
        if key in s:
            return s[key][-1] if key.endswith("text_projection") else s[key][0]
    return 1280


def vae_config(template: dict, s: Shapes, prefix: str) -> dict:
    config = copy.deepcopy(template)
    levels = s.numbers(rf"{re.escape(prefix)}encoder\.down\.(\d+)\.")
    widths = [s[f"{prefix}encoder.down.{i}.block.0.conv1.weight"][0] for i in levels]
    config["block_out_channels"] = widths
    config["down_block_types"] = ["DownEncoderBlock2D"] * len(widths)
    config["up_block_types"] = ["UpDecoderBlock2D"] * len(widths)
    config["layers_per_block"] = len(s.numbers(rf"{re.escape(prefix)}encoder\.down\.0\.block\.(\d+)\."))
    config["in_channels"] = s[prefix + "encoder.conv_in.weight"][1]
    config["out_channels"] = s[prefix + "decoder.conv_out.weight"][0]
    config["latent_channels"] = s[prefix + "decoder.conv_in.weight"][1]
    config["use_quant_conv"] = prefix + "quant_conv.weight" in s
    config["use_post_quant_conv"] = prefix + "post_quant_conv.weight" in s
    return config


def vae_prefix(s: Shapes) -> str:
    for prefix in ("first_stage_model.", "vae."):
        if s.has_prefix(prefix + "decoder."):
            return prefix
    return ""


# --- text encoders ------------------------------------------------------------------------------------------


def clip_config(template: dict, s: Shapes, prefix: str) -> dict:
    """A CLIP text tower in transformers' layout under `prefix` (with or without `text_model.`)."""
    inner = prefix + "text_model." if s.has_prefix(prefix + "text_model.") else prefix
    config = copy.deepcopy(template)
    vocab, width = s[inner + "embeddings.token_embedding.weight"]
    config.update(
        vocab_size=vocab,
        hidden_size=width,
        num_attention_heads=max(1, width // HEAD_WIDTH),
        num_hidden_layers=len(s.numbers(rf"{re.escape(inner)}encoder\.layers\.(\d+)\.")),
        intermediate_size=s[inner + "encoder.layers.0.mlp.fc1.weight"][0],
        max_position_embeddings=s[inner + "embeddings.position_embedding.weight"][0],
    )
    projection = prefix + "text_projection.weight"
    config["projection_dim"] = s[projection][0] if projection in s else width
    return config


def open_clip_config(template: dict, s: Shapes, prefix: str, drop_last_layer: bool) -> dict:
    """An OpenCLIP text tower (SD 2.x's ViT-H, SDXL's ViT-bigG) in its own layout under `prefix`."""
    config = copy.deepcopy(template)
    vocab, width = s[prefix + "token_embedding.weight"]
    layers = len(s.numbers(rf"{re.escape(prefix)}transformer\.resblocks\.(\d+)\."))
    config.update(
        vocab_size=vocab,
        hidden_size=width,
        num_attention_heads=max(1, width // HEAD_WIDTH),
        # SD 2.x reads the penultimate layer, so diffusers' text encoder stops one layer short
        num_hidden_layers=layers - 1 if drop_last_layer else layers,
        intermediate_size=s[prefix + "transformer.resblocks.0.mlp.c_fc.weight"][0],
        max_position_embeddings=s[prefix + "positional_embedding"][0],
    )
    if prefix + "text_projection" in s:
        config["projection_dim"] = s[prefix + "text_projection"][1]
    return config


def t5_config(template: dict, s: Shapes, prefix: str) -> dict:
    config = copy.deepcopy(template)
    vocab, width = s[prefix + "shared.weight"]
    block = prefix + "encoder.block.0.layer."
    buckets, heads = s[block + "0.SelfAttention.relative_attention_bias.weight"]
    gated = block + "1.DenseReluDense.wi_0.weight" in s
    config.update(
        vocab_size=vocab,
        d_model=width,
        num_layers=len(s.numbers(rf"{re.escape(prefix)}encoder\.block\.(\d+)\.")),
        num_heads=heads,
        relative_attention_num_buckets=buckets,
        d_kv=s[block + "0.SelfAttention.q.weight"][0] // heads,
        d_ff=s[block + ("1.DenseReluDense.wi_0.weight" if gated else "1.DenseReluDense.wi.weight")][0],
        feed_forward_proj="gated-gelu" if gated else "relu",
        is_gated_act=gated,
    )
    return config


# --- transformers (SD 3, FLUX) ------------------------------------------------------------------------------


def _bare(s: Shapes, name: str) -> str:
    return LDM + name if LDM + name in s else name


def sd3_config(template: dict, s: Shapes) -> dict:
    config = copy.deepcopy(template)
    hidden, channels, patch, _ = s[_bare(s, "x_embedder.proj.weight")]
    pre = LDM if s.has_prefix(LDM + "joint_blocks.") else ""
    config.update(
        in_channels=channels,
        patch_size=patch,
        num_layers=len(s.numbers(rf"{re.escape(pre)}joint_blocks\.(\d+)\.")),
        attention_head_dim=HEAD_WIDTH,
        num_attention_heads=max(1, hidden // HEAD_WIDTH),
        joint_attention_dim=s[_bare(s, "context_embedder.weight")][1],
        caption_projection_dim=s[_bare(s, "context_embedder.weight")][0],
        pooled_projection_dim=s[_bare(s, "y_embedder.mlp.0.weight")][1],
        out_channels=s[_bare(s, "final_layer.linear.weight")][0] // (patch * patch),
        pos_embed_max_size=math.isqrt(s[_bare(s, "pos_embed")][1]),
        qk_norm="rms_norm" if any(".attn.ln_q." in k for k in s.shapes) else None,
        dual_attention_layers=s.numbers(rf"{re.escape(pre)}joint_blocks\.(\d+)\.x_block\.attn2\."),
    )
    return config


def rope_axes(head_dim: int) -> list[int]:
    """FLUX.1 splits each 128-wide head 16/56/56 (time, height, width); narrower heads keep the proportions even."""
    if head_dim == 128:
        return [16, 56, 56]
    return [head_dim // 4, 3 * head_dim // 8, 3 * head_dim // 8]


def flux_config(template: dict, s: Shapes) -> dict:
    config = copy.deepcopy(template)
    pre = LDM if s.has_prefix(LDM + "double_blocks.") else ""
    hidden, channels = s[pre + "img_in.weight"]
    head_dim = s[pre + "double_blocks.0.img_attn.norm.key_norm.scale"][0]
    out = s[pre + "final_layer.linear.weight"][0]
    config.update(
        in_channels=channels,
        out_channels=None if out == channels else out,
        num_layers=len(s.numbers(rf"{re.escape(pre)}double_blocks\.(\d+)\.")),
        num_single_layers=len(s.numbers(rf"{re.escape(pre)}single_blocks\.(\d+)\.")),
        attention_head_dim=head_dim,
        num_attention_heads=hidden // head_dim,
        joint_attention_dim=s[pre + "txt_in.weight"][1],
        pooled_projection_dim=s[pre + "vector_in.in_layer.weight"][1],
        guidance_embeds=pre + "guidance_in.in_layer.weight" in s,
        axes_dims_rope=rope_axes(head_dim),
    )
    return config


# --- the whole family ----------------------------------------------------------------------------------------

# Where each text encoder of a family sits in a checkpoint (after companions are merged in, core/companions.py).
CLIP_L_PREFIXES = ("cond_stage_model.transformer.", "conditioner.embedders.0.transformer.", "text_encoders.clip_l.transformer.")
CLIP_G_PREFIXES = ("conditioner.embedders.1.model.", "text_encoders.clip_g.transformer.")


def _first_prefix(s: Shapes, prefixes) -> str | None:
    return next((p for p in prefixes if s.has_prefix(p)), None)


def _text_configs(family: str, templates: dict, s: Shapes) -> dict:
    configs = {}
    if family.startswith("sd2"):
        configs["text_encoder"] = open_clip_config(templates["text_encoder"], s, "cond_stage_model.model.", True)
        return configs
    clip_l = _first_prefix(s, CLIP_L_PREFIXES)
    if clip_l:
        configs["text_encoder"] = clip_config(templates["text_encoder"], s, clip_l)
    clip_g = _first_prefix(s, CLIP_G_PREFIXES)
    if clip_g and "text_encoder_2" in templates and templates["text_encoder_2"].get("model_type") != "t5":
        if clip_g.endswith(".model."):
            configs["text_encoder_2"] = open_clip_config(templates["text_encoder_2"], s, clip_g, False)
        else:
            configs["text_encoder_2"] = clip_config(templates["text_encoder_2"], s, clip_g)
    t5_name = "text_encoder_3" if family.startswith("sd3") else "text_encoder_2"
    if s.has_prefix("text_encoders.t5xxl.transformer.") and t5_name in templates:
        configs[t5_name] = t5_config(templates[t5_name], s, "text_encoders.t5xxl.transformer.")
    return configs


def derive_configs(family: str, s: Shapes) -> dict:
    """Every component's config for this checkpoint: the family's published one, fitted to its shapes."""
    template = family_template(family)
    templates = template["components"]
    configs = dict(templates)
    if "unet" in templates:
        configs["unet"] = unet_config(templates["unet"], s, family)
    elif family.startswith("sd3"):
        configs["transformer"] = sd3_config(templates["transformer"], s)
    else:
        configs["transformer"] = flux_config(templates["transformer"], s)
    configs["vae"] = vae_config(templates["vae"], s, vae_prefix(s))
    configs.update(_text_configs(family, templates, s))
    return {"pipeline": template["pipeline"], "components": configs}


# --- on disk: what diffusers' loaders read ----------------------------------------------------------------------


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP's byte -> printable character table, in the order the vocabulary lists them."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    extra = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(extra))]


def write_clip_vocab(folder: Path) -> None:
    """vocab.json + merges.txt of OpenAI's CLIP tokenizer, built from the shipped BPE merges (as CLIP itself does)."""
    source = paths.assets_dir() / "clip" / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.decompress(source.read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]  # CLIP's own slice of the file
    chars = _bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")


def write_config_folder(family: str, derived: dict) -> Path:
    """A diffusers-layout folder of configs (no weights) in the cache, named by its content: written once."""
    text = json.dumps(derived, sort_keys=True)
    folder = paths.cache_dir() / "single-file-configs" / f"{family}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    if (folder / "model_index.json").is_file():
        return folder
    partial = folder.with_name(folder.name + ".partial")
    index = {"_class_name": derived["pipeline"]}
    for name, config in derived["components"].items():
        if config is None:
            continue
        sub = partial / name
        sub.mkdir(parents=True, exist_ok=True)
        if name.startswith("tokenizer"):
            (sub / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
            write_clip_vocab(sub)
        elif name == "scheduler":
            (sub / "scheduler_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
        else:
            (sub / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
        index[name] = ["diffusers", config.get("_class_name", "")]
    (partial / "model_index.json").write_text(json.dumps(index, indent=1), encoding="utf-8")
    if folder.exists():  # another process finished it meanwhile
        return folder
    partial.rename(folder)
    return folder
