"""A picked checkpoint of a Train-tab run saved as an adapter folder with its card (layout: studio/core/adapters.py).

Text and music: a PEFT LoRA folder (adapter_config.json + adapter_model.safetensors), which PEFT and the app load.
Images: diffusers' LoRA file (pytorch_lora_weights.safetensors, read by `load_lora_weights`) and the same weights
in kohya's key layout (<name>.safetensors: lora_unet_… / lora_te_… with .alpha), the file A1111, ComfyUI, InvokeAI and
SD.Next load from their LoRA folders. Both are written from the checkpoint's tensors: no model is loaded to save.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from studio.core import adapters as lora
from studio.core.jobs import Result, UserError
from studio.training import run as run_files
from studio.training.finetune import STATE_FILE, RunFolder, slug


def _split(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def kohya_state_dict(tensors: dict) -> dict:
    """Our checkpoint's PEFT tensors ("unet.…", "text_encoder.…") in kohya's layout, via diffusers' converter.

    Two fixes for SD 1.x/2.x: one text encoder is `lora_te_` in kohya's files (`lora_te1_` is SDXL's first of two),
    and transformers 5's CLIPTextModel has no `text_model.` level, which kohya's names keep."""
    from diffusers.utils import convert_state_dict_to_kohya

    text = {k if k.startswith("text_model.") else f"text_model.{k}": v
            for k, v in _split(tensors, "text_encoder.").items()}
    peft = {**{f"unet.{k}": v for k, v in _split(tensors, "unet.").items()},
            **{f"text_encoder.{k}": v for k, v in text.items()}}
    converted = convert_state_dict_to_kohya(peft)
    return {(f"lora_te_{k[len('lora_te1_'):]}" if k.startswith("lora_te1_") else k): v.contiguous()
            for k, v in converted.items()}


def write_image_weights(target: Path, tensors: dict, name: str, record: dict) -> dict:
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers

    unet, text = _split(tensors, "unet."), _split(tensors, "text_encoder.")
    StableDiffusionPipeline.save_lora_weights(
        str(target), unet_lora_layers=convert_state_dict_to_diffusers(unet),
        text_encoder_lora_layers=convert_state_dict_to_diffusers(text) if text else None, safe_serialization=True)
    rank = int(record["settings"]["rank"])
    metadata = {"ss_network_module": "networks.lora", "ss_network_dim": str(rank), "ss_network_alpha": str(rank),
                "ss_output_name": name, "ss_base_model_version": "sd_v1", "ss_training_comment":
                f"Latent Studio Train tab; base {record['base_model']} ({record['base_hash']}); "
                f"trigger {record['settings'].get('trigger') or '-'}"}
    kohya = f"{slug(name)}.safetensors"
    run_files.save_weights(kohya_state_dict(tensors), target / kohya, metadata=metadata)
    return {"weights": lora.DIFFUSERS_WEIGHTS, "kohya": kohya, "format": "diffusers-lora"}


def write_peft_weights(target: Path, tensors: dict, record: dict) -> dict:
    from studio.core import catalog

    if record["settings"]["medium"] == "text":
        from studio.training.finetune_text import lora_config
    else:
        from studio.training.finetune_music import lora_config
    base = catalog.resolve(record["base_model"])
    lora_config(int(record["settings"]["rank"]), str(base.path)).save_pretrained(str(target))
    run_files.save_weights(tensors, target / lora.PEFT_WEIGHTS)
    return {"weights": lora.PEFT_WEIGHTS, "format": "peft-lora"}


def loss_curve(history: list, checkpoints: list, path: Path, step: int) -> None:
    with run_files.figure(path, (6, 3), 100) as axes:
        if history:
            steps, losses = zip(*history, strict=False)
            axes.plot(steps, losses, lw=0.6, alpha=0.5, label="training loss")
        scored = [(c["step"], c["score"]) for c in checkpoints if c.get("score") is not None]
        if scored:
            axes.plot(*zip(*scored, strict=False), "o-", label="checkpoint score")
        axes.axvline(step, color="k", lw=0.8, ls="--")
        axes.set_xlabel("step")
        axes.legend(fontsize=7)


def write_samples(checkpoint: Path, target: Path, record: dict) -> str:
    """The picked checkpoint's samples beside the card; returns the card's lines about them."""
    if (checkpoint / "samples.png").exists():
        shutil.copyfile(checkpoint / "samples.png", target / "samples.png")
        return "![samples](samples.png)\n\nRows: the prompts below; columns: fixed seeds."
    if not (checkpoint / "samples.json").exists():
        return "(no samples at this step)"
    samples = json.loads((checkpoint / "samples.json").read_text())
    if samples.get("kind") == "text":
        return "\n\n".join(f"> {text.strip()}" for text in samples["texts"])
    from studio.engine.music.midi import write_midi
    from studio.engine.music.piece import MusicPiece, Note

    lines = []
    for index, piece in enumerate(samples.get("pieces", []), 1):
        notes = [Note(int(p), float(s), float(d), int(v), int(voice)) for p, s, d, v, voice in piece["notes"]]
        write_midi(MusicPiece(notes, piece["tempo"], piece["key"], piece["metre"]), target / f"sample-{index}.mid")
        lines.append(f"- [sample-{index}.mid](sample-{index}.mid): {piece['key']}, {piece['metre']}, "
                     f"{len(notes)} notes")
    return "\n".join(lines)


def card_text(info: dict, record: dict, state: dict, samples: str) -> str:
    settings, plan = record["settings"], record["plan"]
    scored = [c for c in state["checkpoints"] if c.get("score") is not None]
    scores = "\n".join(f"| {c['step']} | {c['score']:.4f} |" for c in scored)
    trigger = settings.get("trigger") or "(none: the adapter changes everything the model makes)"
    return f"""# {info['name']} — an adapter for {record['base_model']}

Trained in Latent Studio's Train tab on {info['created']}.

- Medium: {settings['medium']}; format: {info['format']} (LoRA rank {settings['rank']}, alpha {settings['rank']})
- Base model: `{record['base_model']}`, hash `{record['base_hash']}` (the adapter fits this model)
- Trigger word: {trigger}
- Data: `{settings['folder']}` — {len(record['items'])} items; {json.dumps(info.get('data', {}))}
- Steps: {info['step']} of {plan['steps']} (batch {plan['batch']}, peak learning rate {plan['learning_rate']:.2e},
  strength {settings['strength']}, seed {settings['seed']}); {state.get('seconds', 0) / 60:.1f} min of training
- Weights: `{info['weights']}` (sha256 {info['sha256']}){f"; kohya format `{info['kohya']}`" if info.get('kohya') else ''}

## Loss

![loss curve](loss_curve.png)

| step | score ({info.get('score_name', 'held-out loss')}) |
| --- | --- |
{scores}

## Samples at step {info['step']}

Prompts: {', '.join(repr(p) for p in info.get('prompts', []))}

{samples}
"""


def save_adapter(folder: RunFolder, record: dict, step: int, name: str, out: Path | None = None) -> Path:
    """The checkpoint at `step` as an adapter folder (replacing an older one of the same name); returns it."""
    from safetensors.torch import load_file

    checkpoint = folder.checkpoint_dir(step)
    final = Path(out) if out else lora.adapters_dir() / slug(name)
    target = final.with_name(final.name + ".tmp")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    tensors = load_file(str(checkpoint / "lora.safetensors"))
    medium = record["settings"]["medium"]
    files = write_image_weights(target, tensors, name, record) if medium == "image" else \
        write_peft_weights(target, tensors, record)
    state = json.loads((checkpoint / STATE_FILE).read_text())
    samples_meta = json.loads((checkpoint / "samples.json").read_text()) if (checkpoint / "samples.json").exists() \
        else {}
    from studio.core.catalog import content_hash

    info = {"name": name, "medium": medium, "base_model": record["base_model"], "base_hash": record["base_hash"],
            "trigger": record["settings"].get("trigger", ""), "step": step, "steps": record["plan"]["steps"],
            "rank": record["settings"]["rank"], "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "data": record.get("data", {"items": len(record["items"])}), "prompts": samples_meta.get("prompts", []),
            "score_name": record.get("score_name", ""), "run": str(folder.dir), **files,
            "sha256": content_hash(target / files["weights"])}
    loss_curve(state.get("history", []), state.get("checkpoints", []), target / "loss_curve.png", step)
    samples = write_samples(checkpoint, target, record)
    (target / "MODEL_CARD.md").write_text(card_text(info, record, state, samples), encoding="utf-8")
    (target / lora.ADAPTER_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")
    run_files.replace_folder(target, final)
    return final


def save_task(job, ctx) -> Result:
    """Engine job "train.save": the checkpoint at job.args["step"] as an adapter (folder, card, other formats)."""
    folder = RunFolder(Path(job.args["run_dir"]))
    if not folder.exists():
        raise UserError(f"{folder.dir} is not a training run")
    step = int(job.args.get("step") or folder.state()["step"])
    checkpoint = folder.checkpoint_dir(step)
    if not (checkpoint / "lora.safetensors").exists():
        raise UserError(f"the run has no checkpoint at step {step}")
    record = folder.read()
    target = save_adapter(folder, record, step, str(job.args.get("name") or record["name"]),
                          job.args.get("out") and Path(job.args["out"]))
    return Result(value={"adapter": str(target), "medium": record["settings"]["medium"]})
