"""Compare families: the same prompt, seed and sampling settings through a Markov, an RNN and a transformer model,
side by side. What the comparison view draws lives here (its columns, their figures, the message), so a comparison
restored from the Gallery before its panel exists just sets them. QtCore only: no widgets, no torch.

A run is three jobs through the normal job path (`State.submit`; the engine process runs them one at a time), kind
"<medium>.compare" with args {"family": NAME} and the panel's recipe with the family's model; they are not saved one
by one. When the three have ended, one more job of that kind with args {"columns": [...]} saves the comparison as
one history entry: its recipe holds the shared settings and, under params["compare"], the three families' models
and the finished columns, so double-clicking it in the Gallery brings the whole comparison back (`restore`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, Signal

from studio.core.jobs import Job, JobEvent, Result
from studio.core.recipe import Recipe

FAMILIES: dict[str, tuple[tuple[str, str], ...]] = {
    "text": (("Markov", "builtin:text-markov"), ("RNN", "builtin:text-rnn"), ("Transformer", "builtin:text-gpt")),
    "music": (("Markov", "builtin:music-markov"), ("RNN", "builtin:music-rnn"), ("Transformer", "builtin:music-gpt")),
}
OPERATIONS = {"text": "text.compare", "music": "music.compare"}
NOT_SHARED = ("operation", "compare", "messages", "inspect")  # params of the comparison that are not the settings

SURPRISE_TIP = (
    "Surprise: how unexpected the model finds what it wrote itself. The mean, over the generated tokens, of "
    "−log₂ P(token | everything before it), P being the model's own distribution before temperature, top-k/p and "
    "the other sampling controls (and, for music, the grammar). Lower = the model found its output more "
    "predictable. Bits per byte divides the total by the text's UTF-8 bytes: the Markov model reads bytes and the "
    "others word pieces, so bits/byte is the figure that compares across them.\n\n"
    "Prompt (text): the prompt's own bits per byte under each model (its first token given). Paste a passage none of "
    "the models learnt from (the held-out set) and this is the families' fair comparison on the same text."
)
RATE_TIP = "Tokens per second while sampling (the prompt's reading included), on this machine, one job at a time."


def figures(column: dict[str, Any]) -> str:
    """A column's figures, one a line: tokens/s, surprise in bits/token (and bits/byte and the prompt's for text)."""
    status = column.get("status", "")
    if status == "failed":
        return "failed: " + str(column.get("error", ""))
    if status in ("queued", "running", "cancelled") and column.get("tokens_per_s") is None:
        return {"queued": "waiting…", "running": "running…", "cancelled": "cancelled"}[status]
    lines = [f"{float(column.get('tokens_per_s') or 0):,.0f} tokens/s"]
    if column.get("surprise_bits") is not None:
        surprise = f"surprise {float(column['surprise_bits']):.2f} bits/token"
        if column.get("bits_per_byte") is not None:
            surprise += f" · {float(column['bits_per_byte']):.2f} bits/byte"
        lines.append(surprise)
    if column.get("prompt_bits_per_byte") is not None:
        lines.append(f"prompt {float(column['prompt_bits_per_byte']):.2f} bits/byte")
    return "\n".join(lines)  # one figure a line: a narrow column must not break "bits/byte" in two


class CompareState(QObject):
    """The comparisons of the Text and Music panels (one per medium)."""

    changed = Signal(str)  # medium: its columns or message changed
    show_requested = Signal(str)  # medium: bring its comparison forward (a run started, a comparison restored)

    def __init__(self, state: QObject) -> None:
        """`state` is the State that owns this (typed loosely: studio.state's __init__ imports this module)."""
        super().__init__(state)
        self.state = state
        self.families: dict[str, list[tuple[str, str]]] = {m: list(f) for m, f in FAMILIES.items()}
        self.columns: dict[str, list[dict[str, Any]]] = {m: [] for m in FAMILIES}
        self.recipes: dict[str, Recipe | None] = dict.fromkeys(FAMILIES)  # the shared recipe on show
        self.messages: dict[str, str] = dict.fromkeys(FAMILIES, "")
        self.saved: dict[str, list[str]] = {m: [] for m in FAMILIES}  # files of the last saved comparison
        self.pending: dict[int, tuple[str, int]] = {}  # job id -> (medium, column)
        self.saving: dict[int, str] = {}  # job id -> medium
        self.unshown: set[str] = set()  # media whose comparison asked to be shown before any view took it
        state.job_changed.connect(self._on_job)
        state.result_ready.connect(self._on_result)

    def running(self, medium: str) -> bool:
        return any(m == medium for m, _ in self.pending.values())

    def say(self, medium: str, text: str) -> None:
        self.messages[medium] = text
        self.changed.emit(medium)

    # --- a run ---------------------------------------------------------------------------------

    def run(self, medium: str) -> list[Job]:
        """Submit one job per family with the panel's prompt, settings and one seed (drawn here when random)."""
        if self.running(medium):
            return []
        panel = self.state.panels[medium]
        recipe = panel.recipe()
        recipe = replace(recipe, params={k: v for k, v in recipe.params.items() if k not in NOT_SHARED})
        panel.last_seed = recipe.seed
        panel.last_seed_changed.emit(recipe.seed)
        self.recipes[medium] = recipe
        self.saved[medium] = []
        self.columns[medium] = [{"family": name, "model": ref, "status": "queued", "text": "", "notes": []}
                                for name, ref in self.families[medium]]
        jobs = []
        for index, (name, ref) in enumerate(self.families[medium]):
            job = Job(OPERATIONS[medium], replace(recipe, model=ref), args={"family": name}, save=False)
            self.pending[job.id] = (medium, index)
            jobs.append(self.state.submit(job))
        self.say(medium, f"Comparing {len(jobs)} model families on seed {recipe.seed}…")
        self._show(medium)
        return jobs

    def _show(self, medium: str) -> None:
        self.unshown.add(medium)  # a view that shows it takes it out (a panel built later shows it then)
        self.show_requested.emit(medium)

    def cancel(self, medium: str) -> None:
        for job_id, (m, _) in list(self.pending.items()):
            if m == medium:
                self.state.cancel(job_id)

    def _on_job(self, info) -> None:
        where = self.pending.get(info.job.id)
        if where is None:
            if info.job.id in self.saving and info.status == JobEvent.FAILED:
                self.say(self.saving.pop(info.job.id), f"Not saved: {info.error}")
            return
        medium, index = where
        column = self.columns[medium][index]
        if info.status == JobEvent.STARTED:
            column["status"] = "running"
        elif info.status == JobEvent.PROGRESS:
            column["status"] = "running"
            preview = info.progress.preview if info.progress is not None else None
            if isinstance(preview, dict):
                column["text"] = str(preview.get("text") or "")
                column["notes"] = list(preview.get("notes") or [])
        elif not info.active and info.status != JobEvent.FINISHED:  # failed, cancelled: no result comes
            column["status"] = "failed" if info.status == JobEvent.FAILED else "cancelled"
            column["error"] = info.error
            self.pending.pop(info.job.id, None)
            self._maybe_done(medium)
        self.changed.emit(medium)

    def _on_result(self, job: Job, result: Result) -> None:
        if job.id in self.saving:
            medium = self.saving.pop(job.id)
            self.saved[medium] = [str(f) for a in result.artifacts for f in a.files]
            names = ", ".join(f.name for a in result.artifacts for f in a.files[:1])
            self.say(medium, f"Saved to the gallery as one comparison: {names}")
            return
        where = self.pending.pop(job.id, None)
        if where is None:
            return
        medium, index = where
        column = self.columns[medium][index]
        column.update(result.value or {})
        column["status"] = "done"
        self.changed.emit(medium)
        self._maybe_done(medium)

    def _maybe_done(self, medium: str) -> None:
        if self.running(medium):
            return
        done = [c for c in self.columns[medium] if c.get("status") == "done"]
        if not done:
            self.say(medium, "No model finished: nothing to compare.")
            return
        self.say(medium, "Done; saving the comparison…")
        recipe = self.comparison_recipe(medium)
        job = Job(OPERATIONS[medium], recipe, args={"columns": [self._stored(c) for c in done]}, save=True)
        self.saving[job.id] = medium
        self.state.submit(job)

    @staticmethod
    def _stored(column: dict[str, Any]) -> dict[str, Any]:
        keep = ("family", "model", "status", "text", "notes", "tokens", "tokens_per_s", "surprise_bits",
                "bits_per_byte", "prompt_bits_per_byte", "key", "metre", "tempo", "style", "programs", "error")
        stored = {k: column[k] for k in keep if k in column}
        if not stored.get("notes"):
            stored.pop("notes", None)
        if not stored.get("text"):
            stored.pop("text", None)
        return stored

    def comparison_recipe(self, medium: str) -> Recipe:
        """The history's recipe of the comparison: the shared settings, the models and the finished columns."""
        recipe = self.recipes[medium]
        assert recipe is not None
        compare = {"families": [list(f) for f in self.families[medium]],
                   "columns": [self._stored(c) for c in self.columns[medium]]}
        return replace(recipe, model=self.families[medium][-1][1],
                       params={**recipe.params, "operation": OPERATIONS[medium], "compare": compare})

    # --- restore -------------------------------------------------------------------------------

    def restore(self, recipe: Recipe) -> bool:
        """Take back a saved comparison whole (its panel's settings, models, columns); False for anything else."""
        medium = recipe.modality
        if medium not in OPERATIONS or recipe.param("operation") != OPERATIONS[medium]:
            return False
        compare = recipe.param("compare") or {}
        shared = replace(recipe, params={k: v for k, v in recipe.params.items() if k not in NOT_SHARED})
        self.state.panels[medium].restore(shared, keep_model=True)  # the panel keeps the model it had
        families = [tuple(f) for f in compare.get("families") or []]
        if len(families) == len(FAMILIES[medium]):
            self.families[medium] = families
        self.recipes[medium] = shared
        self.columns[medium] = [dict(c) for c in compare.get("columns") or []]
        self.say(medium, f"The comparison of seed {recipe.seed} is back (saved; Compare again runs it anew).")
        self.state.restore_requested.emit(medium)
        self._show(medium)
        return True
