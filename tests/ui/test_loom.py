"""The loom through the Text panel with a real engine (a thread of this process) and history: forks at a token,
siblings side by side, chat edits as branches, the tree saved to and restored whole from the history."""

from __future__ import annotations

import pytest

from studio.backends.thread import ThreadEngine
from studio.library.history import History
from studio.library.loom_files import read_loom_recipe
from studio.panels.text import TextPanel
from studio.state import State
from studio.widgets.loom_view import BranchBar


@pytest.fixture
def live(tmp_path, monkeypatch):
    # One torch thread: these tests look at behaviour, and two threads on a busy 2-core machine wait for each other
    # at every matmul (measured: 29 ms a matmul, 18 s for 24 tokens)
    monkeypatch.setenv("LATENT_STUDIO_THREADS", "1")
    state = State()
    history = History(tmp_path / "h.sqlite3", tmp_path / "out")
    worker = ThreadEngine(history=history, device_override="cpu")
    worker.message.connect(state.handle_message)
    state.submit_requested.connect(worker.submit)
    state.cancel_requested.connect(lambda job_id: worker.cancel(job_id))
    worker.start()
    yield state, history
    worker.stop()


def make_panel(qtbot, state, **values):
    panel = TextPanel(state)
    qtbot.addWidget(panel)
    state.text.update({"model": "builtin:text-gpt", "runtime": "transformers", "max_new_tokens": 24,
                       "inspect": True, **values})
    return panel


def settle(qtbot, state, action, timeout=120_000):
    """Run an action that generates and wait until the loom is idle and its tree saved."""
    action()
    qtbot.waitUntil(lambda: not state.loom.busy(), timeout=timeout)
    qtbot.waitUntil(lambda: not state.loom.saving, timeout=timeout)


def test_forking_at_token_k_keeps_the_first_k_tokens_byte_identical(qtbot, live):
    state, _ = live
    panel = make_panel(qtbot, state, prompt="A hacker is", seed=3)
    settle(qtbot, state, panel.generate)
    tree = state.loom.tree
    original = tree.node()
    assert original.kind == "generated" and len(original.tokens) >= 10
    k = 6
    position = tree.offset(original.id) + original.tokens[k]["start"]
    assert panel.page.token_at(position)[:2] == (original.id, k)
    panel.page._hover_at(position)  # what moving the mouse there does
    row = next(i for i, c in enumerate(original.tokens[k]["before"]) if c["id"] != original.tokens[k]["id"])
    candidate = original.tokens[k]["before"][row]["token"]
    assert candidate in panel.inspector.toPlainText().replace("⏎", "\n")
    settle(qtbot, state, lambda: panel.inspector.choose(row))
    continuation = tree.node()
    fork = tree.node(continuation.parent)
    assert fork.kind == "fork" and fork.parent == original.parent and continuation.kind == "generated"
    cut = len(tree.text(original.parent).encode()) + len(original.text[: original.tokens[k]["start"]].encode())
    old, new = tree.text(original.id).encode(), tree.text(continuation.id).encode()
    assert new[:cut] == old[:cut] and new[cut:].startswith(candidate.encode())
    assert [t["id"] for t in fork.tokens[:k]] == [t["id"] for t in original.tokens[:k]]
    assert panel.page.toPlainText() == tree.text() and tree.hidden() == 1  # the old branch, one step away
    assert panel.findChild(BranchBar).where.text() == "branch 2 of 2"


def test_a_tree_with_three_branches_round_trips_through_the_history(qtbot, live):
    state, history = live
    panel = make_panel(qtbot, state, prompt="Love is", seed=11)
    settle(qtbot, state, panel.generate)
    settle(qtbot, state, panel.regenerate)
    tree = state.loom.tree
    first = tree.siblings(tree.current)[0]
    state.loom.rename(first.id, "the first one")
    state.loom.bookmark(first.id, True)
    node = tree.node()
    panel.page._hover_at(tree.offset(node.id) + node.tokens[3]["start"])
    settle(qtbot, state, lambda: panel.inspector.choose(2))
    ends = [n for n in tree.nodes.values() if not tree.children(n.id)]
    assert len(ends) == 3
    saved = history.search(modality="loom")
    assert len(saved) == 1, "each save replaces the tree's previous one"
    entry = saved[0]
    assert [p.name.endswith(s) for p, s in zip(entry.files, (".md", ".loom.json"), strict=True)] == [True, True]
    assert entry.files[0].read_text(encoding="utf-8").rstrip().endswith(tree.text().rstrip())

    fresh = State()  # as after a restart: the Gallery's double-click
    other = TextPanel(fresh)
    qtbot.addWidget(other)
    fresh.restore(entry.recipe)
    assert fresh.loom.tree.to_dict() == tree.to_dict()
    assert other.page.toPlainText() == tree.text() and fresh.text.get("prompt") == tree.text()
    assert fresh.loom.tree.node(first.id).label == "the first one" and fresh.loom.tree.node(first.id).bookmarked
    from_file = read_loom_recipe(entry.files[1])
    assert from_file.param("loom")["nodes"] == tree.to_dict()["nodes"]
    labels = [item.text(0) for item in other.tree_view.node_items()]
    assert len(labels) == len(tree.nodes) - 1 and any("★ the first one" in label for label in labels)


def test_siblings_are_written_at_once_and_shown_side_by_side(qtbot, live):
    state, _ = live
    panel = make_panel(qtbot, state, prompt="The Unix way", seed=2)
    panel.sibling_count.setValue(3)
    settle(qtbot, state, panel.write_siblings)
    tree = state.loom.tree
    siblings = tree.siblings(tree.current)
    assert len(siblings) == 3 and len({n.seed for n in siblings}) == 3 and siblings[0].seed == 2
    assert panel.tabs.currentWidget() is panel.siblings and len(panel.siblings.columns) == 3
    texts = {n.text for n in siblings}
    assert len(texts) == 3  # three different continuations
    state.loom.switch_sibling(+1)
    assert panel.page.toPlainText() == "The Unix way" + siblings[1].text


def test_undo_and_regenerate_keep_the_old_text_as_a_branch(qtbot, live):
    state, _ = live
    panel = make_panel(qtbot, state, prompt="Never", seed=4)
    settle(qtbot, state, panel.generate)
    generated = state.loom.tree.node()
    panel.undo()
    assert panel.page.toPlainText() == "Never" and generated.id in state.loom.tree.nodes
    assert state.loom.tree.hidden() == 1
    state.loom.show_branch(generated.id)
    assert panel.page.toPlainText() == "Never" + generated.text


def test_editing_a_chat_message_makes_a_branch_and_says_so(qtbot, live):
    state, _ = live
    panel = make_panel(qtbot, state, mode="chat", model="builtin:text-markov", max_new_tokens=20, seed=5)
    panel.chat_input.setText("Hello")
    settle(qtbot, state, panel.generate)
    tree = state.loom.trees["chat"]
    question = tree.path()[1]
    settle(qtbot, state, lambda: state.loom.edit(question.id, "Good evening"))
    assert [m["content"] for m in state.text.get("messages")][0] == "Good evening"
    page = panel.page.toPlainText()
    assert page.startswith("User (2/2): Good evening\nAssistant") and "Hello" not in page
    assert tree.hidden() == 2  # the first question and its answer: kept, one branch over
    state.loom.switch_sibling(-1)
    assert panel.page.toPlainText().startswith("User (1/2): Hello\nAssistant")


def test_a_path_exports_as_markdown_with_its_recipe_and_the_tree_as_json(qtbot, live, tmp_path):
    from studio.library.export import read_text_recipe

    state, _ = live
    panel = make_panel(qtbot, state, prompt="Q: Why", seed=9)
    settle(qtbot, state, panel.generate)
    assert state.loom.export_path(str(tmp_path / "path.md"))
    assert state.loom.export_tree(str(tmp_path / "tree.loom.json"))
    recipe = read_text_recipe(tmp_path / "path.md")
    assert recipe.seed == 9 and recipe.model == "builtin:text-gpt" and recipe.param("loom") is None
    assert (tmp_path / "path.md").read_text(encoding="utf-8").rstrip().endswith(state.loom.tree.text().rstrip())
    assert read_loom_recipe(tmp_path / "tree.loom.json").param("loom")["id"] == state.loom.tree.id
