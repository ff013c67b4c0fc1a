"""The app through a local OpenAI-compatible server vs the server's own timings (part of text_speed.py).

A llama-cpp-python server runs the built-in text-gpt.gguf on 127.0.0.1; the app's backend (studio/backends/
openai_text.py, the code the Text panel uses, without the window) streams completions from it. The server prints
llama.cpp's perf counters for every request (prompt eval time, eval time and their token counts): its own rate is
generated tokens over (prompt eval + eval) time; the app's rate is the tokens it received over the time from sending
the request to the last token, so the difference is what HTTP, SSE and our client add.
"""

from __future__ import annotations

import queue
import re
import socket
import statistics
import subprocess
import sys
import threading
import time

from benchmarks._text import GGUF_PROMPT, SAMPLED, median, steady_rate

_APPLICATION: list = []
PERF = re.compile(r"(prompt eval|eval) time =\s*([\d.]+) ms /\s*(\d+) (?:tokens|runs)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Server:
    def __init__(self, model: str, threads: int) -> None:
        self.port = _free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", model, "--host", "127.0.0.1", "--port",
             str(self.port), "--n_ctx", "256", "--n_threads", str(threads), "--verbose", "True"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        while "Uvicorn running on" not in (line := self.lines.get(timeout=120)):
            if line == "":
                raise RuntimeError("the llama.cpp server ended before it was ready")

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.put(line)
        self.lines.put("")

    def perf(self, timeout: float = 30.0) -> dict[str, tuple[float, int]]:
        """The perf counters printed for the last request: {"prompt eval": (ms, tokens), "eval": (ms, runs)}."""
        found: dict[str, tuple[float, int]] = {}
        deadline = time.monotonic() + timeout
        while "eval" not in found and time.monotonic() < deadline:
            match = PERF.search(self.lines.get(timeout=timeout))
            if match:
                found[match.group(1)] = (float(match.group(2)), int(match.group(3)))
        return found

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _bare_client_rate(url: str, body: dict) -> float:
    """The same request streamed by a few lines of httpx, no app: what the server delivers (after the first
    token)."""
    import httpx

    from studio.engine.text import openai_api as api

    started, first, count = time.perf_counter(), 0.0, 0
    with httpx.Client(timeout=httpx.Timeout(10.0, read=None)) as client:
        with client.stream("POST", f"{url}/v1/completions", json=body) as response:
            for event in api.server_events(response.iter_lines()):
                if (event.get("choices") or [{}])[0].get("text"):
                    count += 1
                    if count == 1:
                        first = time.perf_counter() - started
    return steady_rate(count, time.perf_counter() - started, first)


def _app_run(backend, job, loop_class) -> list:
    from PySide6.QtCore import QTimer

    from studio.core.jobs import JobEvent

    outputs, loop = [], loop_class()

    def on_message(message):
        if message.job_id == job.id and message.event == JobEvent.OUTPUT:
            outputs.extend(message.result.artifacts)
        if message.job_id == job.id and message.event in (JobEvent.FINISHED, JobEvent.FAILED):
            loop.quit()

    backend.message.connect(on_message)
    QTimer.singleShot(120_000, loop.quit)
    backend.submit(job)
    loop.exec()
    backend.message.disconnect(on_message)
    return outputs


def server_figures(args) -> dict:
    from PySide6.QtCore import QCoreApplication, QEventLoop

    from studio import paths
    from studio.backends.openai_text import OpenAITextBackend
    from studio.core.jobs import Job
    from studio.core.recipe import Recipe
    from studio.core.servers import ServerConfig
    from studio.engine.text import openai_api as api
    from studio.engine.text.llama import llama_threads
    from studio.engine.text.settings import TextSettings

    if QCoreApplication.instance() is None:
        _APPLICATION.append(QCoreApplication([]))  # queued signals need an application (kept alive here)
    model = str(paths.builtin_model_dir("text-gpt") / "text-gpt.gguf")
    server = _Server(model, llama_threads())
    url = f"http://127.0.0.1:{server.port}"
    backend = OpenAITextBackend(ServerConfig("bench", "openai", url), None, token="")
    app_rates, compute_rates, bare_rates, firsts = [], [], [], []
    try:
        backend.start()
        for run in range(args.runs + 1):
            params = {**SAMPLED, "max_new_tokens": args.tokens, "inspect": False, "backend": "bench"}
            job = Job("text.generate", Recipe("text", prompt=GGUF_PROMPT, model=model, seed=run, params=params),
                      save=False)
            outputs = _app_run(backend, job, QEventLoop)
            perf = server.perf()
            body, _ = api.request_body(TextSettings.from_params(params), GGUF_PROMPT, model, run, backend.info)
            bare = _bare_client_rate(url, body)
            server.perf()
            if run == 0 or not outputs or "eval" not in perf:
                continue  # the first request warms the server up
            info = outputs[0].info
            elapsed = info["tokens"] / info["tokens_per_s"] if info["tokens_per_s"] else 0.0
            app_rates.append(steady_rate(info["tokens"], elapsed, info["first_token_s"]))
            firsts.append(info["first_token_s"])
            eval_ms, runs = perf["eval"]
            compute_rates.append(runs / (eval_ms / 1000))
            bare_rates.append(bare)
    finally:
        backend.stop()
        server.stop()
    return {"server": "llama-cpp-python (llama_cpp.server), 127.0.0.1", "prompt": GGUF_PROMPT,
            "rates": "tokens/s after the first token",
            "server_compute_tokens_per_s": median(compute_rates),
            "bare_httpx_client_tokens_per_s": median(bare_rates), "app_tokens_per_s": median(app_rates),
            "ratio_app_vs_bare_client": round(statistics.median(app_rates) / statistics.median(bare_rates), 3),
            "ratio_app_vs_server_compute": round(statistics.median(app_rates) / statistics.median(compute_rates), 3),
            "first_token_ms": round(statistics.median(firsts) * 1000, 1), "goal_ratio": 0.9}
