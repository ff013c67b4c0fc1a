"""An OpenAI-compatible text server as a backend (Settings › Servers, kind "openai"): llama.cpp's server,
llama-cpp-python's, vLLM, Ollama, LM Studio, OpenAI itself.

All network I/O runs on one worker thread per server, never on the GUI thread: it asks the server what it is and
which models and sampler fields it has (engine/text/openai_api.py), then streams one job at a time. Each streamed
piece becomes a `progress` message (the text so far), per-token log-probabilities go into the token inspector, and
the finished text is saved here — file, then history row — with our recipe (the server's name in `backend`), as
the local engine does. Cancel stops reading at the next streamed token and closes the stream (the server stops
generating); a server that goes away mid-stream fails the job with a message saying so, and the text that arrived
is saved and kept on the page.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import replace

from PySide6.QtCore import QObject, Signal

from studio.core.jobs import Artifact, Capabilities, Job, JobEvent, JobMessage, ModelInfo, Progress, Result, UserError
from studio.core.servers import ServerConfig
from studio.engine.text import openai_api as api
from studio.engine.text.settings import TextSettings

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 10.0
# A server may think a long time before its first token (a long prompt on a big model): no read timeout while
# streaming; cancel and Force stop end the wait instead.
PROBE_TIMEOUT_S = 10.0


def _client(token: str, read_timeout: float | None):
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(headers=headers, timeout=httpx.Timeout(CONNECT_TIMEOUT_S, read=read_timeout))


def _gone(name: str, url: str, exc: Exception) -> str:
    detail = " ".join(str(exc).split())[:160] or type(exc).__name__
    return f"The server {name} ({url}) can't be reached: {detail}"


class _Stop(Exception):
    """Cancel asked (by the user) while the stream ran."""


class OpenAITextBackend(QObject):
    message = Signal(object)  # JobMessage, in order
    models_changed = Signal()

    def __init__(self, config: ServerConfig, history=None, token: str | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        from studio.core.secrets import get_token

        self.config, self.history = config, history
        self.token = get_token(config.name) if token is None else token
        self.info: api.ServerInfo | None = None
        self.problem = ""  # why the server isn't usable now (shown as the models' note)
        self._queue: deque[Job] = deque()
        self._lock = threading.Condition()
        self._current: Job | None = None
        self._abandoned: set[int] = set()  # force-stopped jobs whose thread may still be reading
        self._cancel = threading.Event()
        self._response = None
        self._stopping = False
        self._refresh = False
        self._thread = threading.Thread(target=self._serve, name=f"server {config.name}", daemon=True)

    # --- "Test connection" (Settings › Servers; called off the GUI thread) ------------------------------------

    @classmethod
    def probe(cls, config: ServerConfig, token: str = "") -> str:
        """A one-paragraph summary of the server (kind, version, models, which sampler fields it takes); raises
        UserError with one line saying why when it can't be reached or refuses the key."""
        import httpx

        try:
            with _client(token, PROBE_TIMEOUT_S) as client:
                return api.probe(client, config.url).summary()
        except httpx.HTTPStatusError as exc:
            code = exc.response.status_code
            why = "the API key was refused" if code in (401, 403) else f"it answered {code} to /v1/models"
            raise UserError(f"{config.name} ({config.url}): {why}") from None
        except (httpx.HTTPError, ValueError) as exc:
            raise UserError(_gone(config.name, config.url, exc)) from None

    # --- the backend interface ------------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        accepted = self.info.fields if self.info else frozenset()
        return Capabilities(name=self.config.name, media=("text",), local=False, features=frozenset(accepted))

    def available_models(self) -> list[ModelInfo]:
        if self.info is None:
            return []
        note = f"{self.info.kind} {self.info.version} at {self.config.url}".replace("  ", " ")
        unsupported = tuple(sorted(self.info.unsupported().items()))
        return [ModelInfo(ref=model, medium="text", label=model, where=self.config.name, note=note,
                          unsupported=unsupported) for model in self.info.models]

    def start(self) -> None:
        if not self._thread.is_alive() and not self._stopping:
            self._thread.start()

    def stop(self, wait_s: float = 5.0) -> None:
        with self._lock:
            self._stopping = True
            dropped = list(self._queue)
            self._queue.clear()
            self._lock.notify_all()
        self._cancel.set()
        self._close_stream()
        for job in dropped:
            self.message.emit(JobMessage(JobEvent.CANCELLED, job))
        if self._thread.is_alive():
            self._thread.join(wait_s)

    def submit(self, job: Job) -> Job:
        with self._lock:
            self._queue.append(job)
            self._lock.notify_all()
        self.message.emit(JobMessage(JobEvent.QUEUED, job))
        return job

    def cancel(self, job_id: int | None = None) -> None:
        """A queued job is dropped; the running one stops reading at its next token and closes the stream."""
        removed = None
        with self._lock:
            current = self._current
            if current is not None and job_id in (None, current.id):
                self._cancel.set()
                return
            removed = next((job for job in self._queue if job.id == job_id), None)
            if removed is not None:
                self._queue.remove(removed)
        if removed is not None:
            self.message.emit(JobMessage(JobEvent.CANCELLED, removed))

    def force_stop(self) -> None:
        """Stop now, even a server that sends nothing: the stream is closed and the job ends here at once."""
        with self._lock:
            job = self._current
            if job is None:
                return
            self._abandoned.add(job.id)
        self._cancel.set()
        self._close_stream()
        self.message.emit(JobMessage(JobEvent.CANCELLED, job, error=f"Force stopped: the stream from "
                                     f"{self.config.name} was closed."))

    @property
    def running(self) -> Job | None:
        return self._current

    def pending(self) -> list[Job]:
        with self._lock:
            return list(self._queue)

    def set_outputs_dir(self, folder: str) -> None:
        from pathlib import Path

        if self.history is not None:
            self.history.outputs_dir = Path(folder)

    def refresh(self) -> None:
        """Ask the server again for its models and fields (on the worker thread, before its next job)."""
        with self._lock:
            self._refresh = True
            self._lock.notify_all()

    # --- the worker thread -----------------------------------------------------------------------------------

    def _serve(self) -> None:
        self._learn()
        while True:
            with self._lock:
                while not self._queue and not self._stopping and not self._refresh:
                    self._lock.wait()
                if self._stopping:
                    return
                if self._refresh:
                    self._refresh = False
                    job = None
                else:
                    job = self._current = self._queue.popleft()
                    self._cancel.clear()
            if job is None:
                self._learn()
                continue
            try:
                self._run(job)
            except Exception as exc:  # noqa: BLE001 - a broken job must never end the server's thread
                log.exception("job %s on %s", job.id, self.config.name)
                self._emit(job, JobMessage(JobEvent.FAILED, job, error=f"{type(exc).__name__}: {exc}"))
            finally:
                with self._lock:
                    self._current = None
                    self._abandoned.discard(job.id)

    def _emit(self, job: Job, message: JobMessage) -> None:
        if job.id not in self._abandoned:  # a force-stopped job has said its last word already
            self.message.emit(message)

    def _learn(self) -> bool:
        """What the server is and has; False (with `problem` set) when it can't be reached."""
        import httpx

        try:
            with _client(self.token, PROBE_TIMEOUT_S) as client:
                self.info, self.problem = api.probe(client, self.config.url), ""
        except (httpx.HTTPError, ValueError) as exc:
            self.info, self.problem = None, _gone(self.config.name, self.config.url, exc)
        self.models_changed.emit()
        return self.info is not None

    def _run(self, job: Job) -> None:
        self._emit(job, JobMessage(JobEvent.STARTED, job))
        if job.kind != "text.generate" or job.recipe is None:
            raise UserError(f"{self.config.name} writes text only; it can't run {job.kind}")
        if self.info is None and not self._learn():  # it was down at the start: maybe it is up now
            self._emit(job, JobMessage(JobEvent.FAILED, job, error=self.problem))
            return
        settings = TextSettings.from_params(dict(job.recipe.params))
        stream = _Stream(self, job, settings)
        try:
            stream.read()
        except UserError as exc:
            self._emit(job, JobMessage(JobEvent.FAILED, job, error=str(exc)))
            return
        except _Stop:
            self._emit(job, JobMessage(JobEvent.CANCELLED, job))
            return
        except Exception as exc:  # noqa: BLE001 - the network, the server: anything may break mid-stream
            if self._cancel.is_set():
                self._emit(job, JobMessage(JobEvent.CANCELLED, job))
                return
            self._fail_mid_stream(job, stream, exc)
            return
        artifact = stream.artifact()
        self._save(job, artifact)
        self._emit(job, JobMessage(JobEvent.FINISHED, job, result=Result([artifact])))

    def _fail_mid_stream(self, job: Job, stream: _Stream, exc: Exception) -> None:
        """The server went away (or broke) mid-stream: what arrived is saved and kept, and the message says so."""
        why = " ".join(str(exc).split())[:160] or type(exc).__name__
        if not stream.text:
            self._emit(job, JobMessage(JobEvent.FAILED, job, error=_gone(self.config.name, self.config.url, exc)))
            return
        artifact = stream.artifact(finish=f"server went away: {why}")
        saved = ""
        try:
            self._save(job, artifact)
            saved = f", saved to {artifact.files[0]}" if artifact.files else ""
        except UserError as save_error:
            saved = f" (not saved: {save_error})"
        self._emit(job, JobMessage(JobEvent.FAILED, job, error=(
            f"The server {self.config.name} went away after {stream.tokens} tokens ({why}). The text so far is "
            f"kept{saved}.")))

    def _save(self, job: Job, artifact: Artifact) -> None:
        if job.save and self.history is not None:
            self.history.save_artifact(artifact)
        self._emit(job, JobMessage(JobEvent.OUTPUT, job, result=Result([artifact])))

    def _close_stream(self) -> None:
        response = self._response
        if response is not None:
            try:
                response.close()
            except Exception:  # noqa: BLE001 - closing from another thread: whatever it raises, it is closed
                pass


class _Stream:
    """One job's request and what has streamed in so far."""

    def __init__(self, backend: OpenAITextBackend, job: Job, settings: TextSettings) -> None:
        self.backend, self.job, self.settings = backend, job, settings
        self.text, self.tokens, self.inspector, self.finish = "", 0, [], "length"
        self.numbering: dict[str, int] = {}
        self.started = self.first_token_s = 0.0
        self.ignored: list[str] = []

    def read(self) -> None:
        backend, recipe, chat = self.backend, self.job.recipe, self.settings.mode == "chat"
        info, url = backend.info, backend.config.url
        with _client(backend.token, None) as client:
            bias = self._bias_ids(client) if self.settings.logit_bias else {}
            body, self.ignored = api.request_body(self.settings, recipe.prompt, recipe.model, recipe.seed, info, bias)
            endpoint = api.api_urls(url)[1] + ("/chat/completions" if chat else "/completions")
            self.started = time.perf_counter()
            with client.stream("POST", endpoint, json=body) as response:
                backend._response = response
                try:
                    if response.status_code >= 400:
                        raise UserError(f"{backend.config.name} refused the request ({response.status_code}): "
                                        f"{_error_text(response)}")
                    self._follow(response)
                finally:
                    backend._response = None

    def _follow(self, response) -> None:
        chat, total = self.settings.mode == "chat", self.settings.max_new_tokens
        try:
            for event in api.server_events(response.iter_lines()):
                if self.backend._cancel.is_set():
                    raise _Stop()
                piece = api.read_piece(event, chat, self.numbering)
                if piece.text and not self.tokens:
                    self.first_token_s = time.perf_counter() - self.started
                self._add(piece)
                if piece.finish:
                    self.finish = piece.finish
                if piece.text:
                    self.backend._emit(self.job, JobMessage(JobEvent.PROGRESS, self.job, progress=Progress(
                        min(self.tokens, total), total, preview=self.text)))
        except api.ServerError as exc:
            raise UserError(f"{self.backend.config.name}: {exc}") from None
        if self.backend._cancel.is_set():
            raise _Stop()

    def _add(self, piece: api.Piece) -> None:
        """Append a piece; its tokens' spans are laid out over the piece's text (clamped where a server's token
        texts don't spell its text exactly)."""
        start = len(self.text)
        self.text += piece.text
        self.tokens += max(1, len(piece.tokens)) if piece.text else 0
        for entry in piece.tokens:
            end = min(start + len(entry["token"]), len(self.text))
            entry["start"], entry["end"] = start, end
            start = end
            self.inspector.append(entry)

    def _bias_ids(self, client) -> dict[int, float]:
        info = self.backend.info
        if "logit_bias" not in info.fields or not info.tokenize:
            return {}
        bias: dict[int, float] = {}
        for text, amount in self.settings.logit_bias:
            for token in api.token_ids(client, self.backend.config.url, info, self.job.recipe.model, text):
                bias[token] = bias.get(token, 0.0) + amount
        return bias

    def artifact(self, finish: str | None = None) -> Artifact:
        elapsed = time.perf_counter() - self.started if self.started else 0.0
        recipe = replace(self.job.recipe, params={**self.settings.to_params(), "backend": self.backend.config.name,
                                                   "runtime": "auto"})
        info = {"prompt": self.job.recipe.prompt, "tokens": self.tokens, "finish_reason": finish or self.finish,
                "tokens_per_s": self.tokens / elapsed if elapsed > 0 and self.tokens else 0.0,
                "first_token_s": self.first_token_s, "server": self.backend.config.name,
                "ignored_settings": self.ignored}
        if self.settings.inspect and self.inspector:
            info["inspector"] = self.inspector
        return Artifact("text", recipe, self.text, info=info)


def _error_text(response) -> str:
    try:
        response.read()
        data = response.json()
        error = data.get("error", data.get("detail", data)) if isinstance(data, dict) else data
        message = error.get("message", error) if isinstance(error, dict) else error
        return " ".join(str(message).split())[:200]
    except Exception:  # noqa: BLE001 - not JSON: the start of whatever it said
        return " ".join(response.text.split())[:200] if hasattr(response, "text") else ""
