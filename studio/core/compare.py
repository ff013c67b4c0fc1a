"""What every medium's Compare families job shares (engine/text/compare.py, engine/music/compare.py).

A "<medium>.compare" job either runs one family's column (args {"family": NAME}, with the shared recipe) or saves the
finished columns as one output (args {"columns": [...]}). Its progress previews are tagged with the family, so the
comparison view, not the medium's panel, draws them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from studio.core.jobs import Job, Result, TaskContext, UserError
from studio.core.recipe import Recipe


def compare_task(job: Job, ctx: TaskContext, run: Callable[[Job, Recipe, TaskContext], Result],
                 save: Callable[[Job, Recipe], Result]) -> Result:
    """Save the columns when the job carries them, else run one family's column with the job's recipe."""
    if "columns" in job.args:
        if job.recipe is None:
            raise UserError("saving a comparison needs its recipe")
        return save(job, job.recipe)
    if job.recipe is None or not job.recipe.model:
        raise UserError("a comparison run needs a recipe with a model")
    return run(job, job.recipe, ctx)


def tagged(ctx: TaskContext, family: str, key: str, shown: Callable[[Any], Any] = lambda preview: preview):
    """A report whose previews are {"family": family, key: shown(preview)}: the comparison view's to draw."""

    def report(progress):
        ctx.report(replace(progress, preview={"family": family, key: shown(progress.preview)}))

    return report
