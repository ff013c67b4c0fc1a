"""The Latent Explorer's worker tasks: map, decode, strip, walk, grid, breed, anomalies, augment; and with a GAN
model, Z-vs-W strips and style mixing (gan_space.py).

The Explorer's model is a diffusion model (its VAE's latent space) or a GAN (its W space); the tasks below don't
care which: `_space` loads either, `_decode` and `_encode` draw and place points in it.

Points are given as "specs" so that a recipe can name them again later:
  {"point": [x, y]}  a place on the current map     {"path": "a.png"}  an image, encoded (VAE only)
  {"latent": [...], "shape": [...]}  a raw latent   {"gan": {"prompt": "red heart", "seed": 3}}  a GAN picture's w
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.catalog import resolve
from studio.core.gan_model import GanBundle
from studio.core.jobs import Artifact, Job, Progress, Result, TaskContext, UserError
from studio.core.recipe import Recipe
from studio.engine.latent import gan_space, vae
from studio.engine.latent import maths as latent
from studio.engine.latent.settings import DEFAULT_MODEL

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
THUMB = 48  # map thumbnails: small enough for thousands on screen


@dataclass
class MapView:
    """What the GUI draws: plain data, no torch."""

    points: np.ndarray  # (N, 2)
    thumbnails: list  # PIL images, THUMB px
    labels: list[str]
    paths: list[str]
    explained: list[float]  # variance fraction of the first components


def _space(job: Job, ctx: TaskContext):
    """The model's latent space: a VaeBundle (diffusion models) or a GanBundle (GANs), cached in the engine."""
    ref = job.args.get("model", DEFAULT_MODEL)
    source = resolve(ref)
    loader = (lambda: gan_space.load(source, ctx.device)) if source.kind == "gan" else (
        lambda: vae.load_vae(source, ctx.device))
    return ctx.models.get("latent", (ref, ctx.device.device), loader)


def _is_gan(bundle) -> bool:
    return isinstance(bundle, GanBundle)


def _decode(bundle, points) -> list:
    return gan_space.decode_points(bundle, points) if _is_gan(bundle) else vae.decode_points(bundle, points)


def _encode(bundle, images, cancelled=None) -> np.ndarray:
    if _is_gan(bundle):
        raise UserError(gan_space.NO_ENCODER)
    return vae.encode_images(bundle, images, cancelled=cancelled)


def _current_map(ctx: TaskContext) -> latent.LatentMap:
    latent_map = ctx.models.peek("latent_map")
    if latent_map is None:
        raise UserError("build a map first (Map › Build)")
    return latent_map


def _open_images(paths: list[str]) -> list:
    from PIL import Image

    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        except OSError as exc:
            raise UserError(f"cannot read {Path(path).name}: {exc}") from exc
    return images


def image_paths_in(folder: str) -> list[str]:
    found = sorted(str(p) for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise UserError(f"no images in {folder}")
    return found


def _dataset_images(limit: int) -> tuple[list, list[str]]:
    """The built-in model's own training images (rendered emoji), evenly subsampled.

    Labels join name, aliases, group and subgroup, so attribute words ("face", "red", "animal")
    find their examples.
    """
    from PIL import Image

    from studio.data import emoji as data_emoji

    try:
        data = data_emoji.load_dataset()
    except OSError as exc:  # no cache and no Noto Color Emoji font on this system
        raise UserError(f"the emoji images are not available here ({exc}); map your gallery or a folder instead") from exc
    keep = np.linspace(0, len(data) - 1, min(limit, len(data))).round().astype(int)
    images = [Image.fromarray(data.images[i]) for i in keep]
    labels = [" | ".join([data.names[i], *data.aliases[i], data.groups[i], data.subgroups[i]]) for i in keep]
    return images, labels


def map_task(job: Job, ctx: TaskContext) -> Result:
    bundle = _space(job, ctx)
    source = job.args.get("source", "dataset")
    ctx.report(Progress(0, 2, message="reading images"))
    if source == "dataset":
        images, labels = _dataset_images(int(job.args.get("limit", 1500)))
        paths = [""] * len(images)
    elif _is_gan(bundle):
        raise UserError(gan_space.NO_ENCODER)
    else:
        paths = job.args["paths"] if source == "paths" else image_paths_in(job.args["folder"])
        images, labels = _open_images(paths), [Path(p).stem for p in paths]
    if _is_gan(bundle):  # the GAN's own drawing of each name, at one z: a map of W
        ctx.report(Progress(1, 2, message=f"drawing {len(labels)} names with the GAN"))
        names = [label.split(" | ", 1)[0] for label in labels]
        latents = gan_space.map_points(bundle, labels, names, float(job.args.get("truncation", 1.0)))
        images = _decode_frames(bundle, list(latents), ctx, batch=64)
    else:
        ctx.report(Progress(1, 2, message=f"encoding {len(images)} images"))
        latents = _encode(bundle, images, cancelled=ctx.cancelled)
    source_name = bundle.source.ref if _is_gan(bundle) else bundle.source
    latent_map = latent.fit_map(latents, labels)
    ctx.models.free("latent_map")
    ctx.models.get("latent_map", (source_name, source, len(images)), lambda: latent_map)
    thumbs = [image.resize((THUMB, THUMB)) for image in images]
    explained = (latent_map.variance / latent_map.latents.var(axis=0).sum()).tolist()
    ctx.report(Progress(2, 2))
    return Result(value=MapView(latent_map.points, thumbs, labels, paths, explained))


def latent_of(spec: dict[str, Any], ctx: TaskContext, bundle) -> np.ndarray:
    if "point" in spec:
        return _current_map(ctx).inverse(np.asarray(spec["point"], dtype=np.float64))
    if "path" in spec:
        return _encode(bundle, _open_images([spec["path"]]))[0]
    if "gan" in spec and _is_gan(bundle):
        picture = spec["gan"]
        return gan_space.w_of(bundle, str(picture.get("prompt", "")), int(picture.get("seed", 0)),
                              float(picture.get("truncation", 1.0)))
    if "latent" in spec:
        return np.asarray(spec["latent"], dtype=np.float32).reshape(spec["shape"])
    raise UserError(f"not a point: {spec}")


def decode_task(job: Job, ctx: TaskContext) -> Result:
    bundle = _space(job, ctx)
    z = latent_of(job.args["at"], ctx, bundle)
    for name, amount in job.args.get("attributes", {}).items():
        z = z + amount * attribute_vector(ctx, name)
    if _is_gan(bundle) and any(job.args.get("directions") or ()):  # the GAN's principal-direction sliders
        z = gan_space.push_along_directions(bundle, z, job.args["directions"])
    return Result(value=(_decode(bundle, [z])[0], z))


def attribute_vector(ctx: TaskContext, name: str) -> np.ndarray:
    """Mean latent of map items whose label contains `name` minus the rest."""
    latent_map = _current_map(ctx)
    has = [name.lower() in label.lower() for label in latent_map.labels]
    return latent.attribute_direction(latent_map.latents, has).reshape(latent_map.shape)


def _recipe(job: Job, ctx: TaskContext, modality: str, prompt: str, **params: Any) -> Recipe:
    return Recipe(modality, prompt=prompt, model=job.args.get("model", DEFAULT_MODEL), seed=int(job.args.get("seed", 0)),
                  params={"operation": job.kind, **params}, device=ctx.device.device, dtype="float32",
                  parents=tuple(job.args.get("parents", ())))


def _decode_frames(bundle, latents: list[np.ndarray], ctx: TaskContext, batch: int = 16) -> list:
    frames = []
    for start in range(0, len(latents), batch):
        ctx.check()
        frames += _decode(bundle, latents[start : start + batch])
        ctx.report(Progress(len(frames), len(latents), preview=frames[-1]))
    return frames


def strip_task(job: Job, ctx: TaskContext) -> Result:
    bundle = _space(job, ctx)
    a, b = latent_of(job.args["a"], ctx, bundle), latent_of(job.args["b"], ctx, bundle)
    count, mode = int(job.args.get("frames", 8)), job.args.get("mode", "slerp")
    frames = _decode_frames(bundle, latent.interpolate(a, b, count, mode), ctx)
    recipe = _recipe(job, ctx, "animation", f"{mode} interpolation, {count} frames", a=job.args["a"], b=job.args["b"],
                     frames=count, mode=mode, fps=job.args.get("fps", 8))
    return Result([Artifact("animation", recipe, frames, info={"fps": job.args.get("fps", 8)})])


def walk_task(job: Job, ctx: TaskContext) -> Result:
    bundle = _space(job, ctx)
    mode = job.args.get("mode", "slerp")
    if job.args.get("points"):
        keys = [latent_of(spec, ctx, bundle) for spec in job.args["points"]]
        path = latent.loop_walk(keys, int(job.args.get("frames_per_leg", 12)), mode)
    else:
        start = latent_of(job.args["start"], ctx, bundle)
        scale = np.sqrt(_current_map(ctx).latents.var(axis=0)).reshape(start.shape) if ctx.models.peek("latent_map") is not None else 1.0
        path = latent.random_walk(start, int(job.args.get("steps", 48)), float(job.args.get("step_size", 0.05)),
                                  int(job.args.get("seed", 0)), scale)
    frames = _decode_frames(bundle, path, ctx)
    recipe = _recipe(job, ctx, "animation", f"latent walk, {len(frames)} frames",
                     **{k: v for k, v in job.args.items() if k not in ("model", "seed", "parents")})
    if not job.save:
        return Result(value=frames)
    return Result([Artifact("animation", recipe, frames, info={"fps": job.args.get("fps", 12)})])


def grid_task(job: Job, ctx: TaskContext) -> Result:
    bundle = _space(job, ctx)
    centre = latent_of(job.args["at"], ctx, bundle)
    size, radius = int(job.args.get("size", 5)), float(job.args.get("radius", 2.0))
    directions = job.args.get("directions", "pca")
    if directions == "pca":
        latent_map = _current_map(ctx)
        dx, dy = latent_map.direction(0), latent_map.direction(1)
    elif directions == "random":
        rng = np.random.default_rng(int(job.args.get("seed", 0)))
        scale = float(np.sqrt((centre**2).mean())) or 1.0
        dx, dy = (rng.standard_normal(centre.shape) * scale * 0.5 for _ in range(2))
    else:  # two attribute names, e.g. ["face", "red"]
        dx, dy = (attribute_vector(ctx, name) / 2 for name in directions)
    rows = latent.neighbourhood_grid(centre, dx, dy, size, radius)
    images = _decode_frames(bundle, [z for row in rows for z in row], ctx)
    return Result(value=(images, size))


def breed_task(job: Job, ctx: TaskContext) -> Result:
    bundle = _space(job, ctx)
    a, b = (latent_of(spec, ctx, bundle) for spec in job.args["parent_specs"])
    children = latent.breed(a, b, int(job.args.get("children", 4)), float(job.args.get("mutation", 0.3)),
                            int(job.args.get("seed", 0)), scale=float(np.sqrt(((a - b) ** 2).mean())) or 1.0)
    images = _decode(bundle, children)
    artifacts, sibling_parents = [], None
    if not job.args.get("parents"):
        # Parents picked on the map are not in the history yet: save them first, so every child
        # can be traced back (the worker fills in their history ids, see save_with_lineage).
        for name, spec, image in zip("AB", job.args["parent_specs"], _decode(bundle, [a, b]), strict=True):
            artifacts.append(Artifact("image", _recipe(job, ctx, "image", f"parent {name}", at=spec), image))
        sibling_parents = [0, 1]
    for index, image in enumerate(images):
        recipe = _recipe(job, ctx, "image", f"child {index + 1} of {len(images)}", parent_specs=job.args["parent_specs"],
                         child=index, children=len(images), mutation=job.args.get("mutation", 0.3))
        info = {"parent_artifacts": sibling_parents} if sibling_parents else {}
        artifacts.append(Artifact("image", recipe, image, info=info))
    return Result(artifacts)


def anomaly_task(job: Job, ctx: TaskContext) -> Result:
    bundle = _space(job, ctx)
    paths = job.args.get("paths") or image_paths_in(job.args["folder"])
    if _is_gan(bundle):
        raise UserError(gan_space.NO_ENCODER)
    errors = []
    for start in range(0, len(paths), 32):
        ctx.check()
        errors += vae.reconstruction_errors(bundle, _open_images(paths[start : start + 32]))
        ctx.report(Progress(len(errors), len(paths)))
    order = latent.rank_by_error(errors)
    return Result(value=[(paths[i], errors[i]) for i in order])


def augment_task(job: Job, ctx: TaskContext) -> Result:
    bundle = _space(job, ctx)
    z = latent_of(job.args["at"], ctx, bundle)
    count, amount, seed = int(job.args.get("count", 8)), float(job.args.get("amount", 0.15)), int(job.args.get("seed", 0))
    scale = float(np.sqrt((z**2).mean())) or 1.0
    images = _decode_frames(bundle, latent.perturbations(z, count, amount, seed, scale), ctx)
    return Result([Artifact("image", _recipe(job, ctx, "image", f"variation {i + 1}", at=job.args["at"], count=count,
                                             amount=amount, index=i), image) for i, image in enumerate(images)])


TASKS = {
    "latent.map": "map_task",
    "latent.decode": "decode_task",
    "latent.strip": "strip_task",
    "latent.walk": "walk_task",
    "latent.grid": "grid_task",
    "latent.breed": "breed_task",
    "latent.anomaly": "anomaly_task",
    "latent.augment": "augment_task",
}
