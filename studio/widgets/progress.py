"""Job progress: a one-line status for a panel, and the queue list with per-job Cancel buttons."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from studio.core.jobs import JobEvent, Progress
from studio.state import JobInfo, State
from studio.widgets.labels import MessageLabel


def progress_text(progress: Progress | None, unit: str = "it") -> str:
    """'step 7/20 · 3.1 it/s · ETA 4 s' from a Progress stamped with elapsed time."""
    if progress is None:
        return "starting…"
    text = f"step {progress.step}/{progress.total}"
    if progress.rate > 0:  # counted from the first step, not from the job's start (model loading)
        remaining = (progress.total - progress.step) / progress.rate
        text += f" · {progress.rate:.1f} {unit}/s · ETA {remaining:.0f} s"
    if progress.message:
        text += f" · {progress.message}"
    return text


STATUS_TEXT = {
    JobEvent.QUEUED: "queued",
    JobEvent.STARTED: "starting…",
    JobEvent.FINISHED: "done",
    JobEvent.FAILED: "failed",
    JobEvent.CANCELLED: "cancelled",
    JobEvent.SUPERSEDED: "replaced by a newer request",
}


def cancel_or_force_stop(state: State, job_id: int | None) -> None:
    info = state.jobs.get(job_id) if job_id is not None else None
    if info is not None and info.active and info.extra.get("force_stop"):
        state.force_stop()
    else:
        state.cancel(job_id)


def show_force_stop(button: QPushButton, info: JobInfo) -> None:
    """A cancel the engine didn't answer within its grace time turns the button into Force stop."""
    if info.active and info.extra.get("force_stop"):
        button.setText("Force stop")
        button.setToolTip("The job didn't stop at a step (a long load or decode): end the engine now. It restarts at "
                          "once; queued jobs stay queued and finished outputs are safe.")
    else:
        button.setText("Cancel")
        button.setToolTip("Stop this job at its next step (Esc cancels the running job)")


class JobRow(QWidget):
    def __init__(self, state: State, info: JobInfo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job_id = info.job.id
        # Long prompts wrap (at most ~3 lines) instead of widening the dock and, with it, the window.
        title = info.title if len(info.title) <= 90 else info.title[:89] + "…"
        self.title = QLabel(title)
        self.title.setObjectName("jobTitle")
        self.title.setWordWrap(True)
        self.title.setToolTip(info.title)
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(6)
        self.detail = MessageLabel(most=160)  # an error of any length wraps inside the dock (all of it in the tooltip)
        self.detail.setObjectName("jobDetail")
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip("Stop this job at its next step (Esc cancels the running job)")
        self.cancel.clicked.connect(lambda: cancel_or_force_stop(state, self.job_id))
        # The title has the row's whole width to itself: beside the Cancel button a wrapped title was cut off at
        # the top (a box layout gives a wrapping label the height of its width there, not of its narrower share).
        bar_row = QHBoxLayout()
        bar_row.addWidget(self.bar, 1)
        bar_row.addWidget(self.cancel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.title)
        layout.addLayout(bar_row)
        layout.addWidget(self.detail)
        self.update_from(info)

    def update_from(self, info: JobInfo) -> None:
        self.cancel.setVisible(info.active)
        show_force_stop(self.cancel, info)
        if info.status == JobEvent.PROGRESS and info.progress:
            self.bar.setRange(0, info.progress.total)
            self.bar.setValue(info.progress.step)
            self.detail.setText(progress_text(info.progress))
        elif info.status == JobEvent.STARTED:
            self.bar.setRange(0, 0)  # busy: loading a model has no steps to count
            self.detail.setText("loading / starting…")
        else:
            done = info.status == JobEvent.FINISHED
            self.bar.setRange(0, 1)
            self.bar.setValue(1 if done else 0)
            text = STATUS_TEXT.get(info.status, info.status.value)
            if info.error:
                text += f": {info.error}"
            elif done and info.result and "seconds" in info.result.info:
                text += f" in {info.result.info['seconds']:.1f} s"
            if info.result and info.result.info.get("server"):  # a ComfyUI pool picks the server: say which
                text += f" on {info.result.info['server']}"
            self.detail.setText(text)


class JobQueueView(QScrollArea):
    """Every job of the session, newest first, with progress and Cancel."""

    def __init__(self, state: State, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.rows: dict[int, JobRow] = {}
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        holder = QWidget()
        self.column = QVBoxLayout(holder)
        self.column.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.empty = QLabel("No jobs yet. Press Generate (Ctrl+Enter) in a panel.")
        self.empty.setWordWrap(True)
        self.empty.setObjectName("hint")
        self.column.addWidget(self.empty)
        self.setWidget(holder)
        state.job_changed.connect(self.on_job_changed)

    def on_job_changed(self, info: JobInfo) -> None:
        if info.job.kind in ("device.warmup", "worker.reset_device", "text.loom_save"):
            return  # housekeeping, not the user's work (a loom tree's save says if it fails, in its panel)
        key = info.job.supersede_key
        if key and info.status == JobEvent.SUPERSEDED:
            self._remove(info.job.id)  # a preview replaced by a newer request (a map drag): not worth a row
            return
        row = self.rows.get(info.job.id)
        if row is None:
            row = self.rows[info.job.id] = JobRow(self.state, info)
            self.column.insertWidget(0, row)
            self.empty.hide()
            self._trim()
        row.update_from(info)
        if key:
            self._keep_newest(key)

    def _keep_newest(self, key: str) -> None:
        """Of the jobs that replace each other (one key), show the newest, the running ones and the failures."""
        keyed = [job_id for job_id in self.rows if (info := self.state.jobs.get(job_id)) and info.job.supersede_key == key]
        for job_id in keyed[:-1]:
            info = self.state.jobs[job_id]
            if not info.active and info.status != JobEvent.FAILED:
                self._remove(job_id)

    def _remove(self, job_id: int) -> None:
        row = self.rows.pop(job_id, None)
        if row is not None:
            row.hide()
            row.deleteLater()

    def _trim(self, keep: int = 30) -> None:
        for job_id in list(self.rows)[:-keep]:
            self._remove(job_id)


class GenerateBar(QWidget):
    """Generate + Cancel buttons and the live progress of this panel's newest job."""

    def __init__(self, state: State, modality: str, label: str = "Generate", unit: str = "it", parent=None) -> None:
        super().__init__(parent)
        self.state, self.modality, self.unit = state, modality, unit
        self.current_job_id: int | None = None
        self.generate = QPushButton(label)
        self.generate.setObjectName("primary")
        self.generate.setToolTip(f"{label} (Ctrl+Enter)")
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip("Stop at the next step (Esc)")
        self.cancel.setEnabled(False)
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(8)
        self.status = MessageLabel("Ready.", most=240)  # "Failed: <a long error>" wraps, never widens the window
        self.status.setObjectName("hint")
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate, 2)
        buttons.addWidget(self.cancel, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        self.cancel.clicked.connect(lambda: cancel_or_force_stop(state, self.current_job_id))
        state.job_changed.connect(self._on_job)

    def _on_job(self, info: JobInfo) -> None:
        # Helper jobs (warm-up, device switch, a clicked note's sound) are not what this bar's button started.
        if info.modality != self.modality or info.job.kind.startswith(("device.", "worker.", "music.note")):
            return
        if info.status == JobEvent.QUEUED:
            self.current_job_id = info.job.id
        if info.job.id != self.current_job_id:
            return
        self.cancel.setEnabled(info.active)
        show_force_stop(self.cancel, info)
        if info.status == JobEvent.PROGRESS and info.progress:
            self.bar.setRange(0, info.progress.total)
            self.bar.setValue(info.progress.step)
            self.status.setText(progress_text(info.progress, self.unit))
        elif info.status == JobEvent.STARTED:
            self.bar.setRange(0, 0)
            self.status.setText("Loading the model / starting…")
        elif info.status == JobEvent.QUEUED:
            self.status.setText("Queued behind other jobs…" if len(self.state.active_jobs()) > 1 else "Starting…")
        else:
            self.bar.setRange(0, 1)
            self.bar.setValue(1 if info.status == JobEvent.FINISHED else 0)
            text = STATUS_TEXT.get(info.status, "").capitalize()
            if info.error:
                text = f"{'Cancelled' if info.status == JobEvent.CANCELLED else 'Failed'}: {info.error}"
            elif info.result and "seconds" in info.result.info:
                text += f" in {info.result.info['seconds']:.1f} s."
            self.status.setText(text)
