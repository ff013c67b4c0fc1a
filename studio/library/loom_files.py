"""A loom tree's files: the path on show as Markdown with its recipe (front matter, like any text output), and the
whole tree as JSON beside it. The JSON reads back as a recipe whose params["loom"] is the tree (File › Open)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from studio.core.files import atomic_write_bytes, unique_path
from studio.core.loom import Loom, LoomError
from studio.core.recipe import Recipe, RecipeError
from studio.library.export import FRONT_MATTER, file_errors

TREE_SUFFIX = ".loom.json"


def path_recipe(recipe: Recipe) -> Recipe:
    """The recipe without the tree: what one path's Markdown carries."""
    return replace(recipe, params={k: v for k, v in recipe.params.items() if k != "loom"})


def path_text(tree: Loom, node_id: str | None = None) -> str:
    """A path as a reader sees it: the page (completion) or the conversation (chat)."""
    if tree.mode == "chat":
        return "\n\n".join(f"**{m['role'].capitalize()}:** {m['content']}" for m in tree.messages(node_id))
    return tree.text(node_id)


def path_markdown(tree: Loom, recipe: Recipe, node_id: str | None = None) -> str:
    """One path of the tree as Markdown: the recipe that wrote its end as front matter, then the text."""
    return f"{FRONT_MATTER}\nstudio_recipe: {path_recipe(recipe).to_json()}\n{FRONT_MATTER}\n\n{path_text(tree, node_id)}\n"


def tree_json(tree: Loom, recipe: Recipe) -> str:
    return json.dumps({"recipe": json.loads(path_recipe(recipe).to_json()), "loom": tree.to_dict()}, indent=1,
                      ensure_ascii=False)


def write_loom_files(artifact, folder: Path, stem: str) -> tuple[list[Path], bytes | None, str]:
    tree, recipe = artifact.payload, artifact.recipe
    markdown = atomic_write_bytes(unique_path(folder, stem, ".md"), path_markdown(tree, recipe).encode("utf-8"),
                                  new=True)
    try:
        data = atomic_write_bytes(markdown.with_suffix(TREE_SUFFIX), tree_json(tree, recipe).encode("utf-8"), new=True)
    except BaseException:
        markdown.unlink(missing_ok=True)  # one output is all its files or none
        raise
    ends = sum(1 for n in tree.nodes.values() if not tree.children(n.id) and n.kind != "root")
    summary = f"Loom tree · {len(tree.nodes) - 1} passages · {ends} branch ends · " + path_text(tree)[:240]
    return [markdown, data], None, summary


@file_errors
def read_loom_recipe(path: Path) -> Recipe:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "loom" not in data or "recipe" not in data:
        raise RecipeError(f"{Path(path).name} is not a loom tree saved by Latent Studio")
    try:
        tree = Loom.from_dict(data["loom"])
    except LoomError as exc:
        raise RecipeError(f"{Path(path).name}: {exc}") from None
    recipe = Recipe.from_json(json.dumps(data["recipe"]))
    return replace(recipe, params={**recipe.params, "operation": "loom", "loom": tree.to_dict()})
