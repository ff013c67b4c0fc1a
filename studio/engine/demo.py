"""A clearly labelled demo job: no model, just a seeded torch computation with real steps.

It exercises the whole path (queue, progress, previews, cancel, history, export) before
a generator is installed, and it is what the worker's start-up warm-up runs.
"""

from __future__ import annotations

import time
from dataclasses import replace

from studio.engine.jobs import Artifact, Job, Progress, Result, TaskContext

DEMO_MODEL = "demo:plasma"


def _plasma(seed: int, size: int, steps: int, ctx: TaskContext):
    """Smooth coloured noise sharpened step by step: something to watch, not a model."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    field = torch.randn(1, 3, size // 8, size // 8, generator=generator)
    image = torch.zeros(1, 3, size, size)
    for step in range(1, steps + 1):
        ctx.check()
        detail = torch.nn.functional.interpolate(field, size=(size, size), mode="bicubic", align_corners=False)
        image = image + (detail - image) / (steps - step + 1)
        field = torch.cat([field, torch.randn(1, 3, *field.shape[2:], generator=generator)], 0).mean(0, keepdim=True)
        ctx.report(Progress(step, steps, preview=_to_pil(image), message="demo (no model)"))
    return _to_pil(image)


def _to_pil(tensor):
    from PIL import Image

    array = (tensor[0].permute(1, 2, 0).tanh() * 0.5 + 0.5).clamp(0, 1).mul(255).byte().numpy()
    return Image.fromarray(array, "RGB")


def generate_task(job: Job, ctx: TaskContext) -> Result:
    recipe = job.recipe
    steps = int(recipe.param("steps", 20))
    size = int(recipe.param("width", 256))
    recipe = replace(recipe, model=DEMO_MODEL, device=ctx.device.device, dtype="float32")
    if recipe.modality == "text":
        text = _demo_text(recipe, steps, ctx)
        return Result([Artifact("text", recipe, text, info={"demo": True})])
    image = _plasma(recipe.seed, size, steps, ctx)
    return Result([Artifact("image", replace(recipe, modality="image"), image, info={"demo": True})])


def _demo_text(recipe, steps: int, ctx: TaskContext) -> str:
    import random

    words = recipe.prompt.split() or ["demo"]
    rng = random.Random(recipe.seed)
    out: list[str] = []
    for step in range(1, steps + 1):
        ctx.check()
        out.append(rng.choice(words))
        ctx.report(Progress(step, steps, preview=" ".join(out), message="demo (no model)"))
    return " ".join(out)


def warmup_task(job: Job, ctx: TaskContext) -> Result:
    """Import torch and pick the device while the user is still reading the window."""
    started = time.perf_counter()
    import torch  # noqa: F401  (the import is the point)

    return Result(info={"warmup_s": time.perf_counter() - started}, value=ctx.device)
