"""A batch from a one-pass image model (a GAN, the sketch translator): picture i with seed + i, each saved as soon as
it exists, cancellable between pictures."""

from __future__ import annotations

import time
from collections.abc import Callable

from studio.core.jobs import Artifact, Cancelled, IsCancelled, Progress, Report
from studio.core.recipe import Recipe


def one_pass_batch(recipe: Recipe, draw: Callable[[int], object], made: Callable[[int, object], Recipe],
                   report: Report = None, cancelled: IsCancelled = None, output=None) -> list[Artifact]:
    """`draw(seed)` makes one picture, `made(seed, picture)` its recipe; `output` takes each artifact (saves it)."""
    count = max(1, int(recipe.param("batch_count", 1) or 1))
    artifacts: list[Artifact] = []
    for index in range(count):
        if cancelled is not None and cancelled():
            raise Cancelled(partial=artifacts)
        seed = int(recipe.seed) + index
        began = time.perf_counter()
        image = draw(seed)
        artifact = Artifact("image", made(seed, image), image, info={"seconds": time.perf_counter() - began})
        artifacts.append(artifact)
        if output is not None:
            output(artifact)
        if report is not None:
            report(Progress(index + 1, count, preview=image))
    return artifacts
