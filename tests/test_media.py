"""The table of media (studio/media.py) and the typed settings of each medium.

A new medium is one folder, one panel and one entry in the table: the toy medium below is a package written into a
temporary folder and one `Medium(...)` added to `media.MEDIA`, nothing else, and the window, the CLI, the Gallery,
the export dispatch, the recipe reader, the task table and the catalog all find it.
"""

import argparse
import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from studio import media
from studio.core.jobs import Artifact
from studio.core.recipe import Recipe

ROOT = Path(__file__).resolve().parents[1]
TOY = "toy_medium_for_tests"  # the package's name: unique, so no other test's module is shadowed

TOY_SETTINGS = '''
from dataclasses import dataclass


@dataclass(frozen=True)
class ToySettings:
    prompt: str = ""
    model: str = ""
    seed: int = -1
    dots: int = 3  # how many dots the toy draws
    loud: bool = False
'''

TOY_PANEL = '''
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget


class ToyPanel(QWidget):
    def __init__(self, state, history=None, parent=None):
        super().__init__(parent)
        self.values = state.panels["toy"]
        QVBoxLayout(self).addWidget(QLabel("dots"))
'''

TOY_TASKS = '''
import json
from pathlib import Path

from studio.core.jobs import Artifact, Result
from studio.core.recipe import Recipe


def generate_task(job, ctx):
    recipe = job.recipe
    return Result([Artifact("toy", recipe, "." * int(recipe.param("dots", 3)))])


def write_files(artifact, folder, stem):
    path = folder / f"{stem}.toy"
    path.write_text(artifact.recipe.to_json() + "\\n" + artifact.payload, encoding="utf-8")
    return [path], None, artifact.payload


def read_recipe(path):
    return Recipe.from_json(Path(path).read_text(encoding="utf-8").splitlines()[0])
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy medium: one folder (settings, panel, tasks) and one entry in the table."""
    package = tmp_path / "src" / TOY
    package.mkdir(parents=True)
    for name, code in {"__init__": "", "settings": TOY_SETTINGS, "panel": TOY_PANEL, "tasks": TOY_TASKS}.items():
        (package / f"{name}.py").write_text(textwrap.dedent(code), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.setitem(media.MEDIA, "toy", media.Medium(
        "toy", "Toy", f"{TOY}.panel:ToyPanel", f"{TOY}.settings:ToySettings",
        tasks={"toy.generate": f"{TOY}.tasks:generate_task"}, generate="toy.generate", cli="draw dots",
        outputs=(media.Output("toy", "Toys", f"{TOY}.tasks:write_files", {".toy": f"{TOY}.tasks:read_recipe"}),),
        model_types={"toy-dots": "toy"}))
    yield
    for name in [n for n in sys.modules if n == TOY or n.startswith(TOY + ".")]:
        del sys.modules[name]


def test_a_toy_medium_is_a_tab_with_its_panel_and_its_defaults(qtbot, tmp_path, toy):
    from studio.app import create_window, open_filter

    QApplication.setOrganizationName("LatentStudioTests")
    QApplication.setApplicationName(f"test-{tmp_path.name}")
    QSettings().clear()
    window = create_window(QApplication.instance(), warm_up=False)
    qtbot.addWidget(window)
    try:
        labels = [window.tabs.tabText(i) for i in range(window.tabs.count())]
        assert labels == ["Image", "Text", "Music", "Latent Explorer", "Train", "Toy", "Gallery"]
        panel = window.panel("toy")
        assert type(panel).__name__ == "ToyPanel" and window.tabs.indexOf(panel) == 5
        assert panel.values.values() == {"prompt": "", "model": "", "seed": -1, "dots": 3, "loud": False}
        assert "*.toy" in open_filter()  # File › Open
        gallery = window.panel("gallery")
        filters = [(gallery.kind.itemText(i), gallery.kind.itemData(i)) for i in range(gallery.kind.count())]
        assert filters[-1] == ("Toys", "toy") and filters[0] == ("All", None)
    finally:
        window.worker.stop()


def toy_model_folder(tmp_path: Path) -> Path:
    """A model folder the toy medium's line in the table teaches the catalog to recognise."""
    folder = tmp_path / "dots-model"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "toy-dots"}))
    return folder


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_a_toy_medium_is_a_cli_command_whose_flags_come_from_its_settings(tmp_path, toy, capsys):
    from studio.__main__ import _parser, main

    assert list(subcommands(subcommands(_parser())["generate"])) == ["image", "text", "music", "toy"]  # no "latent"
    args = _parser().parse_args(["generate", "toy", "--prompt", "p"])
    assert (args.dots, args.loud) == (3, False)

    model = toy_model_folder(tmp_path)
    assert main(["generate", "toy", "--prompt", "five dots", "--model", str(model), "--dots", "5", "--loud",
                 "--seed", "7"]) == 0
    saved = Path(capsys.readouterr().out.strip().rsplit("saved to ", 1)[1])
    assert saved.suffix == ".toy" and saved.read_text(encoding="utf-8").endswith(".....")
    recipe = Recipe.from_json(saved.read_text(encoding="utf-8").splitlines()[0])
    assert (recipe.modality, recipe.seed, recipe.params) == ("toy", 7, {"dots": 5, "loud": True})


def test_a_toy_medium_is_written_and_read_back_by_the_export_dispatch(tmp_path, toy):
    from studio.library.export import recipe_from_file, write_artifact

    recipe = Recipe("toy", prompt="dots", seed=3, params={"dots": 2})
    files, thumbnail, summary = write_artifact(Artifact("toy", recipe, ".."), tmp_path / "out", "dots")
    assert [f.suffix for f in files] == [".toy"] and summary == ".." and thumbnail is None
    assert recipe_from_file(files[0]) == recipe


def test_a_toy_medium_has_its_tasks_recipes_and_model_folders(tmp_path, toy):
    from studio.core import catalog
    from studio.core.tasks import find_task

    assert find_task("toy.generate").__name__ == "generate_task"
    assert Recipe.from_json(Recipe("toy", prompt="x").to_json()).modality == "toy"
    assert catalog.resolve(str(toy_model_folder(tmp_path))).kind == "toy"


def test_the_table_names_code_that_exists():
    for medium in media.MEDIA.values():
        settings = media.settings_class(medium.name)
        assert dataclasses.is_dataclass(settings) and settings.__dataclass_params__.frozen
        for target in [*medium.tasks.values(), *(o.writer for o in medium.outputs),
                       *(r for o in medium.outputs for r in o.reads.values())]:
            assert callable(media.load(target)), target
        assert set(medium.titles) <= set(medium.tasks)
        assert all(kind.startswith(medium.name + ".") for kind in medium.tasks)
        assert not medium.generate or medium.generate in medium.tasks
    assert list(media.gallery_filters()) == [("Images", "image"), ("Text", ("text", "loom")), ("Music", ("music", "audio")),
                                             ("Animations", "animation")]


def test_settings_and_the_table_import_nothing_heavy():
    code = ("import sys, studio.media, studio.engine.image.settings, studio.engine.text.settings, "
            "studio.engine.music.settings, studio.engine.latent.settings, studio.engine.train.settings; "
            "print(sorted(m for m in ('torch', 'numpy', 'PIL', 'PySide6', 'diffusers', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "[]", result.stderr


def test_the_panel_the_engine_and_the_cli_read_one_default():
    from studio.__main__ import _parser
    from studio.engine.image import generate as image
    from studio.engine.image.settings import ImageSettings
    from studio.engine.latent.settings import LatentSettings
    from studio.engine.music import generate as music
    from studio.engine.music import musicgen
    from studio.engine.music.settings import MusicSettings
    from studio.engine.text.settings import OLD_RECIPE_VALUES, TextSettings
    from studio.state import State

    state = State()
    assert state.image.get("guidance") == image.DEFAULTS.guidance == ImageSettings().guidance == 5.0
    cli = {name: vars(_parser().parse_args(["generate", name, "--prompt", "p"])) for name in ("image", "text", "music")}
    for name, settings in (("image", ImageSettings()), ("text", TextSettings()), ("music", MusicSettings())):
        for key, value in cli[name].items():
            if key in state.panels[name].values() and key not in ("prompt", "seed"):  # given / drawn at each run
                expected = state.panels[name].get(key)
                assert value == expected == media.panel_defaults(name)[key], (name, key)
                assert value == (list(getattr(settings, key)) if key == "stop" else getattr(settings, key))
    # An empty recipe is an old one: what it lacks was then (OLD_RECIPE_VALUES); everything else is the default.
    old = TextSettings.from_params({})
    assert dataclasses.replace(old, **{k: getattr(TextSettings(), k) for k in OLD_RECIPE_VALUES}) == TextSettings()
    assert set(TextSettings().to_params()) == {f.name for f in dataclasses.fields(TextSettings)} - {"prompt", "model", "seed"}
    assert {k: music.DEFAULT_PARAMS[k] for k in ("bars", "top_p", "instrument")} == {"bars": 8, "top_p": 0.95, "instrument": "piano"}
    assert (musicgen.DEFAULT_PARAMS["guidance"], musicgen.DEFAULT_PARAMS["duration"]) == (3.0, 8.0)
    # The Explorer opens on the Image panel's built-in: two rooms' own defaults, held equal here (media are independent).
    assert LatentSettings().model == ImageSettings().model
