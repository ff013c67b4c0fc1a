"""The loom's tree (core/loom.py) as plain data: paths, branching edits, forks, pruning, the saved form."""

import json

import pytest

from studio.core.loom import Loom, LoomError, path_recipe_params


def grown() -> Loom:
    tree = Loom()
    prompt = tree.add(tree.root, "Once upon a time", "written")
    tree.add(prompt.id, " there was a cat.", "generated", params={"temperature": 0.8}, model="m", seed=1,
             tokens=[{"token": " there", "start": 0, "end": 6}, {"token": " was", "start": 6, "end": 10},
                     {"token": " a", "start": 10, "end": 12}, {"token": " cat.", "start": 12, "end": 17}])
    return tree


def test_a_path_is_its_nodes_texts_in_order():
    tree = grown()
    assert tree.text() == "Once upon a time there was a cat."
    assert [n.kind for n in tree.path()] == ["root", "written", "generated"]
    assert tree.offset(tree.current) == len("Once upon a time")


def test_editing_inside_the_path_starts_a_branch_and_keeps_the_old_text():
    tree = grown()
    old = tree.current
    same = tree.attach_page("Once upon a time there was a cat.")
    assert same == old and len(tree.nodes) == 3  # the page as drawn: nothing new
    typed = tree.attach_page("Once upon a time there was a cat. It")
    assert tree.node(typed).parent == old and tree.node(typed).text == " It"
    branch = tree.attach_page("Once upon a time in Paris")  # changed inside the generated passage
    assert tree.node(branch).text == " in Paris" and tree.node(branch).parent == tree.path(old)[1].id
    assert tree.text(old) == "Once upon a time there was a cat."  # the old branch is all there
    assert tree.hidden() == 2 and len(tree.siblings(branch)) == 2


def test_forking_at_token_k_keeps_the_first_k_tokens_byte_for_byte():
    tree = grown()
    original = tree.current
    for k in range(4):
        fork = tree.fork(original, k, " dog")
        before = tree.text(original)
        cut = tree.offset(original) + tree.node(original).tokens[k]["start"]
        assert tree.text(fork.id).encode()[:cut] == before.encode()[:cut] and len(fork.tokens) == k + 1
        assert tree.text(fork.id)[cut:] == " dog" and fork.tokens[:k] == tree.node(original).tokens[:k]
    with pytest.raises(IndexError):
        tree.fork(original, 9, "x")


def test_prune_bookmark_rename_and_the_newest_branch():
    tree = grown()
    parent = tree.node().parent
    second = tree.add(parent, " lived a king.", "generated")
    tree.add(second.id, " The end.", "generated")
    assert tree.latest_leaf(parent) != second.id and tree.node(tree.latest_leaf(parent)).text == " The end."
    tree.rename(second.id, "  the king  ")
    tree.bookmark(second.id)
    assert tree.node(second.id).label == "the king" and tree.node(second.id).bookmarked
    assert tree.prune(second.id) == 2 and tree.current == parent
    with pytest.raises(ValueError):
        tree.prune(tree.root)


def test_the_saved_form_round_trips_and_a_damaged_one_is_refused():
    tree = grown()
    tree.fork(tree.current, 2, " an")
    again = Loom.from_dict(json.loads(json.dumps(tree.to_dict())))
    assert again.to_dict() == tree.to_dict() and again.text() == tree.text()
    assert path_recipe_params(again)[1:] == ("m", 1)
    data = tree.to_dict()
    data["nodes"][1]["parent"] = "nowhere"
    with pytest.raises(LoomError, match="missing"):
        Loom.from_dict(data)
    looped = tree.to_dict()
    first, second = looped["nodes"][1], looped["nodes"][2]
    first["parent"], second["parent"] = second["id"], first["id"]
    with pytest.raises(LoomError):
        Loom.from_dict(looped)
    with pytest.raises(LoomError):
        Loom.from_dict({"loom_version": 99})


def test_a_chat_tree_keeps_every_version_of_a_message():
    tree = Loom("chat")
    question = tree.add(tree.root, "Hi", role="user")
    tree.add(question.id, "Hello.", "generated", role="assistant")
    edited = tree.edit(question.id, "Hello there")
    assert tree.messages() == [{"role": "user", "content": "Hello there"}]
    assert [n.text for n in tree.siblings(edited.id)] == ["Hi", "Hello there"]
    assert tree.branch_points() == [edited] and tree.hidden() == 2
