"""Job, progress, result and message types shared by the worker, the engine and the state.

Nothing here imports Qt or torch: these are plain values that cross the worker thread.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.recipe import Recipe

_job_ids = itertools.count(1)


class Cancelled(Exception):
    """Raised by engine code when `cancelled()` turned true between two steps. `partial` holds outputs that
    were already complete (the first images of a batch): they are saved, as A1111 keeps them on interrupt."""

    def __init__(self, *args, partial: list | None = None) -> None:
        super().__init__(*args)
        self.partial = list(partial or [])


class UserError(Exception):
    """A problem the user can fix (bad file, missing model); its text is shown as is."""


@dataclass(frozen=True)
class Job:
    """One unit of work for the worker.

    `kind` names an engine task ("image.generate", "text.generate", "latent.decode", …);
    the worker looks it up in `studio.core.tasks`, so state never imports heavy engine code.
    Jobs with the same `supersede_key` replace each other while queued: a slider drag
    produces many requests and only the newest one is worth running.
    """

    kind: str
    recipe: Recipe | None = None
    args: dict[str, Any] = field(default_factory=dict)
    supersede_key: str | None = None
    save: bool = True  # write outputs to disk + history before reporting them
    id: int = field(default_factory=lambda: next(_job_ids))


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    # A cheap look at the work so far: a PIL image (image steps), the text so far
    # (text tokens), a list of notes (music). None when there is nothing to show.
    preview: Any = None
    message: str = ""
    elapsed: float = 0.0  # seconds since the job started running (filled by the worker)
    # steps per second since the first step of this phase (filled by the worker): model loading before the
    # first step must not count, or the first job's ETA is off by the loading time
    rate: float = 0.0

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0


@dataclass
class Artifact:
    """One output: a picture, a text, a piece of music, a strip of frames."""

    modality: str  # "image" | "text" | "music" | "animation"
    recipe: Recipe
    payload: Any  # PIL.Image.Image | str | music piece | list of frames
    files: list[Path] = field(default_factory=list)  # filled once written to disk
    entry_id: int | None = None  # history row, once committed
    info: dict[str, Any] = field(default_factory=dict)  # extras for the UI (timings, fallbacks)


@dataclass
class Result:
    artifacts: list[Artifact] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    value: Any = None  # for jobs that return data, not artifacts (e.g. a latent map)


class JobEvent(enum.Enum):
    QUEUED = "queued"
    STARTED = "started"
    PROGRESS = "progress"
    OUTPUT = "output"  # one output finished and saved while the job goes on (result holds it)
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"  # dropped from the queue by a newer job with the same key


@dataclass(frozen=True)
class JobMessage:
    """The one message type that crosses from the worker thread to the UI."""

    event: JobEvent
    job: Job
    progress: Progress | None = None
    result: Result | None = None
    error: str = ""

    @property
    def job_id(self) -> int:
        return self.job.id


@dataclass(frozen=True)
class Capabilities:
    """What a backend can run (studio/backends/base.py)."""

    name: str  # shown to the user: "This computer", "gpu-box"
    media: tuple[str, ...] = ()  # which media it generates
    local: bool = False  # outputs made on this machine (else fetched from a server)
    features: frozenset[str] = field(default_factory=frozenset)  # e.g. "lora", "logprobs", "min_p"


@dataclass(frozen=True)
class ModelInfo:
    """A model a backend can run, as the pickers list it."""

    ref: str  # what a recipe's `model` holds
    medium: str
    label: str
    ready: bool = True  # False: known but not downloaded / not loaded on the server
    where: str = ""  # the backend's name: "" for this computer, else a server's name ("on gpu-box")
    note: str = ""  # a tooltip: size, family, why it isn't ready
    # Settings the backend can't honour for this model, as (setting name, why) pairs: the panel greys them out and
    # says why (an OpenAI-compatible server that doesn't accept min_p, say).
    unsupported: tuple[tuple[str, str], ...] = ()


Report = Callable[[Progress], None]
IsCancelled = Callable[[], bool]


@dataclass
class TaskContext:
    """What an engine task receives from the worker."""

    report: Report
    cancelled: IsCancelled
    models: Any  # studio.core.model_cache.ModelCache
    device: Any  # studio.core.devices.DeviceChoice
    # Hand over one finished output: the engine saves it (file, then history row) at once, so a kill later in
    # the batch loses nothing finished. Tasks that make several outputs call it for each.
    output: Callable[[Artifact], None] = lambda artifact: None

    def check(self) -> None:
        if self.cancelled():
            raise Cancelled()
