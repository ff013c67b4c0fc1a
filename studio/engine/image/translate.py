"""Sketch -> picture in the Image panel's Translate mode (the built-in emoji-sketch): one pass, no steps.

The sketch is the recipe's `init_image` (drawn on the panel's canvas or dropped); the seed sets the generator's
dropout, so seeds give variations of one sketch, as pix2pix intends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core import catalog
from studio.core.jobs import Artifact, IsCancelled, Report, UserError
from studio.core.recipe import Recipe
from studio.engine.image.one_pass import one_pass_batch

# What a translation's recipe keeps: steps, guidance and schedulers mean nothing here.
TRANSLATE_PARAMS = ("mode", "init_image", "batch_count", "backend", "translator")


@dataclass
class SketchBundle:
    generator: Any  # studio.engine.image.sketch_model.SketchGenerator
    config: Any
    source: Any
    model_hash: str
    device: str = "cpu"


def load_sketch_model(source, device) -> SketchBundle:
    from safetensors.torch import load_file

    from studio.engine.image.sketch_model import SketchConfig, SketchGenerator

    folder = Path(source.path)
    catalog.check_model_folder(folder)
    config = SketchConfig.from_dict(json.loads((folder / "config.json").read_text(encoding="utf-8")))
    generator = SketchGenerator(config)
    generator.load_state_dict({k: v.float() for k, v in load_file(str(folder / "generator.safetensors")).items()})
    target = getattr(device, "device", device)
    generator.to(target).requires_grad_(False)
    return SketchBundle(generator, config, source, catalog.content_hash(folder), str(target))


def read_sketch(value, size: int):
    """The sketch as RGB at the model's size: a transparent background counts as white (a canvas's empty paper)."""
    from PIL import Image

    if not value:
        raise UserError("Translate needs a sketch: draw one on the canvas, or drop a drawing")
    try:
        with Image.open(value) as opened:
            picture = opened.convert("RGBA")
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the sketch {Path(str(value)).name}: {exc}") from exc
    paper = Image.new("RGBA", picture.size, (255, 255, 255, 255))
    return Image.alpha_composite(paper, picture).convert("RGB").resize((size, size), Image.Resampling.LANCZOS)


def translate_picture(bundle: SketchBundle, sketch, seed: int):
    import numpy as np
    import torch
    from PIL import Image

    from studio.engine.image.sketch_model import keep_dropout_on

    pixels = torch.from_numpy(np.asarray(sketch, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1).unsqueeze(0)
    keep_dropout_on(bundle.generator)
    torch.manual_seed(int(seed) % 2**63)  # dropout's masks: the seed's variation of the sketch
    with torch.inference_mode():
        out = bundle.generator(pixels.to(bundle.device))
    array = ((out[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array)


def translate_artifacts(bundle: SketchBundle, recipe: Recipe, report: Report = None, cancelled: IsCancelled = None,
                        output=None) -> list[Artifact]:
    sketch = read_sketch(recipe.param("init_image"), bundle.config.image_size)

    def made(seed: int, image) -> Recipe:
        params = {k: v for k, v in recipe.params.items() if k in TRANSLATE_PARAMS}
        params.update(mode="translate", batch_count=1, width=image.width, height=image.height)
        return Recipe(modality="image", prompt=recipe.prompt, model=bundle.source.ref, model_hash=bundle.model_hash,
                      seed=seed, params=params, device=bundle.device, dtype="float32", parents=recipe.parents)

    return one_pass_batch(recipe, lambda seed: translate_picture(bundle, sketch, seed), made, report, cancelled, output)
