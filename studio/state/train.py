"""The Train tab's state: the folder read (items, captions, problems), the run in progress (its loss curve and
checkpoints with their sample grids), the checkpoint picked, the runs left unfinished on disk. QtCore only.

Everything the engine does for the tab goes through the normal job path (`State.submit`): "train.scan" reads the
folder, "train.run" trains or resumes (its progress carries {"loss": [step, loss]} each step and {"checkpoint": …}
at each checkpoint, the first message the run's history so far), "train.save" writes the picked checkpoint as an
adapter. A run's files say where it stands (run.json, state.json, each checkpoint's samples), so after a restart the
tab lists the unfinished runs and shows their curves and grids from disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from studio import paths
from studio.core.jobs import Job, JobEvent
from studio.core.recipe import Recipe
from studio.engine.train.settings import BASE_MODELS


def read_run(folder: Path) -> dict | None:
    """A run folder's record and state as the tab shows them; None when it is not (or no longer) a run."""
    try:
        record = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        state_file = folder / "state.json"
        state = json.loads(state_file.read_text(encoding="utf-8")) if state_file.exists() else {}
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or "settings" not in record:
        return None
    return {"run_dir": str(folder), "name": record.get("name", folder.name), "medium": record["settings"].get("medium"),
            "step": int(state.get("step", 0)), "steps": int(record.get("plan", {}).get("steps", 0)),
            "finished": bool(state.get("finished")), "history": state.get("history", []),
            "checkpoints": state.get("checkpoints", []), "settings": record["settings"]}


def checkpoint_samples(entry: dict) -> dict | None:
    """A checkpoint's samples from its folder (a run read from disk carries no samples in its state)."""
    folder = Path(entry.get("folder", ""))
    if not (folder / "samples.json").exists():
        return None
    try:
        samples = json.loads((folder / "samples.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (folder / "samples.png").exists():
        samples["png"] = (folder / "samples.png").read_bytes()
    return samples


class TrainState(QObject):
    report_changed = Signal()  # the folder's items / problems (after a scan, or a caption edited)
    history_reset = Signal()  # a new run (or one read from disk) is on show: redraw the whole curve
    loss_added = Signal(int, float)  # one step's training loss
    checkpoints_changed = Signal()
    picked_changed = Signal(object)  # the step picked, or None
    message_changed = Signal(str)
    busy_changed = Signal(bool)
    saved = Signal(str)  # the adapter folder written

    def __init__(self, state: QObject) -> None:
        """`state` is the State that owns this (typed loosely: studio.state's __init__ imports this module)."""
        super().__init__(state)
        self.state = state
        self.values = state.panels["train"]
        self.report: dict | None = None
        self.run_dir = ""
        self.history: list[list[float]] = []
        self.checkpoints: list[dict] = []
        self.picked: int | None = None
        self.message = ""
        self.jobs: dict[int, str] = {}  # job id -> "scan" | "run" | "save"
        state.preview_changed.connect(self._on_progress)
        state.result_ready.connect(self._on_result)
        state.job_changed.connect(self._on_job)

    # --- the folder ---------------------------------------------------------------------------------------------------

    def scan(self, draft_captions: bool = False) -> Job | None:
        folder = str(self.values.get("folder") or "").strip()
        if not folder:
            self.say("Choose a folder first.")
            return None
        medium = self.values.get("medium")
        args = {"folder": folder, "medium": medium, "model": self.base_model(), "draft_captions": draft_captions,
                "size": int(self.values.get("resolution") or 0)}
        self.say("Reading the folder…")
        return self._submit("scan", Job("train.scan", args=args, save=False, supersede_key="train.scan"))

    def base_model(self) -> str:
        return str(self.values.get("model") or BASE_MODELS[self.values.get("medium") or "image"])

    @property
    def items(self) -> list[dict]:
        return list(self.report["items"]) if self.report else []

    def can_start(self) -> bool:
        return bool(self.report and self.report.get("can_train") and self.report["items"]
                    and self.report.get("medium") == self.values.get("medium"))

    def set_caption(self, index: int, caption: str) -> None:
        if self.report and 0 <= index < len(self.report["items"]):
            self.report["items"][index] = {**self.report["items"][index], "caption": caption}

    def set_tag(self, index: int, name: str, value: Any) -> None:
        if self.report and 0 <= index < len(self.report["items"]):
            item = self.report["items"][index]
            self.report["items"][index] = {**item, "tags": {**item.get("tags", {}), name: value}}

    # --- the run ------------------------------------------------------------------------------------------------------

    def start(self, replace: bool = True) -> Job | None:
        if not self.can_start():
            self.say("Read a folder without errors first (step 1).")
            return None
        settings = self.values.values()
        settings["model"] = self.base_model()
        args = {"settings": settings, "items": self.items, "replace": replace}
        self._show_run("", [], [])
        return self._submit("run", Job("train.run", Recipe("train", prompt=self._title(), params=settings), args,
                                       save=False))

    def resume(self, run_dir: str) -> Job | None:
        run = read_run(Path(run_dir))
        if run is None:
            self.say(f"{run_dir} is not a training run any more.")
            return None
        self._show_run(run_dir, run["history"], run["checkpoints"])
        title = f"{run['name']} (resumed at step {run['step']})"
        return self._submit("run", Job("train.run", Recipe("train", prompt=title, params=run["settings"]),
                                       {"run_dir": run_dir}, save=False))

    def show(self, run_dir: str) -> None:
        """A run read from disk, its curve and grids on show (to pick a checkpoint of a finished run)."""
        run = read_run(Path(run_dir))
        if run is not None:
            self._show_run(run_dir, run["history"], run["checkpoints"])

    def cancel(self) -> None:
        for job_id, kind in list(self.jobs.items()):
            if kind in ("run", "scan"):
                self.state.cancel(job_id)

    def running(self) -> bool:
        return "run" in self.jobs.values()

    def pick(self, step: int | None) -> None:
        if step != self.picked:
            self.picked = step
            self.picked_changed.emit(step)

    def suggested(self) -> int | None:
        """The checkpoint with the best score (lowest held-out loss), the one picked unless the user picks another."""
        scored = [c for c in self.checkpoints if c.get("score") is not None and c["step"] > 0]
        return min(scored, key=lambda c: c["score"])["step"] if scored else None

    def save(self, name: str = "") -> Job | None:
        step = self.picked if self.picked is not None else self.suggested()
        if not self.run_dir or step is None:
            self.say("Train first, then pick a checkpoint from the grids.")
            return None
        args = {"run_dir": self.run_dir, "step": step, "name": name or self.values.get("name") or ""}
        return self._submit("save", Job("train.save", Recipe("train", prompt=f"save step {step}"), args, save=False))

    def unfinished_runs(self) -> list[dict]:
        root = paths.training_dir()
        runs = [read_run(folder) for folder in sorted(root.iterdir()) if folder.is_dir()]
        return [run for run in runs if run is not None and not run["finished"]]

    def say(self, text: str) -> None:
        self.message = text
        self.message_changed.emit(text)

    # --- engine messages ----------------------------------------------------------------------------------------------

    def _title(self) -> str:
        folder = str(self.values.get("folder") or "").rstrip("/\\")
        return str(self.values.get("name") or Path(folder).name or "adapter")

    def _submit(self, kind: str, job: Job) -> Job:
        self.jobs[job.id] = kind
        self.busy_changed.emit(True)
        return self.state.submit(job)

    def _show_run(self, run_dir: str, history: list, checkpoints: list) -> None:
        self.run_dir, self.history = run_dir, [list(point) for point in history]
        self.checkpoints = [dict(entry) for entry in checkpoints]
        self.picked = None
        self.history_reset.emit()
        self.checkpoints_changed.emit()
        self.picked_changed.emit(None)

    def _on_progress(self, modality: str, progress) -> None:
        preview = progress.preview
        if modality != "train" or not isinstance(preview, dict):
            return
        if "history" in preview:  # the run's first message: where it stands (a resumed run's whole curve)
            self._show_run(preview.get("run_dir", ""), preview["history"], preview.get("checkpoints", []))
        if "loss" in preview:
            step, loss = preview["loss"]
            self.history.append([step, loss])
            self.loss_added.emit(int(step), float(loss))
        if "checkpoint" in preview:
            entry = preview["checkpoint"]
            self.checkpoints = [c for c in self.checkpoints if c["step"] != entry["step"]] + [entry]
            self.checkpoints_changed.emit()
        if progress.message:
            self.say(progress.message)

    def _on_result(self, job, result) -> None:
        kind = self.jobs.get(job.id)
        if kind == "scan" and isinstance(result.value, dict):
            self.report = result.value
            self.report_changed.emit()
            errors = [p for p in self.report["problems"] if p["level"] == "error"]
            self.say(self.report["summary"] + (" — fix the problems above to train." if errors else ""))
        elif kind == "run" and isinstance(result.value, dict):
            self.say(f"Finished: {result.value['state']['step']} steps. Pick the best grid and save it as an adapter.")
            self.pick(self.suggested())
        elif kind == "save" and isinstance(result.value, dict):
            self.say(f"Saved the adapter to {result.value['adapter']}; it is in the {result.value['medium']} "
                     "panel's model list.")
            self.saved.emit(result.value["adapter"])

    def _on_job(self, info) -> None:
        kind = self.jobs.get(info.job.id)
        if kind is None or info.active:
            return
        del self.jobs[info.job.id]
        if info.status == JobEvent.FAILED:
            self.say(f"Could not {kind}: {info.error}")
        elif info.status == JobEvent.CANCELLED and kind == "run":
            self.say("Stopped. The last checkpoint is kept: Resume goes on from it.")
        self.busy_changed.emit(bool(self.jobs))
