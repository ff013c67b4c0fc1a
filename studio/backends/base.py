"""The backend interface: what state needs from anything that runs jobs (this computer's engine, a ComfyUI server,
an OpenAI-compatible text server).

A backend is a QObject with:
- `message` (Signal(object)): every `JobMessage` for the jobs it runs, in order, on the GUI thread;
- `submit(job) -> job`: queue a job (a job with the same `supersede_key` as a queued one replaces it);
- `cancel(job_id=None)`: a queued job is dropped; the running one (no id: whichever runs) stops at its next step;
- `force_stop()`: stop the running job now, whatever it is doing; queued jobs stay queued;
- `capabilities() -> Capabilities`: what it can run;
- `available_models() -> list[ModelInfo]`: the models it can see (for the pickers);
- `start()` / `stop()`.
A backend may also have `models_changed` (Signal()): its model list changed (a server connected or went away).
Several backends run side by side behind `Backends` (router.py): a job goes to the one its recipe names in
its `backend` param ("" = this computer).
Kept small on purpose: panels and state never see more than this, so a new backend needs no change to them.
"""

from __future__ import annotations

from typing import Protocol

from studio.core.jobs import Capabilities, Job, ModelInfo  # noqa: F401 - the interface's types, re-exported


class Backend(Protocol):
    def submit(self, job: Job) -> Job: ...

    def cancel(self, job_id: int | None = None) -> None: ...

    def force_stop(self) -> None: ...

    def capabilities(self) -> Capabilities: ...

    def available_models(self) -> list[ModelInfo]: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...
