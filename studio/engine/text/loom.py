"""Saving a loom tree (core/loom.py) as one history entry: job kind "text.loom_save" (studio/media.py).

The Text panel's tree is saved after each generation that changes it: the job's recipe holds the settings of the
path on show and, under params["loom"], the whole tree; `args["replaces"]` names the tree's previous entry, which
the engine removes once the new one is committed (studio/backends/runner.py), so the Gallery holds each tree once,
as it was last. Double-clicking it brings the tree back whole (state/loom.py).
"""

from __future__ import annotations

from studio.core.jobs import Artifact, Job, Result, TaskContext, UserError
from studio.core.loom import Loom, LoomError


def save_task(job: Job, ctx: TaskContext) -> Result:
    recipe = job.recipe
    if recipe is None or not isinstance(recipe.param("loom"), dict):
        raise UserError("saving a loom tree needs the tree in its recipe")
    try:
        tree = Loom.from_dict(recipe.param("loom"))
    except LoomError as exc:
        raise UserError(str(exc)) from None
    info = {"nodes": len(tree.nodes), "branches": sum(1 for n in tree.nodes.values() if not tree.children(n.id))}
    replaces = job.args.get("replaces")
    if isinstance(replaces, int):
        info["replaces_entry"] = replaces
    return Result(artifacts=[Artifact("loom", recipe, tree, info=info)])
