"""The Latent Explorer's GAN-only jobs: Z against W, and style mixing (gan_space.py has the maths)."""

from __future__ import annotations

from studio.core.jobs import Artifact, Job, Progress, Result, TaskContext, UserError
from studio.core.recipe import Recipe
from studio.engine.latent import gan_space
from studio.engine.latent.settings import DEFAULT_MODEL
from studio.engine.latent.tasks import _is_gan, _space


def _gan(job: Job, ctx: TaskContext):
    bundle = _space(job, ctx)
    if not _is_gan(bundle):
        raise UserError("Z/W strips and style mixing need a GAN: pick Emoji GAN as the Explorer's model")
    return bundle


def _ends(job: Job) -> tuple[tuple[str, int], tuple[str, int]]:
    return ((str(job.args.get("prompt_a", "")), int(job.args.get("seed_a", 0))),
            (str(job.args.get("prompt_b", "")), int(job.args.get("seed_b", 1))))


def compare_task(job: Job, ctx: TaskContext) -> Result:
    """The same two pictures interpolated in Z and in W: an animation whose frames show both side by side."""
    from PIL import Image

    bundle = _gan(job, ctx)
    a, b = _ends(job)
    frames, truncation = int(job.args.get("frames", 8)), float(job.args.get("truncation", 1.0))
    ctx.report(Progress(0, 1, message="interpolating in Z and in W"))
    z_frames, w_frames, z_steps, w_steps = gan_space.z_and_w_strips(bundle, a, b, frames, truncation)
    pairs = []
    for z_frame, w_frame in zip(z_frames, w_frames, strict=True):
        pair = Image.new("RGB", (z_frame.width * 2 + 4, z_frame.height), (255, 255, 255))
        pair.paste(z_frame, (0, 0))
        pair.paste(w_frame, (z_frame.width + 4, 0))
        pairs.append(pair)
    ctx.report(Progress(1, 1, preview=pairs[len(pairs) // 2]))
    recipe = Recipe("animation", prompt=f"Z (left) and W (right): {a[0]} #{a[1]} → {b[0]} #{b[1]}",
                    model=job.args.get("model", DEFAULT_MODEL), seed=a[1], device=ctx.device.device, dtype="float32",
                    params={"operation": job.kind, "prompt_a": a[0], "seed_a": a[1], "prompt_b": b[0], "seed_b": b[1],
                            "frames": frames, "truncation": truncation, "fps": job.args.get("fps", 8),
                            "z_step_sizes": z_steps, "w_step_sizes": w_steps})
    info = {"fps": job.args.get("fps", 8), "z_steps": z_steps, "w_steps": w_steps}
    return Result([Artifact("animation", recipe, pairs, info=info)], value=(z_steps, w_steps))


def mix_task(job: Job, ctx: TaskContext) -> Result:
    """Style mixing grid: rows A's seeds, columns B's, each cell A's coarse styles with B's fine ones."""
    bundle = _gan(job, ctx)
    count = max(1, min(6, int(job.args.get("count", 3))))
    a, b = _ends(job)
    crossover = max(1, min(bundle.config.num_ws - 1, int(job.args.get("crossover", 4))))
    seeds_a, seeds_b = [a[1] + i for i in range(count)], [b[1] + i for i in range(count)]
    cells = gan_space.style_mix_grid(bundle, a[0], b[0], seeds_a, seeds_b, crossover,
                                     float(job.args.get("truncation", 1.0)))
    return Result(value=(cells, count + 1))
