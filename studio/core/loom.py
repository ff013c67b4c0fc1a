"""The loom: a tree of texts instead of one page. Plain data, no Qt (studio/state/loom.py drives it for the panel).

Every node holds a piece of text that continues its parent's: the root is empty, a "written" node is text the
user typed, a "generated" node is one generation (with the settings, model and seed that made it and, per token,
the candidates before and after the sampling controls), a "fork" node is a generated node's first k tokens
followed by another candidate the user picked. A path from the root to a node is one text; the page shows one path.
In a chat tree every node below the root is one message (`role`), and editing a message adds a sibling: the old
branch stays.

`to_dict`/`from_dict` are the saved form (JSON), versioned; `markdown` writes one path with its recipe.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any

LOOM_VERSION = 1
KINDS = ("root", "written", "generated", "fork", "edited")


def _new_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class LoomNode:
    id: str
    parent: str | None
    text: str
    kind: str = "written"  # one of KINDS
    role: str = ""  # chat: "user" | "assistant"; "" in a completion tree
    params: dict[str, Any] = field(default_factory=dict)  # the recipe params that generated it
    model: str = ""
    seed: int | None = None
    tokens: list[dict] = field(default_factory=list)  # per token: text, span in `text`, candidates before/after
    label: str = ""  # the user's name for the branch
    bookmarked: bool = False
    created: float = field(default_factory=time.time)
    entry_id: int | None = None  # the history row of the text output it came from
    partial: str = ""  # why it is cut short ("cancelled", "server went away: …"); "" when complete

    @classmethod
    def from_dict(cls, data: dict) -> LoomNode:
        known = {f.name for f in fields(cls)}
        node = cls(**{k: v for k, v in data.items() if k in known})
        if not isinstance(node.text, str) or node.kind not in KINDS or not isinstance(node.id, str):
            raise ValueError(f"a loom node that is not one: {str(data)[:80]}")
        return node


class LoomError(ValueError):
    """A saved tree that can't be read (its words say why)."""


class Loom:
    def __init__(self, mode: str = "completion", tree_id: str | None = None) -> None:
        self.mode = mode  # "completion" | "chat"
        self.id = tree_id or _new_id()
        root = LoomNode(_new_id(), None, "", "root")
        self.root = root.id
        self.nodes: dict[str, LoomNode] = {root.id: root}
        self.current = root.id  # the node whose path the page shows

    # --- reading ---------------------------------------------------------------------------------------

    def node(self, node_id: str | None = None) -> LoomNode:
        return self.nodes[node_id or self.current]

    def path(self, node_id: str | None = None) -> list[LoomNode]:
        """Root first, `node_id` (default: the current node) last."""
        chain, node = [], self.nodes.get(node_id or self.current)
        while node is not None and len(chain) <= len(self.nodes):  # more than every node: a (damaged) cycle
            chain.append(node)
            node = self.nodes.get(node.parent) if node.parent else None
        return chain[::-1]

    def text(self, node_id: str | None = None) -> str:
        """A completion path's text: its nodes' texts one after the other."""
        return "".join(node.text for node in self.path(node_id))

    def offset(self, node_id: str) -> int:
        """Where a node's own text starts in its path's text."""
        return len(self.text(self.nodes[node_id].parent)) if self.nodes[node_id].parent else 0

    def messages(self, node_id: str | None = None) -> list[dict]:
        """A chat path as messages (the root left out)."""
        return [{"role": n.role or "user", "content": n.text} for n in self.path(node_id) if n.kind != "root"]

    def children(self, node_id: str) -> list[LoomNode]:
        return sorted((n for n in self.nodes.values() if n.parent == node_id), key=lambda n: n.created)

    def siblings(self, node_id: str) -> list[LoomNode]:
        """The node and its parent's other children, oldest first (the root has none)."""
        parent = self.nodes[node_id].parent
        return self.children(parent) if parent else [self.nodes[node_id]]

    def latest_leaf(self, node_id: str) -> str:
        """Down from a node through its newest children: the branch as it was last written."""
        while True:
            children = self.children(node_id)
            if not children:
                return node_id
            node_id = children[-1].id

    def hidden(self, node_id: str | None = None) -> int:
        """Nodes not on the path shown: the branches the page doesn't show (but the tree keeps)."""
        return len(self.nodes) - len(self.path(node_id))

    def branch_points(self, node_id: str | None = None) -> list[LoomNode]:
        """The nodes of a path that have siblings: where it could have gone another way."""
        return [n for n in self.path(node_id) if n.kind != "root" and len(self.siblings(n.id)) > 1]

    # --- growing -----------------------------------------------------------------------------------------

    def add(self, parent: str, text: str, kind: str = "written", select: bool = True, **values: Any) -> LoomNode:
        node = LoomNode(_new_id(), parent, text, kind, **values)
        if parent not in self.nodes:
            raise KeyError(f"no node {parent} in this tree")
        # Strictly later than its siblings even within one clock tick: `children` orders by `created`.
        latest = max((n.created for n in self.children(parent)), default=0.0)
        node.created = max(node.created, latest + 1e-6)
        self.nodes[node.id] = node
        if select:
            self.current = node.id
        return node

    def attach_page(self, page: str) -> str:
        """The node whose path is `page` (a completion page as the user left it): the deepest node of the current
        path whose text the page starts with, plus a new "written" node for what the user typed after it. An edit
        inside the path thereby starts a branch beside the old text, which stays."""
        at, position = self.root, 0
        for node in self.path()[1:]:
            end = position + len(node.text)
            if page[position:end] != node.text:
                break
            at, position = node.id, end
        if position < len(page):
            return self.add(at, page[position:], "written").id
        self.current = at
        return at

    def fork(self, node_id: str, token_index: int, candidate: str) -> LoomNode:
        """A sibling of a generated node: its first `token_index` tokens exactly, then `candidate` instead of the
        token it chose; the caller continues from there."""
        original = self.nodes[node_id]
        tokens = original.tokens
        if not 0 <= token_index < len(tokens):
            raise IndexError(f"token {token_index} of a node with {len(tokens)}")
        cut = int(tokens[token_index]["start"])
        chosen = dict(tokens[token_index], token=candidate, start=cut, end=cut + len(candidate), forked=True)
        return self.add(original.parent, original.text[:cut] + candidate, "fork", role=original.role,
                        params=dict(original.params), model=original.model, seed=original.seed,
                        tokens=[dict(t) for t in tokens[:token_index]] + [chosen])

    def edit(self, node_id: str, text: str) -> LoomNode:
        """A new version of a node (a chat message, a written passage) beside the old one."""
        old = self.nodes[node_id]
        return self.add(old.parent, text, "edited", role=old.role)

    # --- tending ---------------------------------------------------------------------------------------

    def select(self, node_id: str) -> None:
        if node_id not in self.nodes:
            raise KeyError(node_id)
        self.current = node_id

    def prune(self, node_id: str) -> int:
        """Remove a node and everything below it (never the root); returns how many nodes went."""
        if node_id == self.root:
            raise ValueError("the root of a tree can't be pruned")
        gone = {node_id}
        changed = True
        while changed:
            more = {n.id for n in self.nodes.values() if n.parent in gone} - gone
            gone |= more
            changed = bool(more)
        if self.current in gone:
            self.current = self.nodes[node_id].parent
        for removed in gone:
            del self.nodes[removed]
        return len(gone)

    def rename(self, node_id: str, label: str) -> None:
        self.nodes[node_id].label = label.strip()

    def bookmark(self, node_id: str, on: bool = True) -> None:
        self.nodes[node_id].bookmarked = on

    # --- saved form --------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {"loom_version": LOOM_VERSION, "id": self.id, "mode": self.mode, "root": self.root,
                "current": self.current, "nodes": [asdict(n) for n in self.nodes.values()]}

    @classmethod
    def from_dict(cls, data: Any) -> Loom:
        """A saved tree, checked: every node's parent is in the tree, one root, no cycle."""
        try:
            if not isinstance(data, dict) or int(data.get("loom_version", 0)) > LOOM_VERSION:
                raise LoomError("not a loom tree this version of the app reads")
            loom = cls(str(data.get("mode", "completion")), str(data["id"]))
            nodes = [LoomNode.from_dict(n) for n in data["nodes"]]
            loom.nodes = {n.id: n for n in nodes}
            loom.root, loom.current = str(data["root"]), str(data.get("current") or data["root"])
        except (KeyError, TypeError, ValueError) as exc:
            raise LoomError(f"a damaged loom tree ({exc})") from None
        loom._check()
        return loom

    def _check(self) -> None:
        if self.root not in self.nodes or self.nodes[self.root].parent is not None:
            raise LoomError("a loom tree without its root")
        for node in self.nodes.values():
            if node.id != self.root and node.parent not in self.nodes:
                raise LoomError(f"node {node.id} hangs from a missing node")
            if len(self.path(node.id)) > len(self.nodes) or self.path(node.id)[0].id != self.root:
                raise LoomError("a loom tree with a cycle")
        if self.current not in self.nodes:
            self.current = self.root


def path_recipe_params(loom: Loom, node_id: str | None = None) -> tuple[dict, str, int | None]:
    """(params, model, seed) of the newest generation on a path: the settings that wrote its end."""
    for node in reversed(loom.path(node_id)):
        if node.kind in ("generated", "fork") and node.params:
            return dict(node.params), node.model, node.seed
    return {}, "", None
