"""The PyInstaller spec must carry every engine module a job can name (they are imported by string)."""

import ast
import importlib
from pathlib import Path

from studio.engine.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]


def spec_keeps(module: str) -> bool:
    """Mirror of build.spec's hiddenimports rule: all of studio except training, plus the emoji data builder."""
    return module.startswith("studio.") and (not module.startswith("studio.training") or module == "studio.training.data_emoji")


def test_every_task_module_is_bundled_and_importable():
    modules = {target.split(":")[0] for target in TASKS.values()}
    assert "studio.engine.melody" in modules  # the list is the real one, not an empty dict
    for module in sorted(modules):
        assert spec_keeps(module), f"{module} is named by a task but build.spec would leave it out"
        importlib.import_module(module)


def test_spec_rule_matches_the_test_and_has_no_absolute_paths():
    text = (ROOT / "build.spec").read_text()
    ast.parse(text)  # a syntax error would only show in a 10-minute build otherwise
    assert 'collect_submodules("studio", filter=lambda name: not name.startswith("studio.training"))' in text
    assert '"studio.training.data_emoji"' in text
    assert "/work/" not in text and "/home/" not in text and "C:\\\\" not in text
