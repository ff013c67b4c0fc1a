"""Single-file checkpoints (A1111 / ComfyUI / Civitai layout) of every family, loaded with no network.

1. The file's header says its family and which parts it carries (`core/model_files.py`); parts it lacks (FLUX's
   VAE and text encoders, SD 3's T5) are found beside it (`core/companions.py`) or named in one message.
2. Its tensors, and those of the parts found beside it under the names an all-in-one file would give them, form
   one state dict; the family's shipped configuration fitted to its shapes is written to the cache
   (`family_configs.py`).
3. Each component is built by diffusers' own converters (UNet, VAE, CLIP/OpenCLIP, T5, SD 3's MMDiT); FLUX's
   transformer by ours below, because diffusers' hard-codes FLUX.1's width (3072).
4. The pipeline is put together from the components: nothing asks the hub for anything.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from studio.core.companions import Companions, find_companions
from studio.core.jobs import UserError
from studio.core.model_files import PART_LABELS, FileFacts, checkpoint_facts, family_label
from studio.engine.image.family_configs import (
    CLIP_G_PREFIXES,
    CLIP_L_PREFIXES,
    CLIP_VOCAB_SIZE,
    LDM,
    Shapes,
    derive_configs,
    write_config_folder,
)

T5_PREFIX = "text_encoders.t5xxl.transformer."


def needs_files_message(path: Path, facts: FileFacts, missing: tuple[str, ...]) -> str:
    names = ", ".join(PART_LABELS.get(p, p) for p in missing)
    return (
        f"{path.name} is a {family_label(facts.family)} checkpoint without its {names}. Put the file(s) beside it "
        "(or in a vae/, clip/ or text_encoders/ folder next to its folder, as ComfyUI and Forge keep them)."
    )


# --- one state dict: the checkpoint plus the parts found beside it ------------------------------------------


def _read(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def _merge_companions(checkpoint: dict, companions: Companions) -> None:
    """Add the parts found beside the checkpoint under the names an all-in-one file gives them."""
    for part, path in companions.files.items():
        tensors = _read(path)
        if part == "vae":
            layout_prefix = "" if any(k.startswith(("first_stage_model.", "vae.")) for k in tensors) else "vae."
            checkpoint.update({layout_prefix + k: v for k, v in tensors.items()})
        elif part in ("clip_l", "clip_g"):
            prefix = f"text_encoders.{part}.transformer."
            for key, value in tensors.items():
                nested = key if key.startswith(("text_model.", "text_projection", "logit_scale")) else "text_model." + key
                checkpoint[prefix + nested] = value
        elif part == "t5xxl":
            if "shared.weight" not in tensors and "encoder.embed_tokens.weight" in tensors:
                tensors["shared.weight"] = tensors["encoder.embed_tokens.weight"]
            checkpoint.update({T5_PREFIX + k: v for k, v in tensors.items()})


def _prediction_type(path: Path, checkpoint: dict, default: str) -> str:
    """SD 2.x 768 models predict v, the 512 base predicts noise; the weights can't tell. A1111 keeps a .yaml of
    the training config beside such checkpoints: read it when it is there (a few lines, safe_load)."""
    if "v_pred" in checkpoint:  # ComfyUI and some trainers mark v-prediction models with this key
        return "v_prediction"
    yaml_path = path.with_suffix(".yaml")
    if yaml_path.is_file() and yaml_path.stat().st_size < 1_000_000:
        import yaml

        try:
            config = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
            parameterization = config.get("model", {}).get("params", {}).get("parameterization", "eps")
        except (yaml.YAMLError, AttributeError, OSError, UnicodeDecodeError):
            return default
        return "v_prediction" if parameterization == "v" else "epsilon"
    return default


# --- FLUX's transformer (ours: diffusers' converter assumes a 3072-wide model) ----------------------------------


def _swap_scale_shift(weight):
    import torch

    shift, scale = weight.chunk(2, dim=0)
    return torch.cat([scale, shift], dim=0)


_FLUX_PLAIN = {
    "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
    "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
    "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
    "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
    "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2",
    "txt_in": "context_embedder",
    "img_in": "x_embedder",
    "final_layer.linear": "proj_out",
}
_FLUX_DOUBLE = {
    "img_mod.lin": "norm1.linear", "txt_mod.lin": "norm1_context.linear",
    "img_attn.norm.query_norm.scale": "attn.norm_q.weight", "img_attn.norm.key_norm.scale": "attn.norm_k.weight",
    "txt_attn.norm.query_norm.scale": "attn.norm_added_q.weight", "txt_attn.norm.key_norm.scale": "attn.norm_added_k.weight",
    "img_mlp.0": "ff.net.0.proj", "img_mlp.2": "ff.net.2", "txt_mlp.0": "ff_context.net.0.proj", "txt_mlp.2": "ff_context.net.2",
    "img_attn.proj": "attn.to_out.0", "txt_attn.proj": "attn.to_add_out",
}
_FLUX_SINGLE = {"modulation.lin": "norm.linear", "norm.query_norm.scale": "attn.norm_q.weight",
                "norm.key_norm.scale": "attn.norm_k.weight", "linear2": "proj_out"}


def _rename(rest: str, table: dict[str, str]) -> str | None:
    for ours, theirs in table.items():
        if rest == ours or rest.startswith(ours + "."):
            return theirs + rest[len(ours):]
    return None


def flux_to_diffusers(checkpoint: dict) -> dict:
    """FLUX.1's original names -> diffusers' FluxTransformer2DModel, widths taken from the tensors."""
    import torch

    state = {k[len(LDM):] if k.startswith(LDM) else k: v for k, v in checkpoint.items()
             if k.startswith((LDM, "double_blocks.", "single_blocks.")) or k.split(".")[0] in
             ("time_in", "vector_in", "guidance_in", "txt_in", "img_in", "final_layer")}
    hidden = state["img_in.weight"].shape[0]
    out = {}
    for key, value in state.items():
        block, _, rest = key.partition(".")
        if block == "double_blocks":
            number, _, rest = rest.partition(".")
            prefix = f"transformer_blocks.{number}."
            if rest.startswith(("img_attn.qkv.", "txt_attn.qkv.")):
                names = ("to_q", "to_k", "to_v") if rest.startswith("img") else ("add_q_proj", "add_k_proj", "add_v_proj")
                for name, part in zip(names, torch.chunk(value, 3, dim=0), strict=True):
                    out[f"{prefix}attn.{name}.{rest.rsplit('.', 1)[1]}"] = part
            else:
                out[prefix + _rename(rest, _FLUX_DOUBLE)] = value
        elif block == "single_blocks":
            number, _, rest = rest.partition(".")
            prefix = f"single_transformer_blocks.{number}."
            if rest.startswith("linear1."):
                kind = rest.rsplit(".", 1)[1]
                q, k, v, mlp = torch.split(value, (hidden, hidden, hidden, value.shape[0] - 3 * hidden), dim=0)
                for name, part in (("attn.to_q", q), ("attn.to_k", k), ("attn.to_v", v), ("proj_mlp", mlp)):
                    out[f"{prefix}{name}.{kind}"] = part
            else:
                out[prefix + _rename(rest, _FLUX_SINGLE)] = value
        elif key.startswith("final_layer.adaLN_modulation.1."):
            out["norm_out.linear." + key.rsplit(".", 1)[1]] = _swap_scale_shift(value)
        else:
            out[_rename(key, _FLUX_PLAIN)] = value
    return out


def _flux_transformer(checkpoint: dict, folder: Path, torch_dtype):
    import diffusers

    config = diffusers.FluxTransformer2DModel.load_config(str(folder), subfolder="transformer")
    model = diffusers.FluxTransformer2DModel.from_config(config)
    missing, unexpected = model.load_state_dict(flux_to_diffusers(checkpoint), strict=False)
    if missing or unexpected:
        raise UserError(f"the FLUX transformer's tensors do not fit its shapes (missing {missing[:3]}, extra {unexpected[:3]})")
    return model.to(torch_dtype).eval()


# --- the components ------------------------------------------------------------------------------------------


def _text_encoder(cls_name: str, checkpoint: dict, folder: Path, subfolder: str, torch_dtype):
    import transformers
    from diffusers.loaders.single_file_utils import (
        create_diffusers_clip_model_from_ldm,
        create_diffusers_t5_model_from_checkpoint,
    )

    cls = getattr(transformers, cls_name)
    if cls_name == "T5EncoderModel":  # diffusers leaves this one in training mode (dropout on): eval() it
        return create_diffusers_t5_model_from_checkpoint(cls, checkpoint, subfolder=subfolder, config=str(folder),
                                                         torch_dtype=torch_dtype, local_files_only=True).eval()
    return create_diffusers_clip_model_from_ldm(cls, checkpoint, subfolder=subfolder, config=str(folder),
                                                torch_dtype=torch_dtype, local_files_only=True)


# Which transformers class each family's text encoders are (diffusers' pipelines take exactly these).
TEXT_ENCODERS = {
    "sd1": {"text_encoder": "CLIPTextModel"},
    "sd2": {"text_encoder": "CLIPTextModel"},
    "sdxl": {"text_encoder": "CLIPTextModel", "text_encoder_2": "CLIPTextModelWithProjection"},
    "sd3": {"text_encoder": "CLIPTextModelWithProjection", "text_encoder_2": "CLIPTextModelWithProjection",
            "text_encoder_3": "T5EncoderModel"},
    "flux": {"text_encoder": "CLIPTextModel", "text_encoder_2": "T5EncoderModel"},
}


def _base(family: str) -> str:
    return "flux" if family.startswith("flux") else family.split("_")[0].replace("sd35", "sd3")


def _check_clip_vocabulary(checkpoint: dict, path: Path) -> None:
    s = Shapes.of({k: v for k, v in checkpoint.items() if "token_embedding" in k})
    for key, shape in s.shapes.items():
        if shape[0] != CLIP_VOCAB_SIZE:
            raise UserError(
                f"{path.name}: its text encoder has a vocabulary of {shape[0]:,} tokens, not CLIP's {CLIP_VOCAB_SIZE:,}, "
                "so the CLIP tokenizer that ships with the app does not fit it. Choose a diffusers folder of the same "
                f"model as its configuration (…) to load it with that folder's tokenizer ({key})."
            )


def _tokenizers(family: str, folder: Path, companions: Companions) -> dict:
    import transformers

    found = {"tokenizer": transformers.CLIPTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True)}
    if (folder / "tokenizer_2").is_dir():
        found["tokenizer_2"] = transformers.CLIPTokenizer.from_pretrained(str(folder / "tokenizer_2"), local_files_only=True)
    t5_slot = "tokenizer_3" if _base(family) == "sd3" else "tokenizer_2"
    if companions.use_t5 or family.startswith("flux"):
        found[t5_slot] = transformers.AutoTokenizer.from_pretrained(str(companions.t5_tokenizer), local_files_only=True,
                                                                   trust_remote_code=False)
    return found


def build_components(family: str, checkpoint: dict, folder: Path, derived: dict, companions: Companions, torch_dtype):
    import diffusers

    s = Shapes.of(checkpoint)
    components = {}
    if "unet" in derived["components"]:
        components["unet"] = diffusers.UNet2DConditionModel.from_single_file(
            checkpoint, config=str(folder), subfolder="unet", torch_dtype=torch_dtype, local_files_only=True)
    elif family.startswith("sd3"):
        components["transformer"] = diffusers.SD3Transformer2DModel.from_single_file(
            checkpoint, config=str(folder), subfolder="transformer", torch_dtype=torch_dtype, local_files_only=True)
    else:
        components["transformer"] = _flux_transformer(checkpoint, folder, torch_dtype)
    components["vae"] = diffusers.AutoencoderKL.from_single_file(
        checkpoint, config=str(folder), subfolder="vae", torch_dtype=torch_dtype, local_files_only=True)
    for slot, cls_name in TEXT_ENCODERS[_base(family)].items():
        if cls_name == "T5EncoderModel" and not (companions.use_t5 and s.has_prefix(T5_PREFIX)):
            components[slot] = None
            continue
        components[slot] = _text_encoder(cls_name, checkpoint, folder, slot, torch_dtype)
    components.update(_tokenizers(family, folder, companions))
    scheduler_config = derived["components"]["scheduler"]
    components["scheduler"] = getattr(diffusers, scheduler_config["_class_name"]).from_config(scheduler_config)
    return components


def _assemble(pipeline_name: str, components: dict):
    import diffusers

    cls = getattr(diffusers, pipeline_name)
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in components.items() if k in accepted}
    for optional in ("safety_checker", "feature_extractor", "image_encoder", "tokenizer_3", "text_encoder_3"):
        if optional in accepted and optional not in kwargs:
            kwargs[optional] = None
    if "requires_safety_checker" in accepted:
        kwargs["requires_safety_checker"] = False  # an artist's tool, like A1111: no NSFW filter
    return cls(**kwargs)


def load_single_file(path: Path, torch_dtype, extra_folders: tuple[Path, ...] = ()) -> tuple:
    """(pipeline, family, notes) for a single-file checkpoint, with nothing from the network."""
    from studio.core.model_folders import added_folders

    path = Path(path)
    facts = checkpoint_facts(path)
    extra = extra_folders + tuple(added_folders())  # the user's model folders hold parts too
    companions = find_companions(path, facts, extra)
    if companions.missing:
        raise UserError(needs_files_message(path, facts, companions.missing))
    checkpoint = _read(path)
    _merge_companions(checkpoint, companions)
    if _base(facts.family) in ("sd1", "sd2", "sdxl"):
        _check_clip_vocabulary({k: v for k, v in checkpoint.items() if k.startswith(CLIP_L_PREFIXES + CLIP_G_PREFIXES
                                                                                   + ("cond_stage_model.",))}, path)
    derived = derive_configs(facts.family, Shapes.of(checkpoint))
    scheduler = derived["components"]["scheduler"]
    if "prediction_type" in scheduler:
        scheduler["prediction_type"] = _prediction_type(path, checkpoint, scheduler["prediction_type"])
    folder = write_config_folder(facts.family, derived)
    components = build_components(facts.family, checkpoint, folder, derived, companions, torch_dtype)
    del checkpoint
    notes = list(companions.notes)
    if companions.files:
        notes.append("Parts found beside the checkpoint: " + ", ".join(
            f"{PART_LABELS[p]} ({f.name})" for p, f in companions.files.items()) + ".")
    return _assemble(derived["pipeline"], components), facts.family, notes
