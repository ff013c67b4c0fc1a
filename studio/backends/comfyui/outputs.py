"""A job's way to and from a ComfyUI server: its pictures uploaded and its workflow built (`prepare`), each output
fetched back made into an Artifact with the recipe that remakes it, and the server's errors in words.

What is sent is what the job needs: the workflow, and the starting picture and mask resized to the job's size, named
by their content hash (never by the user's file names or folders). Our recipe itself stays here.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import replace
from io import BytesIO
from pathlib import Path

from studio.backends.comfyui.http import Http
from studio.backends.comfyui.info import ServerInfo
from studio.backends.comfyui.ui_graph import ui_workflow
from studio.backends.comfyui.workflow import Plan, Uploads, audio_kind, audio_plan, image_mode, image_plan, snap
from studio.core.jobs import Artifact, Job, UserError

MESSAGE_CHARS = 300  # a refusal or an error is one line in the Jobs dock


def _png(picture) -> bytes:
    buffer = BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _content_name(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return f"latent-studio-{digest.hexdigest()[:20]}.png"


def _read_pictures(recipe, mode: str) -> tuple[bytes, bytes | None]:
    """The starting picture (RGB) and, for inpainting, the mask as an alpha channel (white in our mask = repaint =
    transparent, which is what ComfyUI's LoadImage reads as MASK 1), both at the job's size."""
    from PIL import Image

    size = None
    if recipe.param("width") and recipe.param("height"):
        size = (snap(recipe.param("width")), snap(recipe.param("height")))
    try:
        with Image.open(Path(recipe.param("init_image"))) as opened:
            picture = opened.convert("RGB")
        size = size or (snap(picture.width), snap(picture.height))
        picture = picture.resize(size, Image.Resampling.LANCZOS) if picture.size != size else picture
        if mode != "inpaint":
            return _png(picture), None
        with Image.open(Path(recipe.param("mask_image"))) as opened:
            mask = opened.convert("L").resize(size, Image.Resampling.LANCZOS)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"could not read the {mode} picture: {exc}") from exc
    alpha = Image.new("RGBA", size, (0, 0, 0, 255))
    alpha.putalpha(mask.point(lambda v: 255 - v))
    return _png(picture), _png(alpha)


async def upload_pictures(recipe, http: Http) -> Uploads:
    mode = image_mode(recipe)
    if mode == "txt2img":
        return Uploads()
    if not recipe.param("init_image") or (mode == "inpaint" and not recipe.param("mask_image")):
        raise UserError(f"{mode} needs a starting image" + (" and a mask" if mode == "inpaint" else ""))
    picture, mask = await asyncio.get_running_loop().run_in_executor(None, _read_pictures, recipe, mode)
    uploaded = await http.upload("/upload/image", _content_name(picture), picture, {"type": "input", "overwrite": "true"})
    name = str(uploaded["name"])
    if mask is None:
        return Uploads(init_image=name)
    reference = json.dumps({"filename": name, "subfolder": str(uploaded.get("subfolder", "")), "type": "input"})
    masked = await http.upload("/upload/mask", _content_name(picture, mask), mask,
                               {"type": "input", "overwrite": "true", "original_ref": reference})
    return Uploads(init_image=name, masked_image=str(masked["name"]))


async def prepare(job: Job, prompt_id: str, client_id: str, http: Http, info: ServerInfo) -> tuple[Plan, dict]:
    """The job's plan and the body of its POST /prompt (the editor's graph rides along as extra_pnginfo, so the
    server's SaveImage writes it into the PNG as ComfyUI's own editor would)."""
    recipe = job.recipe
    if recipe is None:
        raise UserError("a ComfyUI job needs a recipe")
    checkpoints = info.folders.get("checkpoints", [])
    if recipe.model not in checkpoints:
        raise UserError(f"The checkpoint '{recipe.model}' is not on this server (it has: {', '.join(checkpoints) or 'none'}).")
    if recipe.modality == "image":
        plan = image_plan(recipe, info.folders.get("loras", []), await upload_pictures(recipe, http))
    else:
        kind = audio_kind(recipe.model, set(info.nodes), info.folders.get("text_encoders", []))
        if kind is None:
            raise UserError(f"'{recipe.model}' is not an audio checkpoint this server has the ACE-Step or Stable Audio "
                            "nodes for.")
        plan = audio_plan(recipe, kind, info.folders.get("text_encoders", []))
    body = {"prompt": plan.graph, "client_id": client_id, "prompt_id": prompt_id,
            "extra_data": {"extra_pnginfo": {"workflow": ui_workflow(plan.graph, info.nodes)}}}
    return plan, body


def artifact(job: Job, plan: Plan, node: str, content: bytes, server: str, info: ServerInfo | None) -> Artifact:
    """One fetched output with the recipe that remakes it (seed of its picture, where it ran)."""
    index, _seed = plan.outputs[node]
    recipe = plan.recipes[index].with_params(backend=server)
    recipe = replace(recipe, device=f"ComfyUI {info.version} · {info.device}" if info else "ComfyUI")
    extras = {"server": server, "batch_index": index, **({"notes": list(plan.notes)} if plan.notes else {})}
    if job.recipe is not None and job.recipe.modality != "image":
        import soundfile

        samples, rate = soundfile.read(BytesIO(content), dtype="float32")
        return Artifact("audio", recipe, (samples, rate), info={**extras, "audio_format": "flac"})
    from PIL import Image

    with Image.open(BytesIO(content)) as opened:
        text = dict(getattr(opened, "text", {}) or {})
        picture = opened.convert("RGB")
    # ComfyUI's SaveImage wrote `prompt` and `workflow`; a server run with --disable-metadata didn't: ours then.
    workflow = text.get("workflow") or json.dumps(ui_workflow(plan.graph, info.nodes if info else {}))
    png_text = {"prompt": text.get("prompt") or json.dumps(plan.graph), "workflow": workflow}
    return Artifact("image", recipe, picture, info={**extras, "png_text": png_text})


def _clip(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def refusal(answer) -> str:
    """POST /prompt's 400: the error and each node's reasons (execution.py validate_prompt), in one line."""
    if not isinstance(answer, dict):
        return _clip(answer or "no reason given")
    error = answer.get("error") or {}
    text = error.get("message", "invalid workflow") if isinstance(error, dict) else str(error)
    reasons = []
    for node in (answer.get("node_errors") or {}).values():
        for reason in node.get("errors", []):
            reasons.append(f"{node.get('class_type', '?')}: {reason.get('message', '')} ({reason.get('details', '')})")
    return _clip(f"{text}: {'; '.join(reasons)}" if reasons else text)


def execution_error(server: str, data: dict) -> str:
    message = str(data.get("exception_message", "")).strip().splitlines()
    return _clip(f"ComfyUI on {server} failed in {data.get('node_type', 'a node')}: "
                 f"{message[0] if message else data.get('exception_type', 'unknown error')}")
