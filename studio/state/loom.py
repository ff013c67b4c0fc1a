"""The Text panel's loom: one tree per mode (completion, chat), the generations that grow it, and its saving.

Every generation of the Text panel goes through here: `continue_from(node)` submits the jobs (several at once for
"N siblings") and, when each ends, its text becomes a child of that node — a finished text with its settings, seed
and per-token candidates; a cancelled one (or one cut short by a server going away) with what had streamed in. The
tree (core/loom.py, plain data) is saved to the history after every change that adds to it, one entry per tree
(`text.loom_save`, replacing its previous save), and a saved tree comes back whole from the Gallery (`restore`).
QtCore only: no widgets, no torch; the widgets (studio/widgets/loom_view.py) draw it and call these methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import QObject, Signal

from studio.core.jobs import Job, JobEvent
from studio.core.loom import Loom, LoomError, path_recipe_params
from studio.core.recipe import Recipe

SAVE_KIND = "text.loom_save"
OPERATION = "loom"
NOT_SETTINGS = ("loom", "operation", "messages")  # params of a saved tree that are not the panel's settings


class LoomState(QObject):
    changed = Signal()  # the tree, or the node on show, changed
    busy_changed = Signal(bool)  # the first of a batch of generations started / the last one ended
    started = Signal(str)  # generations were submitted, continuing this node (the page's base)
    note = Signal(str)  # one line for the panel: saved, restored, why something didn't happen

    def __init__(self, state: QObject) -> None:
        """`state` is the State that owns this (typed loosely: studio.state's __init__ imports this module)."""
        super().__init__(state)
        self.state = state
        self.trees = {"completion": Loom("completion"), "chat": Loom("chat")}
        self.running: dict[int, tuple[str, str, bool]] = {}  # job id -> (tree id, parent node, first of its batch)
        self._expect: tuple[str, str, bool] | None = None  # set while our own submit is under way
        self.saved: dict[str, int] = {}  # tree id -> the history entry of its latest save
        self.saving: dict[int, str] = {}  # save job id -> tree id
        self.dirty: set[str] = set()  # trees changed while their save ran: saved again when it ends
        # The panel's page as the user left it (or None): kept as a passage before the tree moves, so moving to
        # another branch never loses what was typed.
        self.draft_provider: Callable[[], str | None] | None = None
        state.submit_requested.connect(self._on_submit)
        state.job_changed.connect(self._on_job)

    # --- what is on show ---------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return "chat" if self.state.text.get("mode") == "chat" else "completion"

    @property
    def tree(self) -> Loom:
        return self.trees[self.mode]

    def busy(self) -> bool:
        return bool(self.running)

    def _tree(self, tree_id: str) -> Loom | None:
        return next((t for t in self.trees.values() if t.id == tree_id), None)

    # --- growing ---------------------------------------------------------------------------------------

    def continue_from(self, node_id: str, fresh_seed: bool = False, count: int = 1) -> list[Job]:
        """Generate `count` continuations of a node (siblings of each other); the first uses the panel's seed,
        the others fresh ones. Completion: the path's text is the prompt; chat: the path's messages."""
        tree = self.tree
        tree.select(node_id)
        was_busy, jobs = self.busy(), []
        for index in range(max(1, count)):
            self._expect = (tree.id, node_id, index == 0)
            if tree.mode == "chat":
                messages = tree.messages(node_id)
                prompt = messages[-1]["content"] if messages else ""
                job = self.state.generate("text", fresh_seed or index > 0, prompt=prompt, messages=messages)
            else:
                self.state.text.set("prompt", tree.text(node_id))
                job = self.state.generate("text", fresh_seed or index > 0)
            self._expect = None
            if job is None:
                break
            jobs.append(job)
        if jobs:
            self.started.emit(node_id)
        if self.busy() and not was_busy:  # (a job a backend refused at once has ended already)
            self.busy_changed.emit(True)
        self.changed.emit()
        return jobs

    def send(self, message: str, count: int = 1) -> list[Job]:
        """Chat: the user's message as a child of the message on show, and the model's answer(s) to it."""
        tree = self.trees["chat"]
        before = tree.current
        node = tree.add(before, message, "written", role="user")
        jobs = self.continue_from(node.id, count=count)
        if not jobs:  # not sent (no model chosen): the message goes back to being typed, not a passage
            tree.prune(node.id)
            tree.select(before)
            self.changed.emit()
        return jobs

    def fork(self, node_id: str, token_index: int, candidate: str) -> list[Job]:
        """A new branch: the node's first tokens, the chosen candidate instead of its token k, and a continuation."""
        node = self.tree.fork(node_id, token_index, candidate)
        return self.continue_from(node.id)

    def edit(self, node_id: str, text: str) -> list[Job]:
        """A new version of a message beside the old one (which stays, one branch over); a user's message is
        answered again."""
        node = self.tree.edit(node_id, text)
        if node.role == "user":
            return self.continue_from(node.id)
        self.changed.emit()
        self.save()
        return []

    def _on_submit(self, job: Job) -> None:
        if self._expect is not None:
            self.running[job.id] = self._expect  # recorded before any backend answers (some answer at once)
            self._expect = None

    def _on_job(self, info) -> None:
        if info.active:
            return
        if info.job.id in self.saving:
            self._saved(info)
            return
        where = self.running.pop(info.job.id, None)
        if where is None:
            return
        tree_id, parent, first = where
        tree = self._tree(tree_id)
        if tree is not None and parent in tree.nodes:
            self._grow(tree, parent, first, info)
        if not self.running:
            self.busy_changed.emit(False)
            self.changed.emit()
            if tree is not None:
                self.save(tree)

    def _grow(self, tree: Loom, parent: str, first: bool, info) -> None:
        """The ended job's text as a child of `parent`: finished, or what streamed in before it stopped."""
        artifacts = info.result.artifacts if info.result is not None else []
        text_outputs = [a for a in artifacts if a.modality == "text"]
        recipe = info.job.recipe
        tokens: list[dict] = []
        entry_id = None
        if text_outputs:
            artifact = text_outputs[-1]
            text, recipe, entry_id = artifact.payload, artifact.recipe, artifact.entry_id
            tokens = [dict(t) for t in artifact.info.get("inspector") or []]
        else:
            preview = info.progress.preview if info.progress is not None else None
            text = preview if isinstance(preview, str) else ""
        partial = "" if info.status == JobEvent.FINISHED else (info.error or info.status.value)
        if tree.mode == "chat":
            lead = len(text) - len(text.lstrip())
            text = text.strip()
            for token in tokens:
                token["start"] = max(0, token.get("start", 0) - lead)
                token["end"] = max(0, min(len(text), token.get("end", 0) - lead))
        if not text:
            if info.status == JobEvent.FINISHED:
                self.note.emit("The model wrote nothing here (it ended the text at once, or a stop sequence came "
                               "first).")
            return
        tree.add(parent, text, "generated", select=first or tree.current == parent,
                 role="assistant" if tree.mode == "chat" else "", params=dict(recipe.params), model=recipe.model,
                 seed=recipe.seed, tokens=tokens, entry_id=entry_id, partial=partial)

    # --- tending -----------------------------------------------------------------------------------------

    def keep_draft(self) -> None:
        """What the user typed on the page becomes a passage of its own (completion), before the tree moves."""
        draft = self.draft_provider() if self.draft_provider is not None else None
        tree = self.tree
        if draft and tree.mode == "completion" and draft != tree.text():
            tree.attach_page(draft)

    def select(self, node_id: str) -> None:
        self.keep_draft()
        self.tree.select(node_id)
        self.changed.emit()

    def show_branch(self, node_id: str) -> None:
        """A node and, below it, its branch as last written."""
        self.select(self.tree.latest_leaf(node_id))

    def switch_sibling(self, step: int) -> None:
        """The current node's next (+1) or previous (-1) sibling, with its branch."""
        self.keep_draft()
        tree = self.tree
        node = tree.branch_points()[-1] if tree.branch_points() else None
        if node is None:
            return
        siblings = tree.siblings(node.id)
        index = (siblings.index(node) + step) % len(siblings)
        self.show_branch(siblings[index].id)

    def prune(self, node_id: str) -> int:
        self.keep_draft()
        gone = self.tree.prune(node_id)
        self.changed.emit()
        self.save()
        return gone

    def rename(self, node_id: str, label: str) -> None:
        self.tree.rename(node_id, label)
        self.changed.emit()
        self.save()

    def bookmark(self, node_id: str, on: bool) -> None:
        self.tree.bookmark(node_id, on)
        self.changed.emit()
        self.save()

    def start_over(self, mode: str | None = None, messages: list[dict] | None = None) -> None:
        """A new tree for a mode (a restored plain recipe, a loaded conversation); the old one stays saved."""
        mode = mode or self.mode
        tree = self.trees[mode] = Loom(mode)
        for message in messages or []:
            tree.add(tree.current, str(message.get("content", "")), "written", role=str(message.get("role", "user")))
        self.changed.emit()

    # --- saving and restoring ----------------------------------------------------------------------------

    def path_recipe(self, tree: Loom | None = None, node_id: str | None = None) -> Recipe:
        """The recipe of a path: the settings, model and seed of its newest generation, its text as the prompt."""
        tree = tree or self.tree
        params, model, seed = path_recipe_params(tree, node_id)
        if not params:
            params = {k: v for k, v in self.state.text.values().items() if k not in ("prompt", "model", "seed")}
        prompt = tree.text(node_id) if tree.mode == "completion" else (tree.messages(node_id) or [{}])[0].get(
            "content", "")
        return Recipe("text", prompt=prompt[:4000], model=model or str(self.state.text.get("model", "")),
                      seed=int(seed if seed is not None else 0),
                      params={**{k: v for k, v in params.items() if k not in NOT_SETTINGS}, "mode": tree.mode})

    def save(self, tree: Loom | None = None) -> Job | None:
        """One history entry for the tree, replacing its previous save (once that one is committed)."""
        tree = tree or self.tree
        if not any(n.kind in ("generated", "fork") for n in tree.nodes.values()):
            return None  # nothing generated yet: nothing worth a Gallery entry
        if tree.id in self.saving.values():
            self.dirty.add(tree.id)
            return None
        recipe = self.path_recipe(tree)
        recipe = replace(recipe, params={**recipe.params, "backend": "", "operation": OPERATION,
                                         "loom": tree.to_dict()})
        job = Job(SAVE_KIND, recipe, args={"replaces": self.saved.get(tree.id)})
        self.saving[job.id] = tree.id
        self.state.submit(job)
        return job

    def _saved(self, info) -> None:
        tree_id = self.saving.pop(info.job.id)
        artifacts = info.result.artifacts if info.result is not None else []
        if info.status == JobEvent.FINISHED and artifacts and artifacts[0].entry_id is not None:
            self.saved[tree_id] = artifacts[0].entry_id
        elif info.status == JobEvent.FAILED:
            self.note.emit(f"The loom tree was not saved: {info.error}")
        if tree_id in self.dirty:
            self.dirty.discard(tree_id)
            tree = self._tree(tree_id)
            if tree is not None:
                self.save(tree)

    def export_path(self, path: str) -> bool:
        """The path on show as Markdown with the recipe that wrote its end (front matter)."""
        from studio.library.loom_files import path_markdown

        return self._export(path, path_markdown(self.tree, self.path_recipe()), "this path")

    def export_tree(self, path: str) -> bool:
        """The whole tree as JSON (File › Open reads it back whole)."""
        from studio.library.loom_files import tree_json

        return self._export(path, tree_json(self.tree, self.path_recipe()), "the tree")

    def _export(self, path: str, text: str, what: str) -> bool:
        from pathlib import Path

        from studio.core.files import atomic_write_bytes

        try:
            atomic_write_bytes(Path(path), text.encode("utf-8"))
        except OSError as exc:
            self.note.emit(f"Could not save {what} to {path}: {exc.strerror or exc}")
            return False
        self.note.emit(f"Saved {what} to {path}")
        return True

    def restore(self, recipe: Recipe) -> bool:
        """A saved tree back whole (its settings into the panel); False for any other recipe — a plain text
        recipe starts a new tree for its mode, so its prompt is not grafted onto the tree on show."""
        if recipe.modality != "text":
            return False
        if recipe.param("operation") != OPERATION or not isinstance(recipe.param("loom"), dict):
            if recipe.param("operation") is None:  # a text output (not a comparison): its own new tree
                mode = "chat" if recipe.param("mode") == "chat" else "completion"
                self.trees[mode] = Loom(mode)
                self.changed.emit()
            return False
        try:
            tree = Loom.from_dict(recipe.param("loom"))
        except LoomError as exc:
            self.state.error_raised.emit("text", f"The saved loom tree can't be read: {exc}")
            return True
        settings = {k: v for k, v in recipe.params.items() if k not in NOT_SETTINGS}
        prompt = tree.text() if tree.mode == "completion" else str(self.state.text.get("prompt", ""))
        self.state.text.restore(replace(recipe, prompt=prompt, params={**settings, "mode": tree.mode}),
                                keep_model=False)
        self.trees[tree.mode] = tree
        self.changed.emit()
        self.state.restore_requested.emit("text")
        self.note.emit(f"The loom tree is back: {len(tree.nodes) - 1} passages, {tree.hidden()} not on this path.")
        return True
