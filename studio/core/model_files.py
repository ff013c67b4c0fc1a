"""What a .safetensors file is, from its header alone: kind, family, parts, dtype — never from its name.

A file's header (checked in full by `catalog.read_safetensors_header`) lists every tensor with its shape, so the
kind of file and the family of a checkpoint can be read without loading a byte of weights (milliseconds on a
23 GB file, no torch). The rules are structural, so they hold for pruned, merged and tiny test models alike:

- SD 1.x / 2.x / SDXL UNets (original "LDM" key names, `model.diffusion_model.input_blocks…`): SDXL has a
  size/crop embedding (`label_emb`); SD 2.x projects into attention with linear layers (2-D `proj_in`) and uses
  OpenCLIP (`cond_stage_model.model.`); SD 1.x uses 1x1 convolutions and OpenAI CLIP. Nine input channels =
  an inpainting model.
- SD 3 / 3.5 (MMDiT, `joint_blocks`): 3.5 Medium adds a second self-attention (`attn2`), 3.5 Large normalises
  queries and keys (`ln_q`) without it, SD 3 Medium has neither.
- FLUX.1 (`double_blocks` / `single_blocks`): dev embeds the guidance (`guidance_in`), schnell does not; Fill
  takes six times the channels it gives back (latents + masked picture + mask).

Also recognised: LoRAs (kohya/A1111, diffusers/PEFT, LyCORIS), textual-inversion embeddings, VAEs, text encoders
(CLIP, OpenCLIP, T5), ControlNets and upscalers, so a folder of an artist's files can be listed and a checkpoint's
missing parts found beside it (`core/companions.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from studio.core.catalog import read_json, read_safetensors_header
from studio.core.jobs import UserError

LDM = "model.diffusion_model."
UNET_CONV_IN = LDM + "input_blocks.0.0.weight"

FAMILY_LABELS = {
    "sd1": "SD 1.x",
    "sd1_inpaint": "SD 1.x inpainting",
    "sd2": "SD 2.x",
    "sd2_inpaint": "SD 2.x inpainting",
    "sdxl": "SDXL",
    "sdxl_inpaint": "SDXL inpainting",
    "sdxl_refiner": "SDXL refiner",
    "sd3": "SD 3 Medium",
    "sd35_medium": "SD 3.5 Medium",
    "sd35_large": "SD 3.5 Large",
    "flux_dev": "FLUX.1 dev",
    "flux_schnell": "FLUX.1 schnell",
    "flux_fill": "FLUX.1 Fill",
}

# The parts a checkpoint of each family is made of. A single file may carry only some of them (FLUX and SD 3
# files often carry the transformer alone); the rest are looked for beside it.
PART_LABELS = {
    "unet": "UNet",
    "transformer": "transformer",
    "vae": "VAE",
    "clip_l": "CLIP-L text encoder",
    "clip_g": "OpenCLIP-G text encoder",
    "openclip_h": "OpenCLIP-H text encoder",
    "t5xxl": "T5-XXL text encoder",
    "t5_tokenizer": "T5 tokenizer (tokenizer.json or spiece.model)",
}
_UNET_PARTS = {"sd1": ("unet", "vae", "clip_l"), "sd2": ("unet", "vae", "openclip_h"),
               "sdxl": ("unet", "vae", "clip_l", "clip_g")}
_FLUX_PARTS = ("transformer", "vae", "clip_l", "t5xxl")
_SD3_PARTS = ("transformer", "vae", "clip_l", "clip_g")  # T5 is optional for SD 3: better prompts, not required


def family_parts(family: str) -> tuple[str, ...]:
    """The parts a model of this family needs to run."""
    if family.startswith("flux"):
        return _FLUX_PARTS
    if family.startswith("sd3"):
        return _SD3_PARTS
    return _UNET_PARTS.get(family.split("_")[0], ())


def family_label(family: str) -> str:
    return FAMILY_LABELS.get(family, family or "unknown")


@dataclass(frozen=True)
class FileFacts:
    kind: str  # checkpoint | lora | embedding | vae | text_encoder | controlnet | upscaler | unknown
    family: str = ""  # checkpoints (and LoRAs/embeddings when their shapes say): a FAMILY_LABELS key
    parts: tuple[str, ...] = ()  # PART_LABELS keys the file carries
    missing: tuple[str, ...] = ()  # PART_LABELS keys the family needs that the file does not carry
    dtype: str = ""  # "fp16", "bf16", "fp32", "fp8", or "fp16 + fp32" when mixed
    tensors: int = 0
    note: str = ""  # for an unknown file: what was recognised, in words
    shapes: dict = field(default_factory=dict, compare=False)  # numbers later steps need (widths, depths)

    @property
    def label(self) -> str:
        if self.kind == "checkpoint":
            return family_label(self.family)
        if self.family:
            return f"{self.kind} for {family_label(self.family)}"
        return self.kind


# --- dtype ------------------------------------------------------------------------------------------

_DTYPE_NAMES = {"F16": "fp16", "BF16": "bf16", "F32": "fp32", "F64": "fp64", "F8_E4M3": "fp8", "F8_E5M2": "fp8"}


def _dtype_of(header: dict) -> str:
    sizes: dict[str, int] = {}
    for entry in header.values():
        name = _DTYPE_NAMES.get(entry["dtype"], entry["dtype"].lower())
        begin, end = entry["data_offsets"]
        sizes[name] = sizes.get(name, 0) + end - begin
    ranked = [name for name, size in sorted(sizes.items(), key=lambda item: -item[1]) if size > 0]
    return " + ".join(ranked[:2])


# --- checkpoints --------------------------------------------------------------------------------------


class _Keys:
    """The header's tensor names and shapes, with the `model.diffusion_model.` prefix optional for transformers."""

    def __init__(self, header: dict):
        self.header = header

    def __contains__(self, key: str) -> bool:
        return key in self.header

    def shape(self, key: str) -> list[int]:
        return self.header[key]["shape"]

    def any_prefix(self, *prefixes: str) -> bool:
        return any(k.startswith(prefixes) for k in self.header)

    def transformer_key(self, name: str) -> str | None:
        for key in (name, LDM + name):
            if key in self.header:
                return key
        return None

    def count(self, pattern: str) -> int:
        """How many distinct block numbers match `pattern` (a regex with one group for the number)."""
        regex = re.compile(pattern)
        return len({m.group(1) for k in self.header if (m := regex.match(k))})


def _text_parts(keys: _Keys) -> list[str]:
    parts = []
    if keys.any_prefix("cond_stage_model.transformer.", "conditioner.embedders.0.transformer.",
                       "text_encoders.clip_l."):
        parts.append("clip_l")
    if keys.any_prefix("cond_stage_model.model."):
        parts.append("openclip_h")
    if keys.any_prefix("conditioner.embedders.1.model.", "text_encoders.clip_g."):
        parts.append("clip_g")
    if keys.any_prefix("text_encoders.t5xxl."):
        parts.append("t5xxl")
    return parts


def _unet_family(keys: _Keys) -> str:
    inpaint = keys.shape(UNET_CONV_IN)[1] == 9
    if keys.any_prefix("conditioner.embedders.0.model.") and not keys.any_prefix("conditioner.embedders.1."):
        return "sdxl_refiner"
    proj_in = next((k for k in keys.header if k.startswith(LDM) and k.endswith(".proj_in.weight")), None)
    linear_projection = proj_in is not None and len(keys.shape(proj_in)) == 2
    cross = next((k for k in keys.header if k.startswith(LDM) and k.endswith("attn2.to_k.weight")), None)
    openclip_h_width = cross is not None and keys.shape(cross)[-1] == 1024  # SD 2.x's text width
    if LDM + "label_emb.0.0.weight" in keys or keys.any_prefix("conditioner.embedders.1."):
        base = "sdxl"
    elif linear_projection or openclip_h_width or keys.any_prefix("cond_stage_model.model."):
        base = "sd2"
    else:
        base = "sd1"
    return f"{base}_inpaint" if inpaint else base


def _sd3_family(keys: _Keys) -> str:
    if any(".x_block.attn2." in k for k in keys.header):
        return "sd35_medium"
    if any(".attn.ln_q." in k for k in keys.header):
        return "sd35_large"
    return "sd3"


def _flux_family(keys: _Keys) -> str:
    img_in, final = keys.transformer_key("img_in.weight"), keys.transformer_key("final_layer.linear.weight")
    if img_in and final and keys.shape(img_in)[1] == 6 * keys.shape(final)[0]:
        return "flux_fill"
    return "flux_dev" if keys.transformer_key("guidance_in.in_layer.weight") else "flux_schnell"


def _checkpoint_facts(keys: _Keys, dtype: str, count: int) -> FileFacts | None:
    text = _text_parts(keys)
    vae = ["vae"] if keys.any_prefix("first_stage_model.", "vae.") else []
    if UNET_CONV_IN in keys:
        family = _unet_family(keys)
        parts = ("unet", *vae, *text)
    elif keys.transformer_key("joint_blocks.0.x_block.attn.qkv.weight"):
        family = _sd3_family(keys)
        parts = ("transformer", *vae, *text)
    elif keys.transformer_key("double_blocks.0.img_attn.qkv.weight"):
        family = _flux_family(keys)
        parts = ("transformer", *vae, *text)
    else:
        return None
    missing = tuple(p for p in family_parts(family) if p not in parts)
    return FileFacts("checkpoint", family, tuple(parts), missing, dtype, count)


# --- adapters, embeddings and loose parts ---------------------------------------------------------------

_LORA_MARKERS = ("lora_up.", "lora_down.", "lora_A.", "lora_B.", "lora.up.", "lora.down.", ".hada_w1_a", ".lokr_w1",
                 "lora_A.weight", ".lora_mid.")


def _lora_family(keys: _Keys) -> str:
    names = keys.header
    if any(k.startswith(("lora_unet_double_blocks", "lora_unet_single_blocks")) or "single_transformer_blocks" in k
           or "double_blocks" in k for k in names):
        return "flux_dev"
    if any("joint_blocks" in k or "context_block" in k for k in names):
        return "sd3"
    if any(k.startswith(("lora_te2_", "lora_te1_", "text_encoder_2.")) for k in names):
        return "sdxl"
    widths = {keys.shape(k)[-1] for k in names if "attn2" in k and "to_k" in k
              and k.endswith(("lora_down.weight", "lora_A.weight")) and len(keys.shape(k)) == 2}
    return {768: "sd1", 1024: "sd2", 2048: "sdxl"}.get(next(iter(widths), 0), "")


_EMBEDDING_WIDTHS = {768: "sd1", 1024: "sd2"}


def _embedding_facts(keys: _Keys, dtype: str, count: int) -> FileFacts | None:
    header = keys.header
    if set(header) >= {"clip_l", "clip_g"} and count == 2:
        vectors = keys.shape("clip_l")[0]
        return FileFacts("embedding", "sdxl", dtype=dtype, tensors=count, shapes={"vectors": vectors})
    if count <= 2 and all(len(e["shape"]) in (1, 2) for e in header.values()):
        name = "emb_params" if "emb_params" in header else next(iter(header))
        # a lone tensor named like a token ("*", "<style>"), not like a module's weight ("a.b.weight")
        lone_vectors = count == 1 and "." not in name and len(keys.shape(name)) == 2
        if name == "emb_params" or name.startswith("string_to_param") or lone_vectors:
            shape = keys.shape(name)
            width = shape[-1]
            vectors = shape[0] if len(shape) == 2 else 1
            family = _EMBEDDING_WIDTHS.get(width, "")
            return FileFacts("embedding", family, dtype=dtype, tensors=count, shapes={"vectors": vectors, "width": width})
    return None


def _vae_facts(keys: _Keys, dtype: str, count: int) -> FileFacts | None:
    for conv_in in ("decoder.conv_in.weight", "first_stage_model.decoder.conv_in.weight", "vae.decoder.conv_in.weight"):
        if conv_in in keys and not keys.any_prefix(LDM, "double_blocks.", "joint_blocks."):
            channels = keys.shape(conv_in)[1]
            layout = "diffusers" if any(".down_blocks." in k for k in keys.header) else "original"
            return FileFacts("vae", "", ("vae",), dtype=dtype, tensors=count,
                             shapes={"latent_channels": channels, "layout": layout})
    return None


def _text_encoder_facts(keys: _Keys, dtype: str, count: int) -> FileFacts | None:
    for embed in ("text_model.embeddings.token_embedding.weight", "embeddings.token_embedding.weight"):
        if embed in keys:
            vocab, width = keys.shape(embed)
            projection = next((keys.shape(k) for k in ("text_projection.weight", "text_projection") if k in keys), None)
            layers = keys.count(r"(?:text_model\.)?encoder\.layers\.(\d+)\.")
            shapes = {"width": width, "vocab": vocab, "layers": layers, "projection": projection}
            return FileFacts("text_encoder", "", ("clip",), dtype=dtype, tensors=count, shapes=shapes)
    for embed in ("shared.weight", "encoder.embed_tokens.weight"):
        if embed in keys and "encoder.block.0.layer.0.SelfAttention.q.weight" in keys:
            vocab, width = keys.shape(embed)
            shapes = {"width": width, "vocab": vocab, "layers": keys.count(r"encoder\.block\.(\d+)\.")}
            return FileFacts("text_encoder", "", ("t5xxl",), dtype=dtype, tensors=count, shapes=shapes)
    return None


def _other_facts(keys: _Keys, dtype: str, count: int) -> FileFacts | None:
    if keys.any_prefix("control_model.", "controlnet_cond_embedding.", "input_hint_block.",
                       "controlnet_down_blocks."):
        return FileFacts("controlnet", "", dtype=dtype, tensors=count)
    if any(k.startswith(("conv_first.", "body.0.rdb1", "model.1.sub.", "layers.0.residual_group")) for k in keys.header):
        return FileFacts("upscaler", "", dtype=dtype, tensors=count)
    return None


def _recognised(keys: _Keys) -> str:
    """In words, what an unknown file seems to hold: the top-level names of its tensors."""
    roots: dict[str, int] = {}
    for key in keys.header:
        root = key.split(".")[0] if not key.startswith(LDM) else LDM.rstrip(".") + "." + key[len(LDM):].split(".")[0]
        roots[root] = roots.get(root, 0) + 1
    top = sorted(roots.items(), key=lambda item: -item[1])[:4]
    return ", ".join(f"{name}… ({n})" for name, n in top)


def classify_header(header: dict) -> FileFacts:
    """The facts of a file from its (checked) safetensors header."""
    keys = _Keys(header)
    dtype, count = _dtype_of(header), len(header)
    if any(marker in k for k in header for marker in _LORA_MARKERS) or any(
            k.startswith(("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_", "lycoris_")) for k in header):
        return FileFacts("lora", _lora_family(keys), dtype=dtype, tensors=count)
    for reader in (_checkpoint_facts, _embedding_facts, _vae_facts, _text_encoder_facts, _other_facts):
        facts = reader(keys, dtype, count)
        if facts is not None:
            return facts
    return FileFacts("unknown", dtype=dtype, tensors=count, note=_recognised(keys) if header else "no tensors")


def describe_file(path: Path) -> FileFacts:
    """The facts of a .safetensors file (header only). Raises CorruptModelError for a damaged header."""
    return classify_header(read_safetensors_header(Path(path)))


def checkpoint_facts(path: Path) -> FileFacts:
    """A checkpoint's facts, or a UserError that says what the file is instead, or what was recognised in it."""
    path = Path(path)
    facts = describe_file(path)
    if facts.kind == "checkpoint":
        if facts.family == "sdxl_refiner":
            raise UserError(f"{path.name} is an SDXL refiner: it refines SDXL images and cannot start one.")
        return facts
    if facts.kind in ("lora", "embedding", "vae", "text_encoder", "controlnet", "upscaler"):
        what = {"lora": "a LoRA", "embedding": "a textual-inversion embedding", "vae": "a VAE",
                "text_encoder": "a text encoder", "controlnet": "a ControlNet", "upscaler": "an upscaler"}[facts.kind]
        raise UserError(
            f"{path.name} is {what}, not a model on its own: LoRAs, VAEs, embeddings and text encoders are used "
            "with a checkpoint (put them in a model folder; the model manager lists them)."
        )
    raise UserError(
        f"{path.name} is not an image model this app knows: no SD 1.x/2.x/SDXL UNet, SD 3 MMDiT or FLUX transformer "
        f"in its {facts.tensors:,} tensors. Recognised: {facts.note}."
    )


# --- a diffusers folder's family -------------------------------------------------------------------------


def _folder_unet_family(folder: Path, index: dict) -> str:
    unet = read_json(folder / "unet" / "config.json")
    if "text_encoder_2" in index and index.get("text_encoder_2", [None])[0]:
        base = "sdxl"
    elif unet.get("use_linear_projection") or unet.get("cross_attention_dim") == 1024:
        base = "sd2"
    else:
        base = "sd1"  # the built-in models are SD 1.x-shaped UNets too
    return f"{base}_inpaint" if unet.get("in_channels") == 9 else base


def _folder_transformer_family(folder: Path, index: dict) -> str | None:
    config = read_json(folder / "transformer" / "config.json")
    name = config.get("_class_name")
    if name == "SD3Transformer2DModel":
        if config.get("dual_attention_layers"):
            return "sd35_medium"
        return "sd35_large" if config.get("qk_norm") else "sd3"
    if name == "FluxTransformer2DModel":
        if index.get("_class_name") == "FluxFillPipeline":
            return "flux_fill"
        return "flux_dev" if config.get("guidance_embeds") else "flux_schnell"
    return None


def folder_family(folder: Path) -> str:
    """A diffusers folder's family, from its model_index.json and component configs (no weights read)."""
    index = read_json(folder / "model_index.json")
    if (folder / "unet" / "config.json").exists():
        return _folder_unet_family(folder, index)
    if (folder / "transformer" / "config.json").exists():
        family = _folder_transformer_family(folder, index)
        if family:
            return family
    raise UserError(
        f"{folder.name} is a {index.get('_class_name', 'diffusers')} model; Latent Studio runs SD 1.x, 2.x, SDXL, "
        "SD 3/3.5 and FLUX.1 models (and the built-in ones)."
    )
