"""The ComfyUI backend's own costs, against one server (the CI stand-in by default, a real ComfyUI with --real).

  throughput  N image jobs through the app's backend (queue, upload-free txt2img workflows, websocket events,
              outputs fetched and saved with recipe + history row) vs a bare script posting the same workflows to
              the same server at once and fetching the same outputs. Ratio = bare time / backend time (goal >= 0.97).
              Rounds alternate bare and backend; the ratio of each round is reported.
  preview     latency of a preview frame: from the server sending it (the stand-in stamps each frame's metadata with
              its send time) and from its arrival on our websocket, to State.preview_changed on the GUI thread.
  reconnect   the server is killed and started again on the same port: time from it answering again to the pool
              having it back (connected, models read).
Run: python benchmarks/comfyui.py [--jobs 8] [--steps 10] [--step-delay 0.05] [--rounds 3]
     COMFYUI_DIR=… COMFYUI_PYTHON=… COMFYUI_MODELS=… python benchmarks/comfyui.py --real --steps 1 --jobs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks._common import summary_ms, write_results  # noqa: E402


def wait_until(app, condition, timeout: float) -> None:
    """Run the Qt event loop (sleeping between events, as the app's does: a busy loop here would take a core from
    the server on a 2-core machine) until `condition()`."""
    from PySide6.QtCore import QEventLoop, QTimer

    deadline = time.monotonic() + timeout
    tick = QTimer()
    tick.start(20)  # wakes the wait to check the condition and the deadline
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step timed out")
        app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)
    tick.stop()


def recipes(model: str, count: int, steps: int, first_seed: int):
    from studio.core.recipe import Recipe

    return [Recipe("image", prompt="a lighthouse at dusk", negative_prompt="blurry", model=model, seed=first_seed + i,
                   params={"width": 64, "height": 64, "steps": steps, "guidance": 7.0, "scheduler": "euler",
                           "batch_count": 1, "backend": "bench"}) for i in range(count)]


async def bare_run(url: str, graphs: list[dict]) -> float:
    """What a plain script does: post every workflow, follow the websocket, fetch each output."""
    import aiohttp

    client = uuid.uuid4().hex
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url.replace("http", "ws", 1) + f"/ws?clientId={client}", max_msg_size=0) as ws:
            began = time.perf_counter()
            waiting = set()
            for graph in graphs:
                prompt_id = uuid.uuid4().hex
                async with session.post(url + "/prompt", json={"prompt": graph, "client_id": client,
                                                               "prompt_id": prompt_id}) as reply:
                    reply.raise_for_status()
                waiting.add(prompt_id)
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                event = json.loads(message.data)
                data = event.get("data", {})
                if event["type"] == "executed" and data.get("prompt_id") in waiting:
                    for item in (data.get("output") or {}).get("images", []):
                        async with session.get(url + "/view", params=item) as reply:
                            await reply.read()
                elif event["type"] == "execution_success":
                    waiting.discard(data.get("prompt_id"))
                    if not waiting:
                        return time.perf_counter() - began
    raise RuntimeError("the websocket closed")


def backend_run(app, backend, jobs) -> float:
    from studio.core.jobs import JobEvent

    ended = set()

    def on_message(message) -> None:
        if message.event in (JobEvent.FINISHED, JobEvent.FAILED, JobEvent.CANCELLED):
            if message.event != JobEvent.FINISHED:
                raise RuntimeError(message.error)
            ended.add(message.job_id)

    backend.message.connect(on_message)
    began = time.perf_counter()
    for job in jobs:
        backend.submit(job)
    wait_until(app, lambda: len(ended) == len(jobs), 3600)
    elapsed = time.perf_counter() - began
    backend.message.disconnect(on_message)
    return elapsed


def throughput(app, backend, server, model: str, args) -> tuple[dict, list]:
    from studio.backends.comfyui.workflow import image_plan
    from studio.core.jobs import Job

    rounds, frames = [], []
    seed = 1000
    for number in range(args.rounds + 1):  # round 0 warms both paths (model load on a real server) and is dropped
        bare_recipes = recipes(model, args.jobs, args.steps, seed)
        ours = recipes(model, args.jobs, args.steps, seed + args.jobs)  # new seeds: nothing cached on the server
        seed += 2 * args.jobs
        bare = asyncio.run(bare_run(server.url, [image_plan(r, []).graph for r in bare_recipes]))
        frames.clear()
        app_time = backend_run(app, backend, [Job("image.generate", r) for r in ours])
        if number:
            rounds.append({"bare_s": round(bare, 3), "backend_s": round(app_time, 3), "ratio": round(bare / app_time, 4)})
            print(f"round {number}: bare {bare:.2f} s, backend {app_time:.2f} s, ratio {bare / app_time:.3f}", flush=True)
    ratios = [r["ratio"] for r in rounds]
    return {"jobs_per_round": args.jobs, "steps": args.steps, "rounds": rounds,
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios)}, frames


def watch_previews(backend, state, link_class):
    """Record, per preview frame: its send time (stand-in's stamp), its arrival on our socket, its GUI time."""
    frames: list[dict] = []
    original = link_class._on_binary

    def on_binary(self, data: bytes) -> None:
        stamp = None
        if len(data) > 8 and int.from_bytes(data[:4], "big") == 4:
            length = int.from_bytes(data[4:8], "big")
            stamp = json.loads(data[8:8 + length]).get("sent_at")
        frames.append({"sent": stamp, "arrived": time.time()})
        original(self, data)

    link_class._on_binary = on_binary
    state.preview_changed.connect(lambda modality, progress: _at_gui(frames))
    return frames


def _at_gui(frames: list[dict]) -> None:
    pending = next((f for f in frames if "gui" not in f), None)
    if pending is not None:
        pending["gui"] = time.time()


def reconnect(app, pool, server, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        server.kill()
        wait_until(app, lambda: not pool.server("bench").up, 60)
        server.start()  # returns once the server answers /system_stats
        answered = time.perf_counter()
        wait_until(app, lambda: pool.server("bench").up, 120)
        times.append(time.perf_counter() - answered)
    return summary_ms(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--step-delay", type=float, default=0.05, help="the stand-in's seconds per step")
    parser.add_argument("--reconnects", type=int, default=3)
    parser.add_argument("--real", action="store_true", help="a real ComfyUI from COMFYUI_DIR (see tests/comfyui)")
    args = parser.parse_args()
    if not args.real:
        os.environ.pop("COMFYUI_DIR", None)
    os.environ.pop("COMFYUI_URL", None)
    from PySide6.QtWidgets import QApplication

    from studio.backends.comfyui import ComfyUIBackend
    from studio.backends.comfyui.link import Link
    from studio.backends.comfyui.pool import ComfyPool
    from studio.core.servers import ServerConfig
    from studio.library.history import History
    from studio.state import State
    from tests.comfyui.harness import ServerProcess

    app = QApplication.instance() or QApplication([])
    folder = Path(tempfile.mkdtemp(prefix="comfyui-bench-"))
    server = ServerProcess(folder / "server", step_delay=args.step_delay).start()
    pool = ComfyPool()
    history = History(folder / "history.db", folder / "outputs")
    backend = ComfyUIBackend(ServerConfig("bench", "comfyui", server.url), history, pool=pool, token="")
    state = State()
    backend.message.connect(state.handle_message)
    frames = watch_previews(backend, state, Link)
    try:
        backend.start()
        wait_until(app, lambda: bool(backend.available_models()), 300)
        model = next(m.ref for m in backend.available_models() if m.medium == "image" and "broken" not in m.ref)
        figures, _ = throughput(app, backend, server, model, args)
        seen = [f for f in frames if "gui" in f]
        stamped = [f["gui"] - f["sent"] for f in seen if f["sent"] is not None]
        preview = {"frames": len(seen), "arrival_to_gui": summary_ms([f["gui"] - f["arrived"] for f in seen]),
                   "server_send_to_gui": summary_ms(stamped) if stamped else "the server does not stamp frames"}
        results = {"server": "real ComfyUI" if args.real else "contract stand-in (tests/comfyui/double.py)",
                   "server_version": pool.server("bench").info.version, "checkpoint": model,
                   "throughput": figures, "preview_latency": preview,
                   "reconnect_after_restart": reconnect(app, pool, server, args.reconnects)}
        write_results("comfyui-real" if args.real else "comfyui", results)
    finally:
        backend.stop()
        pool.close()
        server.stop()


if __name__ == "__main__":
    main()
