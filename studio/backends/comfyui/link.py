"""One ComfyUI server, followed from the pool's event-loop thread: connect, learn what it has, keep the websocket,
run our prompts on it, reconnect with backoff when it goes away.

The protocol is ComfyUI's own (server.py, execution.py, main.py's progress hook): `POST /prompt` with a prompt_id we
chose (so events arriving before the answer are already ours), then on `/ws?clientId=`: execution_start, executing,
progress, executed (an output node's files), execution_success | execution_error | execution_interrupted, and binary
preview frames (type 1: JPEG/PNG of the running prompt; type 4: with a JSON header naming the prompt, sent when the
client announces `supports_preview_metadata`, as we do). Deleting a queued prompt sends no event, so a cancel of one
is confirmed by reading `/queue`.

Everything the GUI needs goes out through `emit(tuple)` (thread-safe: the pool hands it to the GUI thread):
("link", name, "up", ServerInfo) · ("link", name, "down", reason) · ("started", job_id, name) ·
("progress", job_id, Progress) · ("output", job_id, Artifact) · ("end", job_id, JobEvent, Result | None, error) ·
("requeue", job_id): never started here, run it elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO

import aiohttp

from studio.backends.comfyui import outputs
from studio.backends.comfyui.http import Http, ServerError, describe, new_session, ws_url
from studio.backends.comfyui.info import PROBED_NODES, ServerInfo
from studio.backends.comfyui.workflow import Plan
from studio.core.jobs import Artifact, Job, JobEvent, Progress, Result, UserError

log = logging.getLogger(__name__)
# Reconnect: 0.25 s, 0.5 s, 1 s, … at most 5 s apart (a try is one TCP connect and one small GET: cheap for the
# server, and a restarted server is back in the pickers within 5 s of answering).
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.25, 5.0
HEARTBEAT_S = 10.0  # a silent network drop is noticed within about this
PREVIEW_JPEG, PREVIEW_PNG = 1, 2
BINARY_PREVIEW, BINARY_PREVIEW_WITH_METADATA = 1, 4
TERMINAL = ("success", "error", "interrupted", "lost", "dequeued", "done")


@dataclass
class Run:
    job: Job
    save: Callable[[Artifact], None]
    prompt_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    plan: Plan | None = None
    posted: bool = False
    started: bool = False
    cancel_asked: bool = False
    began: float = field(default_factory=time.perf_counter)
    last: Progress | None = None
    done: dict[str, tuple[int, int]] = field(default_factory=dict)  # sampler node -> (steps done, its steps)
    saved: list[Artifact] = field(default_factory=list)


async def read_info(http: Http) -> ServerInfo:
    stats = await http.get_json("/system_stats")
    answers = await asyncio.gather(*(http.get_json(f"/object_info/{name}") for name in PROBED_NODES))
    definitions = {}
    for name, answer in zip(PROBED_NODES, answers, strict=True):
        if isinstance(answer, dict) and isinstance(answer.get(name), dict):
            definitions[name] = answer[name]
    return ServerInfo.read(stats, definitions)


class Link:
    def __init__(self, name: str, url: str, token: str, emit: Callable[[tuple], None]) -> None:
        self.name, self.url, self.token, self.emit = name, url.rstrip("/"), token, emit
        self.client_id = uuid.uuid4().hex  # per connection of this app; names no user or machine
        self.http: Http | None = None
        self.info: ServerInfo | None = None
        self.runs: dict[str, Run] = {}  # prompt_id -> our prompt on this server
        self.executing: str | None = None  # the prompt the server runs now (legacy preview frames name none)
        self.backoff = BACKOFF_FIRST_S
        self.connected_at = 0.0

    # --- the connection ----------------------------------------------------------------------

    async def serve(self) -> None:
        """Connect, follow, reconnect with backoff — until cancelled (the server was removed)."""
        try:
            while True:
                try:
                    await self._follow()
                    reason = "the server closed the connection"
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - every failure is a reason to reconnect, said once
                    reason = describe(exc)
                self._lost(reason)
                await asyncio.sleep(self.backoff)
                self.backoff = min(BACKOFF_MAX_S, self.backoff * 2)
        finally:
            self._lost("the server was removed from Settings")

    async def _follow(self) -> None:
        async with new_session(self.token) as session:
            http = Http(session, self.url)
            info = await read_info(http)
            async with session.ws_connect(ws_url(self.url, self.client_id), heartbeat=HEARTBEAT_S,
                                          max_msg_size=0) as ws:
                await ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
                self.http, self.info, self.backoff = http, info, BACKOFF_FIRST_S
                self.connected_at = time.perf_counter()
                self.emit(("link", self.name, "up", info))
                try:
                    async for message in ws:
                        if message.type == aiohttp.WSMsgType.TEXT:
                            self._on_json(json.loads(message.data))
                        elif message.type == aiohttp.WSMsgType.BINARY:
                            self._on_binary(message.data)
                        elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                            break
                finally:
                    self.http = None

    def _lost(self, reason: str) -> None:
        self.http, self.executing = None, None
        self.emit(("link", self.name, "down", reason))
        for run in list(self.runs.values()):
            run.events.put_nowait(("lost", reason))

    # --- events ------------------------------------------------------------------------------

    def _on_json(self, message: dict) -> None:
        kind, data = message.get("type"), message.get("data") or {}
        prompt_id = data.get("prompt_id") or self.executing
        run = self.runs.get(prompt_id) if prompt_id else None
        if kind == "execution_start":
            self.executing = data.get("prompt_id")
            if run is not None:
                run.started = True
                self.emit(("started", run.job.id, self.name))
                if run.cancel_asked:
                    asyncio.ensure_future(self._interrupt(run))
        elif run is None:
            return
        elif kind == "progress":
            self._progress(run, data)
        elif kind == "executing" and data.get("node") is None:
            self.executing = None
            run.events.put_nowait(("done", data))
        elif kind in ("executed", "execution_success", "execution_error", "execution_interrupted"):
            name = {"execution_success": "success", "execution_error": "error", "execution_interrupted": "interrupted"}
            run.events.put_nowait((name.get(kind, kind), data))

    def _progress(self, run: Run, data: dict) -> None:
        plan, node = run.plan, str(data.get("node"))
        if plan is None or node not in plan.samplers:
            return  # another node's bar (a VAE decode's tiles): our bar counts sampling steps
        value, most = int(data.get("value", 0)), max(1, int(data.get("max", 1)))
        # ComfyUI runs a batch's chains in whatever order its execution list picks: each sampler counts for itself
        run.done[node] = (min(value, most), most)
        total = sum(m for _v, m in run.done.values()) + most * (len(plan.samplers) - len(run.done))
        run.last = Progress(sum(v for v, _m in run.done.values()), total, message=f"on {self.name}",
                            elapsed=time.perf_counter() - run.began)
        self.emit(("progress", run.job.id, run.last))

    def _on_binary(self, data: bytes) -> None:
        if len(data) < 8:
            return
        (event,) = struct.unpack(">I", data[:4])
        prompt_id, image = self.executing, b""
        if event == BINARY_PREVIEW:
            image = data[8:]
        elif event == BINARY_PREVIEW_WITH_METADATA:
            (length,) = struct.unpack(">I", data[4:8])
            try:
                prompt_id = json.loads(data[8:8 + length]).get("prompt_id") or prompt_id
            except ValueError:
                return
            image = data[8 + length:]
        run = self.runs.get(prompt_id) if prompt_id else None
        if run is None or not image:
            return
        from PIL import Image

        try:
            with Image.open(BytesIO(image)) as picture:
                preview = picture.convert("RGB")
        except Exception:  # noqa: BLE001 - a damaged preview frame costs only that frame
            return
        last = run.last or Progress(0, max(1, run.plan.steps if run.plan else 1), message=f"on {self.name}")
        self.emit(("progress", run.job.id, Progress(last.step, last.total, preview, last.message,
                                                    time.perf_counter() - run.began)))

    # --- one job -----------------------------------------------------------------------------

    async def run_job(self, job: Job, save: Callable[[Artifact], None]) -> None:
        run = Run(job, save)
        self.runs[run.prompt_id] = run
        try:
            await self._run(run)
        except UserError as exc:
            self._end(run, JobEvent.FAILED, str(exc))
        except ServerError as exc:
            self._end(run, JobEvent.FAILED, f"ComfyUI on {self.name}: {exc}")
        except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError) as exc:
            if run.started or run.saved:
                self._end(run, JobEvent.FAILED, self._lost_words(run, describe(exc)))
            else:
                self.emit(("requeue", job.id))  # it never ran there: another server (or this one, back) takes it
        except Exception as exc:  # noqa: BLE001 - a broken job must not take the connection down
            log.exception("ComfyUI job %s failed on %s", job.id, self.name)
            self._end(run, JobEvent.FAILED, f"{type(exc).__name__}: {exc}")
        finally:
            self.runs.pop(run.prompt_id, None)

    async def _run(self, run: Run) -> None:
        http, info = self.http, self.info
        if http is None or info is None:
            self.emit(("requeue", run.job.id))
            return
        run.plan, body = await outputs.prepare(run.job, run.prompt_id, self.client_id, http, info)
        if run.cancel_asked:
            self._end(run, JobEvent.CANCELLED, "")
            return
        status, answer = await http.post_json("/prompt", body)
        if status != 200:
            raise UserError(f"ComfyUI on {self.name} refused the workflow: {outputs.refusal(answer)}")
        run.posted = True
        if run.cancel_asked:
            await self.cancel(run.job.id)
        while True:
            kind, data = await run.events.get()
            if kind == "executed":
                await self._fetch_outputs(run, data)
            elif kind in TERMINAL:
                self._finish(run, kind, data)
                return

    async def _fetch_outputs(self, run: Run, data: dict) -> None:
        node = str(data.get("node"))
        if run.plan is None or node not in run.plan.outputs:
            return
        files = (data.get("output") or {}).get("images") or (data.get("output") or {}).get("audio") or []
        for item in files:
            content = await self.http.view(item) if self.http else None
            if content is None:
                raise ServerError(f"{self.name} went away before an output could be fetched")
            artifact = outputs.artifact(run.job, run.plan, node, content, self.name, self.info)
            await asyncio.get_running_loop().run_in_executor(None, run.save, artifact)
            run.saved.append(artifact)
            self.emit(("output", run.job.id, artifact))

    def _finish(self, run: Run, kind: str, data) -> None:
        if kind in ("success", "done"):
            info = {"server": self.name, "seconds": time.perf_counter() - run.began, "prompt_id": run.prompt_id}
            self.emit(("end", run.job.id, JobEvent.FINISHED, Result(list(run.saved), info), ""))
        elif kind == "error":
            self._end(run, JobEvent.FAILED, outputs.execution_error(self.name, data))
        elif kind in ("interrupted", "dequeued"):
            self._end(run, JobEvent.CANCELLED, "")
        elif kind == "lost" and not run.started and not run.saved:
            self.emit(("requeue", run.job.id))  # it never ran here: another server takes it
        else:
            self._end(run, JobEvent.FAILED, self._lost_words(run, data))

    def _lost_words(self, run: Run, reason: str) -> str:
        kept = f" The {len(run.saved)} finished output(s) were saved." if run.saved else ""
        return f"The ComfyUI server {self.name} went away while running this job ({reason}).{kept}"

    def _end(self, run: Run, event: JobEvent, error: str) -> None:
        result = Result(list(run.saved), {"server": self.name}) if run.saved or event == JobEvent.CANCELLED else None
        self.emit(("end", run.job.id, event, result, error))

    # --- cancel ------------------------------------------------------------------------------

    async def cancel(self, job_id: int) -> None:
        """Running: /interrupt (that prompt only). Queued on the server: /queue delete, confirmed by reading /queue."""
        run = next((r for r in self.runs.values() if r.job.id == job_id), None)
        if run is None:
            return
        run.cancel_asked = True
        if not run.posted or self.http is None:
            return  # not on the server yet: _run stops before posting
        try:
            if run.started:
                await self._interrupt(run)
                return
            await self.http.post_json("/queue", {"delete": [run.prompt_id]})
            queue = await self.http.get_json("/queue")
            listed = {str(item[1]) for key in ("queue_running", "queue_pending") for item in queue.get(key, [])}
            if run.started:
                await self._interrupt(run)
            elif run.prompt_id not in listed:
                run.events.put_nowait(("dequeued", None))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log.warning("cancel on %s: %s", self.name, describe(exc))

    async def _interrupt(self, run: Run) -> None:
        if self.http is not None:
            await self.http.post_json("/interrupt", {"prompt_id": run.prompt_id})
