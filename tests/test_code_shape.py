"""The shape the code keeps: small modules and functions, no import circles, panels see only the light faces of the
engine. import-linter (tests/test_layers.py) holds the layers; these are the rules it can't express."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "studio").rglob("*.py"))
MAX_MODULE_LINES = 600  # past this a module does more than one thing (the redesign split every one that did)
MAX_FUNCTION_LINES = 80  # a function that doesn't fit a screen gets read in pieces


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("studio", cache_dir=None)


def test_no_module_is_too_long():
    long = {str(p.relative_to(ROOT)): n for p in SOURCES if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_is_too_long():
    long = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.name} ({length} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. import circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph.find_modules_directly_imported_by(module):
            if not target.startswith("studio"):
                continue
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module.startswith("studio") and module not in index:
            visit(module)
    return found


def test_no_import_circles(graph):
    assert _cycles(graph) == []


def test_the_circle_finder_finds_a_circle():
    class Graph:
        modules = {"studio.a", "studio.b", "studio.c"}
        edges = {"studio.a": {"studio.b"}, "studio.b": {"studio.a"}, "studio.c": {"studio.a"}}

        def find_modules_directly_imported_by(self, module):
            return self.edges[module]

    assert _cycles(Graph()) == [["studio.a", "studio.b"]]


def test_panels_widgets_and_state_see_only_the_settings_faces_of_the_engine(graph):
    """The GUI side may read a medium's typed settings (names, defaults, choices), never its compute modules."""
    gui = [m for m in graph.modules if m.startswith(("studio.panels", "studio.widgets", "studio.state", "studio.app"))]
    reached = {(m, t) for m in gui for t in graph.find_modules_directly_imported_by(m) if t.startswith("studio.engine.")}
    heavy = sorted(f"{m} -> {t}" for m, t in reached if not t.endswith(".settings"))
    assert not heavy, heavy
