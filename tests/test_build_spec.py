"""The PyInstaller spec must carry every module a job or the table of media names (they are imported by string)."""

import ast
import importlib
from pathlib import Path

import pytest

from studio import media
from studio.core.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]


def spec_hidden_imports() -> list[str]:
    """Evaluate build.spec's own `hiddenimports=` expression, with PyInstaller's collect_submodules."""
    hooks = pytest.importorskip("PyInstaller.utils.hooks")
    tree = ast.parse((ROOT / "build.spec").read_text())
    analysis = next(node for node in ast.walk(tree)
                    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Analysis")
    expression = next(k.value for k in analysis.keywords if k.arg == "hiddenimports")
    return eval(compile(ast.Expression(expression), "build.spec", "eval"),  # noqa: S307 (our own spec file)
                {"collect_submodules": hooks.collect_submodules})


def test_every_task_module_is_in_the_bundle_and_importable():
    hidden = set(spec_hidden_imports())
    modules = {target.split(":")[0] for target in TASKS.values()}
    # the table of media names panels and settings classes by string too
    modules |= {target.split(":")[0] for medium in media.MEDIA.values() for target in (medium.panel, medium.settings)}
    assert "studio.engine.music.melody" in modules  # the task table is the real one
    for module in sorted(modules):
        assert module in hidden, f"{module} is named by a task but build.spec leaves it out"
        importlib.import_module(module)
    assert "studio.data.emoji" in hidden  # the explorer's dataset map needs it
    # of the training code only the Train tab's jobs (finetune*), which the app runs
    assert not any(name.startswith("studio.training.") and not name.startswith("studio.training.finetune")
                   for name in hidden)


def test_spec_has_no_machine_paths():
    text = (ROOT / "build.spec").read_text()
    assert "/work/" not in text and "/home/" not in text and "C:\\\\" not in text
