"""Files written by the version before the redesign still give back their recipes and restore into the panels
they were made in (tests/data/v0.1-outputs: one output of each kind, made by that version's own code)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.core.recipe import Recipe
from studio.library.export import recipe_from_file

DATA = Path(__file__).parent / "data" / "v0.1-outputs"
MADE = json.loads((DATA / "made.json").read_text())
FILES = [(made, name) for made in MADE for name in made["files"]]


@pytest.mark.parametrize(("made", "name"), FILES, ids=[name for _, name in FILES])
def test_each_old_file_gives_back_the_recipe_it_was_saved_with(made, name):
    saved = Recipe.from_json(json.dumps(made["recipe"]))
    read = recipe_from_file(DATA / name)
    if name.endswith("-sheet.png"):  # a strip's contact sheet is an image of frames: it carries the strip's recipe
        assert read.params.get("operation") == "latent.strip"
        return
    assert read == saved


def test_every_old_recipe_restores_into_its_panel_with_its_values(qtbot):
    from studio.state import State

    for made in MADE:
        state = State()
        recipe = Recipe.from_json(json.dumps(made["recipe"]))
        shown = []
        state.restore_requested.connect(shown.append)
        state.restore(recipe)
        if made["kind"] == "latent.melody_interpolate":
            values = state.panels["latent"].values()
            assert shown == ["latent"] and values["melody_seed_a"] == 1 and values["melody_seed_b"] == 2
        elif made["kind"] == "latent.strip":
            assert shown == ["latent"] and set(state.explorer.picks) == {"A", "B"}
        else:
            panel = state.panels[recipe.modality]
            assert shown == [recipe.modality] and panel.get("prompt") == recipe.prompt and panel.get("seed") == recipe.seed
            for key, value in recipe.params.items():
                if key in panel.values():
                    assert panel.get(key) == value, key
